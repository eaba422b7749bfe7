"""Train-step time and peak memory of every objective relative to the plain contrastive model ("itc").

``benchmark_variants()`` runs each variant in a fresh Python process (so that one variant's freed memory does not
hide the next one's peak) and returns one row per variant. A step is forward + backward + AdamW step on a batch of
already-transformed keypoints (heatmaps are rendered inside the model, as in training). On CPU the peak is the
process's peak resident memory during the steps minus its resident memory before them (Linux: VmHWM after a reset
through /proc/self/clear_refs); on CUDA it is `torch.cuda.max_memory_allocated` above the memory before the steps.

``benchmark_variants()`` is a row of benchmark.py; ``python benchmarks/objective_training.py`` prints its table for
the CPU demo model.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import torch

# Run from a checkout: the checkout's package, and tests/helpers.py (random keypoints, the heatmap oracle).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [path for path in (_ROOT, os.path.join(_ROOT, "tests")) if path not in sys.path]

from helpers import random_keypoints  # noqa: E402

from modeling_skeletonclip.configuration_skeletonclip import SkeletonClipConfig  # noqa: E402
from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipModel  # noqa: E402
from modeling_skeletonclip.presets import preset_config  # noqa: E402

VARIANTS = (
    ("itc", {}),
    ("itc_itm", {}),
    ("itc_momentum", {"momentum_queue_size": 4096}),
    ("pacl", {"pacl_training": "all_classes"}),
    ("pacl", {"pacl_training": "in_batch"}),
)

# The CPU demo model (the training command's "small" preset encoder) around a randomly initialised MiniLM-shaped BERT.
SMALL_VIDEO = {**preset_config("small")[0]["video_config"], "conv_impl": "fast"}
MINILM_TEXT = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}


def _read_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def run_one(objective: str, overrides: dict, batch_size: int = 8, num_classes: int = 10, clip_len: int = 16,
            size: int = 32, warmup: int = 2, steps: int = 5, device: str = "cpu", seed: int = 0) -> dict:
    """Times `steps` training steps of one variant in this process."""
    torch.manual_seed(seed)
    config = SkeletonClipConfig(
        video_config=SMALL_VIDEO,
        text_config=MINILM_TEXT,
        heatmap_config={"train_size": [size, size], "eval_size": [size, size]},
        id2label={i: f"action {i}" for i in range(num_classes)},
        objective=objective,
        **overrides,
    )
    model = SkeletonClipModel(config).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    keypoints, scores = random_keypoints(batch_size, persons=1, frames=clip_len, size=size, views=1, seed=seed)
    keypoints, scores = keypoints.to(device), scores.to(device)
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(batch_size) % num_classes).to(device)
    text_len = 6
    class_ids = torch.randint(1000, 2000, (num_classes, text_len), generator=g).to(device)
    inputs = {"keypoints": keypoints, "keypoint_scores": scores, "labels": labels}
    if objective == "pacl" and config.pacl_training == "all_classes":
        inputs.update(input_ids=class_ids, text_labels=torch.arange(num_classes, device=device))  # as the Trainer
    else:
        inputs.update(input_ids=class_ids[labels])

    def step():
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _read_status_kb("VmRSS")
        reset = _reset_peak_rss()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if device.startswith("cuda"):
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        hwm = _read_status_kb("VmHWM")
        peak_mb = (hwm - base) / 1024 if reset and hwm is not None and base is not None else float("nan")
    name = objective if objective != "pacl" else f"pacl ({config.pacl_training})"
    return {
        "variant": name,
        "step_s": statistics.median(times),
        "peak_mb": peak_mb,
        "params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
    }


def benchmark_variants(batch_size: int = 8, steps: int = 5, device: str = "cpu", threads: int | None = None) -> list[dict]:
    """One row per variant: median step time, peak memory, and both relative to "itc" (first row)."""
    rows = []
    here = os.path.dirname(os.path.abspath(__file__))  # this module puts the checkout on sys.path itself
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH")))))
    for objective, overrides in VARIANTS:
        kwargs = {"objective": objective, "overrides": overrides, "batch_size": batch_size, "steps": steps,
                  "device": device}
        code = (
            "import json, sys, torch\n"
            + (f"torch.set_num_threads({int(threads)})\n" if threads else "")
            + "from objective_training import run_one\n"
            + f"print('RESULT' + json.dumps(run_one(**{kwargs!r})))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")][-1]
        rows.append(json.loads(line[len("RESULT"):]))
    base = rows[0]
    for row in rows:
        row["step_rel"] = row["step_s"] / base["step_s"]
        row["peak_rel"] = row["peak_mb"] / base["peak_mb"] if base["peak_mb"] else float("nan")
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| variant | params (M, trained) | step (s) | step vs itc | peak mem (MB) | peak vs itc |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['params_m']:.2f} | {r['step_s']:.3f} | {r['step_rel']:.2f}x | "
            f"{r['peak_mb']:.0f} | {r['peak_rel']:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(benchmark_variants()))
