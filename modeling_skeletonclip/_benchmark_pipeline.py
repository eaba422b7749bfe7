"""Throughput of the CPU data path: train-mode PoseClipTransform + PoseCollator, single thread.

``benchmark_pipeline()`` builds synthetic rows in the loader's row format (numpy arrays, as the
dataset in ``"numpy"`` format returns them), then times transform + collate batch by batch.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .pose_transforms import PoseClipTransform, PoseCollator


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


if __name__ == "__main__":
    print(benchmark_pipeline())
