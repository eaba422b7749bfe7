"""Throughput of the CPU data path.

``benchmark_pipeline()`` builds synthetic rows in the loader's row format (numpy arrays, as the
dataset in ``"numpy"`` format returns them), then times train-mode PoseClipTransform + PoseCollator batch by
batch on one thread.

``benchmark_dataloader()`` times the whole loading path a training run uses: a pose pickle loaded with
``load_pose_dataset`` (Arrow), ``PoseClipDataset`` reads + the train transform, ``PoseCollator`` with the text
tokenizer, through a ``torch.utils.data.DataLoader`` with 0, 2, 4, ... worker processes.

Both are rows of benchmark.py; ``python benchmarks/data_pipeline.py`` prints them at their default sizes.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time

import numpy as np
import torch

# Run from a checkout: the checkout's package, and tests/helpers.py (random keypoints, the heatmap oracle).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [path for path in (_ROOT, os.path.join(_ROOT, "tests")) if path not in sys.path]

from modeling_skeletonclip.clip_dataset import PoseClipDataset  # noqa: E402
from modeling_skeletonclip.pose_dataset import load_pose_dataset  # noqa: E402
from modeling_skeletonclip.pose_transforms import PoseClipTransform, PoseCollator  # noqa: E402
from modeling_skeletonclip.text_encoders import packaged_text_encoder_path  # noqa: E402


def make_synthetic_rows(n: int, persons: int = 2, frames: int = 100, joints: int = 17, seed: int = 0) -> list[dict]:
    """``n`` pose rows in the fixed row format: people walking around a 1080x1920 frame, some joints missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        centre = rng.uniform([400, 300], [1500, 800], size=(persons, 1, 1, 2))
        drift = np.cumsum(rng.normal(0, 2, size=(persons, frames, 1, 2)), axis=1)
        body = rng.normal(0, 80, size=(persons, 1, joints, 2)) + rng.normal(0, 3, size=(persons, frames, joints, 2))
        kp = (centre + drift + body).astype(np.float32)
        score = rng.uniform(0.3, 1.0, size=(persons, frames, joints)).astype(np.float32)
        missing = rng.random((persons, frames, joints)) < 0.05
        kp[missing] = 0
        score[missing] = 0
        rows.append(
            {
                "frame_dir": f"S001C001P001R001A{i % 60 + 1:03d}",
                "label": i % 60,
                "img_shape": np.array([1080, 1920], dtype=np.int64),
                "total_frames": frames,
                "num_person": persons,
                "keypoint": kp.reshape(persons * frames, joints, 2),
                "keypoint_score": score.reshape(persons * frames, joints),
            }
        )
    return rows


def benchmark_pipeline(
    num_clips: int = 2000,
    persons: int = 2,
    frames: int = 100,
    batch_size: int = 16,
    clip_len: int = 48,
    seed: int = 0,
) -> dict:
    """Times ``num_clips`` clips through the train transform and the collator with one torch thread.

    Returns ``dict(clips_per_s, clips_per_cpu_s, seconds, num_clips, batch_size, persons, frames, clip_len)``:
    ``clips_per_s`` from wall-clock time, ``clips_per_cpu_s`` from this process's CPU time.
    """
    rows = make_synthetic_rows(min(num_clips, 512), persons, frames, seed=seed)
    transform = PoseClipTransform("train", clip_len=clip_len, seed=seed)
    collator = PoseCollator(transform=transform)
    collator(rows[:batch_size])  # warm-up

    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        done = 0
        cpu_start = time.process_time()
        start = time.perf_counter()
        while done < num_clips:
            n = min(batch_size, num_clips - done)
            first = done % len(rows)
            batch = [rows[(first + k) % len(rows)] for k in range(n)]
            collator(batch)
            done += n
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    finally:
        torch.set_num_threads(old_threads)
    return {
        "clips_per_s": num_clips / seconds,
        # CPU time of this process: the per-core rate, less sensitive to other load on the machine
        "clips_per_cpu_s": num_clips / max(cpu_seconds, 1e-9),
        "seconds": seconds,
        "num_clips": num_clips,
        "batch_size": batch_size,
        "persons": persons,
        "frames": frames,
        "clip_len": clip_len,
    }


def _packaged_tokenizer():
    """The default text encoder's tokenizer, or None where its package is not installed."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(packaged_text_encoder_path())
    except ImportError:
        return None


def benchmark_dataloader(
    workers: tuple = (0, 2, 4),
    num_clips: int = 1024,
    num_rows: int = 256,
    persons: int = 2,
    frames: int = 100,
    batch_size: int = 16,
    clip_len: int = 48,
    seed: int = 0,
) -> dict:
    """Clips/s delivered by a DataLoader over ``num_rows`` pose rows (pickle -> Arrow -> transform -> collate,
    texts tokenized) for each worker count in ``workers``; the first batch (worker start-up) is not timed.

    Returns ``{"workers": {n: clips_per_s}, "tokenizer": bool, ...settings}``.
    """
    rows = make_synthetic_rows(num_rows, persons, frames, seed=seed)
    annotations = []
    for i, row in enumerate(rows):
        ann = {k: v for k, v in row.items() if k not in ("keypoint", "keypoint_score", "num_person")}
        ann["frame_dir"] = f"{row['frame_dir']}_{i:05d}"  # unique: the split lists refer to clips by frame_dir
        ann["keypoint"] = row["keypoint"].reshape(persons, frames, -1, 2)
        ann["keypoint_score"] = row["keypoint_score"].reshape(persons, frames, -1)
        annotations.append(ann)
    tokenizer = _packaged_tokenizer()
    class_texts = [f"action {i}" for i in range(60)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "poses.pkl")
        with open(path, "wb") as handle:
            pickle.dump({"split": {"train": [a["frame_dir"] for a in annotations]}, "annotations": annotations},
                        handle)
        split = load_pose_dataset(path, cache_dir=os.path.join(tmp, "cache"))["train"]
        dataset = PoseClipDataset(split, PoseClipTransform("train", clip_len=clip_len, seed=seed))
        collator = PoseCollator(tokenizer=tokenizer, class_texts=class_texts if tokenizer else None)
        for num_workers in workers:
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers, collate_fn=collator,
                drop_last=True, persistent_workers=num_workers > 0,
            )
            iterator, done, epochs = iter(loader), 0, 0
            next(iterator)  # start-up of the workers is not timed
            start = time.perf_counter()
            while done < num_clips:
                try:
                    batch = next(iterator)
                except StopIteration:
                    iterator, epochs = iter(loader), epochs + 1
                    continue
                done += batch["keypoints"].shape[0]
            results[num_workers] = done / (time.perf_counter() - start)
            del iterator, loader
    return {"workers": results, "tokenizer": tokenizer is not None, "num_clips": num_clips, "persons": persons,
            "frames": frames, "clip_len": clip_len, "batch_size": batch_size}


if __name__ == "__main__":
    print(benchmark_pipeline())
    print(benchmark_dataloader())
