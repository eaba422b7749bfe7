"""A small synthetic COCO-17 pose dataset in the pyskl pickle format, for tests, demos and smoke-training.

Each clip is a stick figure driven by a hand-written motion (angles of a simple 2D rig), then placed in a
480x640 image at a random scale and position, with coordinate noise, detector-like scores and a few missing
joints. Thirteen classes, ten with one actor and three with two persons::

    0 raise one arm       1 raise both arms     2 wave one hand      3 clap hands        4 squat down
    5 jump up             6 kick one leg        7 bow                8 walk across       9 jumping jacks
    10 push other person  11 hug other person   12 shake hands

Every class is symmetric under a horizontal flip: the arm, hand, leg or walking direction is drawn at random per
clip. Left/right-specific classes ("raise left arm" vs "raise right arm") are deliberately absent: the flip
augmentation of the training pipeline (mirror x, swap left/right joints) turns one into the other exactly, so
with it a model could not tell them apart. Variation: 30..90 frames, random speed, phase and number of
repetitions, body scale 140..260 px, position, a slight yaw, Gaussian noise, scores in [0.3, 1], ~1.5% missing
joints (coordinates and score 0), and in one-actor classes a second person standing by in a quarter of clips.

Arrays are stored as float16 (as in some pyskl files), which keeps the default file (30 train / 10 val clips per
class) under 5 MB. Output is deterministic for a seed: every clip draws from its own generator seeded by
(seed, split, class, index).
"""

from __future__ import annotations

import os
import pickle
from typing import Optional

import numpy as np

SYNTHETIC_CLASS_NAMES = [
    "raise one arm",
    "raise both arms",
    "wave one hand",
    "clap hands",
    "squat down",
    "jump up",
    "kick one leg",
    "bow",
    "walk across",
    "jumping jacks",
    "push other person",
    "hug other person",
    "shake hands",
]
_TWO_PERSON = {10, 11, 12}
_SPLIT_IDS = {"train": 0, "val": 1}

# Rig, in body units (about 1 = standing height), origin at the hip centre, x to the image right, y down.
# A person faces the camera, so their left side is on the image right (side = +1), their right on the left (-1).
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.16, 0.14, 0.24, 0.24
_SHOULDER_Y, _SHOULDER_X, _HIP_X = -0.30, 0.17, 0.09
_ANKLE_Y = _THIGH + _SHIN


def _smooth_bump(p: np.ndarray, start: float, end: float, ramp: float = 0.3) -> np.ndarray:
    """0 before start, rises smoothly to 1, holds, falls back to 0 at end (ramp = fraction of the window)."""
    u = np.clip((p - start) / max(end - start, 1e-6), 0.0, 1.0)
    up = np.clip(u / ramp, 0.0, 1.0)
    down = np.clip((1.0 - u) / ramp, 0.0, 1.0)
    s = np.minimum(up, down)
    return s * s * (3.0 - 2.0 * s)


def _window(p: np.ndarray, start: float, end: float) -> np.ndarray:
    """Phase inside the action window, 0..1, clipped."""
    return np.clip((p - start) / max(end - start, 1e-6), 0.0, 1.0)


def _limb(origin: np.ndarray, side: float, angle: np.ndarray, length: float) -> np.ndarray:
    """End point of a segment hanging from origin, rotated outward (towards `side`) by `angle` (0 = down, pi = up)."""
    d = np.stack([side * np.sin(angle), np.cos(angle)], axis=-1)
    return origin + length * d


def _ik(origin: np.ndarray, target: np.ndarray, l1: float, l2: float, side: float, bend_down: bool = True):
    """Two-link inverse kinematics: (middle joint, end joint) reaching towards target; the middle bends outward."""
    v = target - origin
    d = np.linalg.norm(v, axis=-1, keepdims=True)
    d_c = np.clip(d, abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3)
    u = v / np.maximum(d, 1e-6)
    end = origin + u * d_c
    a = np.arccos(np.clip((l1 * l1 + d_c * d_c - l2 * l2) / (2 * l1 * d_c), -1.0, 1.0))
    ca, sa = np.cos(a), np.sin(a)
    rot_pos = np.concatenate([u[..., :1] * ca - u[..., 1:] * sa, u[..., :1] * sa + u[..., 1:] * ca], -1)
    rot_neg = np.concatenate([u[..., :1] * ca + u[..., 1:] * sa, -u[..., :1] * sa + u[..., 1:] * ca], -1)
    mid_pos, mid_neg = origin + l1 * rot_pos, origin + l1 * rot_neg
    # pick the solution whose middle joint lies further towards `side` (outward), or lower for legs
    key = (lambda m: m[..., 1]) if bend_down else (lambda m: side * m[..., 0])
    choose_pos = (key(mid_pos) >= key(mid_neg))[..., None]
    return np.where(choose_pos, mid_pos, mid_neg), end


class _Pose:
    """Per-frame rig controls for one person (arrays of length T); defaults: standing still."""

    def __init__(self, t: int):
        z = np.zeros(t)
        self.t = t
        self.root = np.zeros((t, 2))  # hip centre offset
        self.bend = z.copy()  # torso bend towards the camera, 0..1 (shoulders and head drop)
        self.arm_angle = {1: z + 0.12, -1: z + 0.12}  # shoulder angle per side (0 down, pi up)
        self.elbow = {1: z.copy(), -1: z.copy()}  # forearm angle relative to the upper arm
        self.wrist_target = {1: None, -1: None}  # when set: wrist position (hip-centre frame), elbow by IK
        self.leg_angle = {1: z + 0.04, -1: z + 0.04}
        self.knee = {1: z.copy(), -1: z.copy()}  # shin angle relative to the thigh (towards the midline)
        self.hip_drop = z.copy()  # hips lower with the ankles kept on the ground (squat), body units

    def joints(self) -> np.ndarray:
        """[T, 17, 2] COCO-17 joints in body units."""
        t = self.t
        out = np.zeros((t, 17, 2))
        root = self.root + np.stack([np.zeros(t), self.hip_drop], -1)
        sh_y = _SHOULDER_Y * (1.0 - 0.65 * self.bend)
        head_y = -0.42 * (1.0 - 0.85 * self.bend)
        nose = np.stack([np.zeros(t), head_y], -1)
        out[:, 0] = nose
        for side, eye, ear in ((1, 1, 3), (-1, 2, 4)):
            out[:, eye] = nose + np.stack([np.full(t, side * 0.025), -0.02 * (1.0 - self.bend)], -1)
            out[:, ear] = nose + np.stack([np.full(t, side * 0.055), -0.01 + 0.02 * self.bend], -1)
        for side, sh, el, wr in ((1, 5, 7, 9), (-1, 6, 8, 10)):
            shoulder = np.stack([np.full(t, side * _SHOULDER_X), sh_y], -1)
            if self.wrist_target[side] is not None:
                elbow, wrist = _ik(shoulder, self.wrist_target[side] - self.root, _UPPER_ARM, _FOREARM, side,
                                   bend_down=False)
            else:
                elbow = _limb(shoulder, side, self.arm_angle[side], _UPPER_ARM)
                wrist = _limb(elbow, side, self.arm_angle[side] + self.elbow[side], _FOREARM)
            out[:, sh], out[:, el], out[:, wr] = shoulder, elbow, wrist
        for side, hp, kn, an in ((1, 11, 13, 15), (-1, 12, 14, 16)):
            hip = np.stack([np.full(t, side * _HIP_X), np.zeros(t)], -1)
            if np.any(self.hip_drop > 0):
                ankle_target = np.stack([np.full(t, side * (_HIP_X + 0.02)), _ANKLE_Y - self.hip_drop], -1)
                knee, ankle = _ik(hip, ankle_target, _THIGH, _SHIN, side, bend_down=False)
            else:
                knee = _limb(hip, side, self.leg_angle[side], _THIGH)
                ankle = _limb(knee, side, self.leg_angle[side] - self.knee[side], _SHIN)
            out[:, hp], out[:, kn], out[:, an] = hip, knee, ankle
        return out + root[:, None, :]


def _motion(label: int, t: int, rng: np.random.Generator) -> list[_Pose]:
    """The rig controls of one clip of class `label`: one pose per person (actor first)."""
    p = np.linspace(0.0, 1.0, t)
    start, end = rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0)
    env = _smooth_bump(p, start, end, ramp=rng.uniform(0.2, 0.4))
    w = _window(p, start, end)
    reps = rng.integers(2, 5)
    phase = rng.uniform(0, 2 * np.pi)
    side = float(rng.choice([-1.0, 1.0]))
    a = _Pose(t)
    if label == 0:  # raise one arm: straight up and back
        a.arm_angle[side] = 0.12 + rng.uniform(2.7, 3.0) * env
    elif label == 1:  # raise both arms
        top = rng.uniform(2.6, 3.0)
        a.arm_angle[1] = a.arm_angle[-1] = 0.12 + top * env
    elif label == 2:  # wave one hand: forearm swings side to side above the shoulder
        a.arm_angle[side] = 0.12 + 1.5 * env
        a.elbow[side] = env * (0.9 + 0.55 * np.sin(2 * np.pi * (reps + 1) * w + phase))
    elif label == 3:  # clap hands: wrists meet in front of the chest repeatedly
        c = 0.5 - 0.5 * np.cos(2 * np.pi * (reps + 1) * w)
        y = -0.12 + rng.uniform(-0.04, 0.04)
        for s in (1, -1):
            rest = np.stack([np.full(t, s * 0.2), np.full(t, 0.0)], -1)
            clap = np.stack([s * (0.015 + 0.17 * c), np.full(t, y)], -1)
            a.wrist_target[s] = rest + env[:, None] * (clap - rest)
    elif label == 4:  # squat down: hips drop, knees bend, arms come forward
        a.hip_drop = rng.uniform(0.16, 0.24) * env
        a.arm_angle[1] = a.arm_angle[-1] = 0.12 + 0.5 * env
    elif label == 5:  # jump up: crouch, take off, land
        n = int(rng.integers(1, 3))
        local = (w * n) % 1.0
        active = (w > 0) & (w < 1)
        crouch = active * np.exp(-((local - 0.2) / 0.08) ** 2)
        air = active * np.clip(np.sin(np.pi * np.clip((local - 0.3) / 0.45, 0, 1)), 0, 1)
        height = rng.uniform(0.18, 0.3)
        a.root[:, 1] = 0.06 * crouch - height * air
        a.hip_drop = 0.0 * crouch
        a.arm_angle[1] = a.arm_angle[-1] = 0.12 + 2.2 * air
        for s in (1, -1):
            a.knee[s] = 0.7 * crouch + 0.4 * air
            a.leg_angle[s] = 0.04 + 0.35 * crouch
    elif label == 6:  # kick one leg: the leg swings out and up, knee snaps straight
        kick = _smooth_bump(p, start, end, ramp=0.45)
        a.leg_angle[side] = 0.04 + rng.uniform(1.3, 1.7) * kick
        a.knee[side] = 0.9 * np.sin(np.pi * kick) * (kick < 0.9)
        a.leg_angle[-side] = 0.04 - 0.08 * kick
        a.arm_angle[-side] = 0.12 + 0.5 * kick
        a.root[:, 0] = -side * 0.04 * kick
    elif label == 7:  # bow: the torso bends towards the camera, head and shoulders drop
        a.bend = rng.uniform(0.75, 1.0) * env
        a.arm_angle[1] = a.arm_angle[-1] = 0.12 - 0.1 * env
    elif label == 8:  # walk across the image: alternating knee lifts, arms swing, the body translates
        direction = side
        steps = reps + 2
        a.root[:, 0] = direction * rng.uniform(0.7, 1.1) * (w - 0.5)
        for s, off in ((1, 0.0), (-1, np.pi)):
            lift = np.clip(np.sin(2 * np.pi * steps * w / 2 + off + phase), 0, 1) * (w > 0) * (w < 1)
            a.leg_angle[s] = 0.04 + 0.45 * lift
            a.knee[s] = 0.9 * lift
            a.arm_angle[s] = 0.12 + 0.35 * (1 - lift) * (w > 0) * (w < 1)
        a.root[:, 1] = -0.02 * np.abs(np.sin(2 * np.pi * steps * w))
    elif label == 9:  # jumping jacks: arms and legs spread and close repeatedly
        c = (0.5 - 0.5 * np.cos(2 * np.pi * (reps + 1) * w)) * (w > 0) * (w < 1)
        for s in (1, -1):
            a.arm_angle[s] = 0.12 + 2.6 * c
            a.leg_angle[s] = 0.04 + 0.3 * c
        a.root[:, 1] = -0.05 * np.abs(np.sin(2 * np.pi * (reps + 1) * w))
    else:  # two persons, facing each other across the image
        b = _Pose(t)
        gap0 = rng.uniform(0.55, 0.75) if label != 12 else rng.uniform(0.42, 0.52)
        a_side = side  # the actor stands on this side of the partner (+1: image right)
        if label == 10:  # push: the actor's arms thrust towards the partner, who staggers away
            thrust = _smooth_bump(p, start, end, ramp=0.35)
            a.root[:, 0] = a_side * gap0 / 2 - a_side * 0.12 * thrust
            hit = np.clip((thrust - 0.5) * 2, 0, 1)
            b.root[:, 0] = -a_side * gap0 / 2 - a_side * rng.uniform(0.25, 0.4) * hit
            b.bend = 0.3 * hit
            b.arm_angle[1] = b.arm_angle[-1] = 0.12 + 0.8 * hit
            for s in (1, -1):
                reach = np.stack([b.root[:, 0] + s * 0.12 * 0.5, np.full(t, -0.25)], -1)
                rest = a.root + np.stack([np.full(t, s * 0.2), np.zeros(t)], -1)
                a.wrist_target[s] = rest + thrust[:, None] * (reach - rest)
        elif label == 11:  # hug: the two step together and wrap their arms around each other
            close = env
            gap = gap0 - (gap0 - rng.uniform(0.12, 0.2)) * close
            a.root[:, 0], b.root[:, 0] = a_side * gap / 2, -a_side * gap / 2
            for person, other in ((a, b), (b, a)):
                for s in (1, -1):
                    far = other.root + np.stack([np.full(t, s * 0.16), np.full(t, -0.22)], -1)
                    rest = person.root + np.stack([np.full(t, s * 0.2), np.zeros(t)], -1)
                    person.wrist_target[s] = rest + close[:, None] * (far - rest)
        else:  # shake hands: the near hands meet between the two and pump up and down
            a.root[:, 0], b.root[:, 0] = a_side * gap0 / 2, -a_side * gap0 / 2
            pump = 0.05 * np.sin(2 * np.pi * (reps + 2) * w) * env
            meet = np.stack([np.zeros(t), -0.05 + pump], -1)
            for person, near in ((a, -a_side), (b, a_side)):
                rest = person.root + np.stack([np.full(t, near * 0.2), np.zeros(t)], -1)
                person.wrist_target[near] = rest + env[:, None] * (meet - rest)
        return [a, b]
    return [a]


def _clip(label: int, rng: np.random.Generator, img_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """keypoint [M, T, 17, 2] and keypoint_score [M, T, 17] in pixels, float32."""
    h, w = img_shape
    t = int(rng.integers(30, 91))
    poses = _motion(label, t, rng)
    scale = rng.uniform(140, 260) * min(h / 480, w / 640)
    ground = rng.uniform(min(1.3 * scale + 10, h - 10), h - 10)
    cx = rng.uniform(0.4 * w, 0.6 * w)
    if label not in _TWO_PERSON and rng.random() < 0.25:  # a bystander, well apart, on the roomier side
        by = _Pose(t)
        by.root[:, 0] = (1.0 if cx < w / 2 else -1.0) * rng.uniform(0.85, 1.0)
        by.arm_angle[1] = by.arm_angle[-1] = 0.12 + rng.uniform(0.0, 0.2)
        poses.append(by)
        if rng.random() < 0.5:
            poses.reverse()
    kps = []
    for pose in poses:
        j = pose.joints()  # [T, 17, 2] body units
        yaw = np.cos(rng.uniform(-0.5, 0.5))  # turning away narrows the figure
        j[..., 0] = pose.root[:, None, 0] + (j[..., 0] - pose.root[:, None, 0]) * yaw
        sway = np.cumsum(rng.normal(0, 0.002, size=(t, 1, 2)), axis=0)
        j = j + sway + rng.normal(0, 0.006, size=j.shape)
        xy = np.empty_like(j)
        xy[..., 0] = cx + scale * j[..., 0]
        xy[..., 1] = ground + scale * (j[..., 1] - _ANKLE_Y)
        kps.append(xy)
    kp = np.stack(kps).astype(np.float32)
    m = kp.shape[0]
    base = rng.uniform(0.55, 1.0, size=(m, 1, 17))
    score = np.clip(base + rng.normal(0, 0.08, size=(m, t, 17)), 0.3, 1.0).astype(np.float32)
    missing = rng.random((m, t, 17)) < 0.015
    kp[missing] = 0.0
    score[missing] = 0.0
    return kp, score


def make_synthetic_poses(num_train_per_class: int = 30, num_val_per_class: int = 10, seed: int = 0,
                         img_shape: tuple[int, int] = (480, 640)) -> dict:
    """A pyskl-format dict ``{"split": {"train": [...], "val": [...]}, "annotations": [...]}``.

    Labels are 0-based indices into :data:`SYNTHETIC_CLASS_NAMES`; ``keypoint`` is float16 ``[M, T, 17, 2]``
    (COCO-17, pixels, x right, y down), ``keypoint_score`` float16 ``[M, T, 17]``. Deterministic for a seed.
    """
    img_shape = (int(img_shape[0]), int(img_shape[1]))
    split: dict[str, list[str]] = {}
    annotations = []
    for split_name, n in (("train", num_train_per_class), ("val", num_val_per_class)):
        split[split_name] = []
        # Classes interleave (as in NTU, whose action index cycles fastest), so that the first rows of a split, e.g.
        # `--max_eval_samples`, cover every class.
        for i in range(n):
            for label in range(len(SYNTHETIC_CLASS_NAMES)):
                rng = np.random.default_rng([seed, _SPLIT_IDS[split_name], label, i])
                kp, score = _clip(label, rng, img_shape)
                frame_dir = f"synth_{split_name}_c{label:02d}_{i:04d}"
                annotations.append(
                    {
                        "frame_dir": frame_dir,
                        "label": label,
                        "img_shape": img_shape,
                        "original_shape": img_shape,
                        "total_frames": int(kp.shape[1]),
                        "keypoint": kp.astype(np.float16),
                        "keypoint_score": score.astype(np.float16),
                    }
                )
                split[split_name].append(frame_dir)
    return {"split": split, "annotations": annotations}


def write_synthetic_poses(path: str | os.PathLike, label_map_path: Optional[str | os.PathLike] = None, **kwargs) -> str:
    """Writes :func:`make_synthetic_poses` (``**kwargs``) to ``path`` as a pickle and the class names, one per
    line, to ``label_map_path`` (default: ``labels.txt`` next to the pickle). Returns the pickle's path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = make_synthetic_poses(**kwargs)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    label_map_path = label_map_path or os.path.join(os.path.dirname(os.path.abspath(path)), "labels.txt")
    with open(label_map_path, "w", encoding="utf-8") as f:
        f.write("\n".join(SYNTHETIC_CLASS_NAMES) + "\n")
    return path
