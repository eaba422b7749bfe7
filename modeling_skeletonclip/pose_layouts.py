"""Joint layouts: joint count, left/right joints (for flipping) and limbs (for limb heatmaps).

Plain data, no behaviour: the config, the transforms and the renderer all read the same tables.
"""

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class JointLayout:
    name: str
    num_joints: int
    left_joints: tuple[int, ...]
    right_joints: tuple[int, ...]
    limbs: tuple[tuple[int, int], ...]

    def flip_permutation(self) -> list[int]:
        """Joint order after a horizontal flip: every left joint swaps with its right partner."""
        order = list(range(self.num_joints))
        for left, right in zip(self.left_joints, self.right_joints):
            order[left], order[right] = right, left
        return order

    def limb_flip_permutation(self) -> list[int]:
        """Limb order after a horizontal flip: the permutation of `limbs` induced by `flip_permutation`."""
        return limb_flip_permutation(self.limbs, self.flip_permutation(), self.name)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "num_joints": self.num_joints,
            "left_joints": list(self.left_joints),
            "right_joints": list(self.right_joints),
            "limbs": [list(limb) for limb in self.limbs],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "JointLayout":
        layout = cls(
            name=d.get("name", "custom"),
            num_joints=int(d["num_joints"]),
            left_joints=tuple(int(j) for j in d.get("left_joints", ())),
            right_joints=tuple(int(j) for j in d.get("right_joints", ())),
            limbs=tuple((int(a), int(b)) for a, b in d.get("limbs", ())),
        )
        layout.validate()
        return layout

    def validate(self) -> None:
        if len(self.left_joints) != len(self.right_joints):
            raise ValueError(
                f"Joint layout {self.name!r}: {len(self.left_joints)} left joints but "
                f"{len(self.right_joints)} right joints; they must pair up one to one."
            )
        for j in (*self.left_joints, *self.right_joints, *(j for limb in self.limbs for j in limb)):
            if not 0 <= j < self.num_joints:
                raise ValueError(f"Joint layout {self.name!r}: joint index {j} outside [0, {self.num_joints}).")


def limb_flip_permutation(
    limbs: Sequence[Sequence[int]], flip_permutation: Sequence[int], name: str = "custom"
) -> list[int]:
    """The limb order induced by a joint flip: entry i is the index of the limb joining ``flip_permutation[a]``
    and ``flip_permutation[b]`` (in either order) for limb i = (a, b), so that limb channel i of a mirrored volume
    comes from that channel of the unmirrored one. A repeated limb maps to its partner's copies in order. Limbs
    that are not closed under the flip (a limb whose mirror image is not a limb) are an error."""
    slots: dict[tuple[int, int], list[int]] = {}
    for index, (a, b) in enumerate(limbs):
        slots.setdefault((min(a, b), max(a, b)), []).append(index)
    taken: dict[tuple[int, int], int] = {}
    order = []
    for a, b in limbs:
        fa, fb = int(flip_permutation[a]), int(flip_permutation[b])
        key = (min(fa, fb), max(fa, fb))
        k = taken.get(key, 0)
        if k >= len(slots.get(key, ())):
            raise ValueError(
                f"Joint layout {name!r}: limb ({a}, {b}) mirrors to ({fa}, {fb}), which is not among its limbs "
                f"{[tuple(limb) for limb in limbs]}; flip-doubling swaps limb channels, so the limbs must be closed "
                "under the left/right flip."
            )
        order.append(slots[key][k])
        taken[key] = k + 1
    return order


# COCO-17 as used by the HRNet pickles of pyskl (SPEC §1).
COCO17 = JointLayout(
    name="coco17",
    num_joints=17,
    left_joints=(1, 3, 5, 7, 9, 11, 13, 15),
    right_joints=(2, 4, 6, 8, 10, 12, 14, 16),
    limbs=(
        (0, 5), (0, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (11, 13), (13, 15),
        (6, 12), (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4), (11, 12),
    ),
)
# Left and right limbs of COCO17, by index into COCO17.limbs (used to swap limb channels on flip).
COCO17_LEFT_LIMBS = (0, 2, 3, 6, 7, 8, 12, 14)
COCO17_RIGHT_LIMBS = (1, 4, 5, 9, 10, 11, 13, 15)

LAYOUTS = {"coco17": COCO17}


def get_layout(layout) -> JointLayout:
    """Accepts a JointLayout, a registered name or a dict (as stored in a config)."""
    if isinstance(layout, JointLayout):
        return layout
    if isinstance(layout, dict):
        return JointLayout.from_dict(layout)
    if isinstance(layout, str) and layout in LAYOUTS:
        return LAYOUTS[layout]
    raise ValueError(f"Unknown joint layout {layout!r}; known names: {sorted(LAYOUTS)}, or pass a dict/JointLayout.")
