"""A pose split paired with its clip transform, read in batches in numpy format."""

import torch


class PoseClipDataset(torch.utils.data.Dataset):
    """Wraps a split of `load_pose_dataset` so that every item is a transformed clip.

    `datasets`' own `with_transform` hands the transform Python lists (about 3 ms a clip for keypoint arrays);
    reading the split in numpy format with batched `__getitems__` costs about 0.1 ms a clip, so the transform runs
    here, on the DataLoader workers, on numpy rows.
    """

    def __init__(self, dataset, transform):
        self.dataset = dataset.with_format("numpy")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.transform(self.dataset[int(index)])

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return [self.transform(row) for row in self.dataset.__getitems__([int(i) for i in indices])]

    @property
    def features(self):
        return self.dataset.features
