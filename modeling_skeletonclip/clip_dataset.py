"""A pose split paired with its clip transform, read in batches in numpy format."""

import numpy as np
import torch


class PoseClipDataset(torch.utils.data.Dataset):
    """Wraps a split of `load_pose_dataset` so that every item is a transformed clip.

    `datasets`' own `with_transform` hands the transform Python lists (about 3 ms a clip for keypoint arrays);
    reading the split in numpy format with batched `__getitems__` costs about 0.1 ms a clip, so the transform runs
    here, on the DataLoader workers, on numpy rows.

    Args:
        seed (`int`, *optional*): with a seed, the random augmentation of clip `index` in epoch `epoch` (see
            `set_epoch`) is a function of `(seed, epoch, index)` alone, not of the global torch generator: a run
            resumed from any checkpoint, mid-epoch included, draws the augmentation the uninterrupted run drew,
            whatever the DataLoader prefetched or which worker read the clip. Without one, the transform draws
            from the global generator.
    """

    def __init__(self, dataset, transform, seed: int | None = None):
        self.dataset = dataset.with_format("numpy")
        self.transform = transform
        self.seed = seed
        # In shared memory, so that persistent DataLoader workers see the epoch the trainer sets.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def _transform(self, row, index: int) -> dict:
        if self.seed is None:
            return self.transform(row)
        return seeded_transform(self.transform, row, self.seed, self.epoch, index)

    def __getitem__(self, index: int) -> dict:
        return self._transform(self.dataset[int(index)], int(index))

    def __getitems__(self, indices: list[int]) -> list[dict]:
        indices = [int(i) for i in indices]
        return [self._transform(row, i) for row, i in zip(self.dataset.__getitems__(indices), indices)]

    @property
    def features(self):
        return self.dataset.features


def seeded_transform(transform, row, seed: int, epoch: int, index: int) -> dict:
    """`transform(row)` with the augmentation `PoseClipDataset(..., seed=seed)` draws for clip `index` in `epoch`:
    the transform draws from torch's CPU generator, here a private state seeded by (seed, epoch, index); the global
    generator is restored afterwards."""
    clip_seed = np.random.SeedSequence([seed % 2**64, epoch, index]).generate_state(1, np.uint64)[0]
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(clip_seed))
        return transform(row)
