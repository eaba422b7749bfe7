"""Timing of `render_heatmaps` against the per-point numpy oracle of the tests (`reference_heatmaps` in
tests/helpers.py), on the same random keypoints.

`benchmark_rendering()` is a row of benchmark.py; run on its own (`python benchmarks/heatmap_rendering.py`) it
prints the row with one torch thread and with all of them.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

# Run from a checkout: the checkout's package, and tests/helpers.py (random keypoints, the heatmap oracle).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [path for path in (_ROOT, os.path.join(_ROOT, "tests")) if path not in sys.path]

from helpers import random_keypoints, reference_heatmaps  # noqa: E402

from modeling_skeletonclip.heatmaps import render_heatmaps  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, repeats, device):
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def benchmark_rendering(
    batch=32,
    persons=2,
    frames=48,
    size=56,
    device="cpu",
    sigma=0.6,
    with_limbs=False,
    repeats=5,
    reference_clips=4,
    reference_repeats=2,
    seed=0,
):
    """Clips per second of render_heatmaps (whole batch) and of the numpy reference.

    Joint heatmaps (plus limbs with ``with_limbs``) of ``batch`` random clips at ``size`` x ``size``. Torch: one
    warm-up call, then the best of ``repeats`` timed calls (each includes allocating the output). The reference
    is timed on ``min(batch, reference_clips)`` clips (best of ``reference_repeats``, after a small
    warm-up) and scaled to clips per second. Returns
    {"torch_clips_per_s", "numpy_clips_per_s", "ratio", "device"} (ratio = torch / numpy), plus
    "threads" (torch CPU threads) and "max_abs_diff" (torch vs reference on the clips timed for both).
    """
    device = torch.device(device)
    keypoints, scores = random_keypoints(batch, persons, frames, size=size, seed=seed)
    kp_t, sc_t = keypoints.to(device), scores.to(device)
    kwargs = dict(size=(size, size), sigma=sigma, with_joints=True, with_limbs=with_limbs)

    result = {}
    render_heatmaps(kp_t, sc_t, **kwargs)  # warm-up
    torch_s = _time(lambda: result.__setitem__("out", render_heatmaps(kp_t, sc_t, **kwargs)), repeats, device)

    n_ref = max(1, min(batch, reference_clips))
    reference_heatmaps(keypoints[:1, :, :2], scores[:1, :, :2], **kwargs)  # warm-up
    numpy_s = float("inf")
    for _ in range(max(1, reference_repeats)):
        start = time.perf_counter()
        ref = reference_heatmaps(keypoints[:n_ref], scores[:n_ref], **kwargs)
        numpy_s = min(numpy_s, time.perf_counter() - start)

    diff = float(np.abs(result["out"][:n_ref].float().cpu().numpy() - ref).max())
    torch_cps = batch / torch_s
    numpy_cps = n_ref / numpy_s
    return {
        "torch_clips_per_s": torch_cps,
        "numpy_clips_per_s": numpy_cps,
        "ratio": torch_cps / numpy_cps,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "max_abs_diff": diff,
    }


if __name__ == "__main__":  # pragma: no cover
    for threads in (1, torch.get_num_threads()):
        torch.set_num_threads(threads)
        print(threads, benchmark_rendering())
