"""Video in, prediction out, timed on one CPU core: decoding (PyAV), pose extraction (MediaPipe, the default
estimator) and the model through the "skeleton-action-recognition" pipeline, for the small and the full preset.

`benchmark_video()` is a row of benchmark.py. It measures in a child process pinned to one core (torch on one
thread), so that "per core" means what it says whatever else the machine runs. The video is made here: the
astronaut photo of scikit-image moving over `seconds` of frames at `fps`, encoded with libx264.

Reported: frames/s of decoding alone and of decoding + pose estimation; per preset, the seconds the model needs
for a whole-video prediction (1 clip; and the test protocol, 10 clips x flip) and for a timeline (windows of
`window`, every `stride`); and the end-to-end seconds per minute of video (decode + pose + timeline), with the
real-time factor (seconds of video per second of work).

    python benchmarks/video_inference.py                 # 10 s of 640x480 video at 30 fps
    python benchmarks/video_inference.py --seconds 2     # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# Run from a checkout: the checkout's package, and tests/helpers.py (the test video maker).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [path for path in (_ROOT, os.path.join(_ROOT, "tests")) if path not in sys.path]


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _preset_pipeline(preset: str, num_classes: int = 60):
    """The contrastive model of a preset (random weights: speed does not depend on them) with the packaged MiniLM,
    as a pipeline; and its clip length."""
    import torch
    from transformers import pipeline

    from modeling_skeletonclip import SkeletonClipModel
    from modeling_skeletonclip.presets import preset_config

    config_kwargs, clip_len = preset_config(preset)
    torch.manual_seed(0)
    model, tokenizer = SkeletonClipModel.from_text_pretrained(
        None, id2label={i: f"action {i}" for i in range(num_classes)}, clip_len=clip_len, **config_kwargs
    )
    model.eval()
    return pipeline("skeleton-action-recognition", model=model, tokenizer=tokenizer), clip_len


def measure(seconds: float, fps: int, width: int, height: int, presets, window: str, stride: str) -> dict:
    """Every number of the row, in this process (call it pinned to one core)."""
    import torch

    from helpers import astronaut_frames, write_video
    from modeling_skeletonclip.extract_poses import video_annotation
    from modeling_skeletonclip.pose_estimators import build_pose_estimator
    from modeling_skeletonclip.video_io import read_frames

    torch.set_num_threads(1)
    num_frames = int(round(seconds * fps))
    result = {"seconds": seconds, "fps": fps, "width": width, "height": height, "frames": num_frames,
              "window": window, "stride": stride}
    with tempfile.TemporaryDirectory() as folder:
        path = write_video(os.path.join(folder, "astronaut.mp4"), astronaut_frames(num_frames, width, height), fps=fps)
        _, decode_s = _timed(lambda: sum(1 for _ in read_frames(path)))
        estimator, build_s = _timed(lambda: build_pose_estimator("mediapipe"))
        annotation, pose_s = _timed(lambda: video_annotation(path, estimator))
        estimator.close()
    result.update(decode_fps=num_frames / decode_s, estimator_build_s=build_s, pose_s=pose_s,
                  pose_fps=num_frames / pose_s, person_frames=float((annotation["keypoint_score"][0] > 0).any(-1).mean()))
    result["presets"] = {}
    for preset in presets:
        pipe, clip_len = _preset_pipeline(preset)
        pipe(annotation)  # warm-up: first-call allocations and the text embeddings' code paths
        _, clip_s = _timed(lambda: pipe(annotation))
        _, test_s = _timed(lambda: pipe(annotation, num_clips=10, flip=True))
        timeline, timeline_s = _timed(lambda: pipe(annotation, window=window, stride=stride))
        end_to_end = pose_s + timeline_s
        result["presets"][preset] = {
            "clip_len": clip_len,
            "whole_video_1clip_s": clip_s,
            "whole_video_10clips_flip_s": test_s,
            "timeline_s": timeline_s,
            "windows": len(timeline),
            "end_to_end_s_per_video_minute": end_to_end * 60 / seconds,
            "realtime_factor": seconds / end_to_end,
        }
    return result


def benchmark_video(seconds: float = 10.0, fps: int = 30, width: int = 640, height: int = 480,
                    presets=("small", "full"), window: str = "2s", stride: str = "1s", core: int | None = None) -> dict:
    """`measure` in a child process pinned to one core (`core`, default the first this process may use)."""
    core = min(os.sched_getaffinity(0)) if core is None else core
    spec = json.dumps({"seconds": seconds, "fps": fps, "width": width, "height": height, "presets": list(presets),
                       "window": window, "stride": stride})
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", spec],
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"video benchmark child failed:\n{child.stderr[-3000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["core"] = core
    return result


def table_rows(result: dict) -> list[tuple[str, str]]:
    size = f"{result['width']}x{result['height']} {result['fps']} fps, {result['seconds']:g} s"
    rows = [
        (f"decode (PyAV, {size})", f"{result['decode_fps']:.0f} frames/s per core"),
        ("decode + pose (MediaPipe, default)", f"{result['pose_fps']:.1f} frames/s per core "
                                               f"(person in {100 * result['person_frames']:.0f} % of frames)"),
    ]
    for preset, row in result["presets"].items():
        rows.append((
            f"model {preset} preset ({row['clip_len']} frames a clip)",
            f"whole video {row['whole_video_1clip_s']:.2f} s (10 clips x flip {row['whole_video_10clips_flip_s']:.2f} s);"
            f" timeline of {row['windows']} windows {row['timeline_s']:.2f} s",
        ))
        rows.append((
            f"end to end, {preset} preset (decode + pose + timeline)",
            f"{row['end_to_end_s_per_video_minute']:.0f} s per minute of video "
            f"({row['realtime_factor']:.2f}x real time)",
        ))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--presets", default="small,full")
    parser.add_argument("--window", default="2s")
    parser.add_argument("--stride", default="1s")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure(**spec)))
        return None
    result = benchmark_video(args.seconds, args.fps, args.width, args.height, args.presets.split(","),
                             args.window, args.stride)
    for name, value in table_rows(result):
        print(f"{name:<55} {value}")
    return result


if __name__ == "__main__":
    main()
