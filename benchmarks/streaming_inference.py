"""A live stream through `StreamingRecognizer` on this machine's CPU: does it keep up?

A video file (the astronaut photo of scikit-image moving, libx264) is read as a camera would deliver it: frames
released at `fps` in real time (`streaming.paced`), poses by the default estimator (MediaPipe), the small preset's
contrastive model (random weights: speed does not depend on them) scoring a window of `window` frames (default: the
preset's clip length) every `stride` frames, stages in threads. Each measurement runs in a child process that may
use every core of this process (torch on `torch_threads`); they run one after the other, once per number of pose
workers (MediaPipe graphs in threads, `StreamingRecognizer(pose_workers=...)`), and the sustained frame rates are
compared.

Reported: sustained frames/s (frames through pose estimation per second of the stream's wall time), the latency
from a frame's arrival to the first prediction whose window includes it (median, p95, and the medians of the
stream's first and second half: a latency that grows means a growing backlog), the latency of each result from
its newest frame, windows scored and skipped, and the largest backlogs (windows waiting for the model, frames
waiting for pose estimation). It keeps up when no window is skipped, the frame rate holds and the latency does not
grow.

    python benchmarks/streaming_inference.py                # 20 s of 640x480 video at 25 fps, small preset,
                                                            # 1 and 2 pose workers
    python benchmarks/streaming_inference.py --seconds 2    # quicker
    python benchmarks/streaming_inference.py --drop_frames  # a live source: frames that pose estimation cannot
                                                            # take are dropped (a queue of 8) rather than waited for
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
sys.path[:0] = [path for path in (_ROOT, os.path.join(_ROOT, "tests"), os.path.dirname(os.path.abspath(__file__)))
                if path not in sys.path]


def _percentile(values, q):
    import numpy as np

    return float(np.percentile(values, q)) if len(values) else None


def measure(seconds: float, fps: int, width: int, height: int, preset: str, window: int | None, stride: int,
            torch_threads: int, drop_frames: bool, pose_workers: int = 1) -> dict:
    """Every number of the row, in this process."""
    import numpy as np
    import torch

    from helpers import astronaut_frames, write_video
    from modeling_skeletonclip.streaming import StreamingRecognizer, paced
    from modeling_skeletonclip.video_io import read_frames
    from video_inference import _preset_pipeline

    torch.set_num_threads(torch_threads)
    num_frames = int(round(seconds * fps))
    pipe, clip_len = _preset_pipeline(preset)
    window = window or clip_len
    result = {"seconds": seconds, "fps": fps, "width": width, "height": height, "frames": num_frames,
              "preset": preset, "window": window, "stride": stride, "torch_threads": torch_threads,
              "drop_frames": drop_frames, "pose_workers": pose_workers,
              "cpu_cores": len(os.sched_getaffinity(0))}
    with tempfile.TemporaryDirectory() as folder:
        path = write_video(os.path.join(folder, "astronaut.mp4"), astronaut_frames(num_frames, width, height), fps=fps)
        first = next(read_frames(path)).image
        pipe({"keypoint": np.zeros((1, window, 17, 2), np.float32) + 100, "img_shape": (height, width)})
        arrivals = []

        def source():
            for frame in paced(read_frames(path), fps):
                arrivals.append(time.perf_counter())
                yield frame

        received = []
        with StreamingRecognizer(pipe, window=window, stride=stride, estimator="mediapipe", pose_workers=pose_workers,
                                 fps=fps, drop_frames=drop_frames,
                                 frame_queue_size=8 if drop_frames else 64) as recognizer:
            for estimator in recognizer.estimators:
                estimator(first)  # warm-up: the graph starts on the first image (`run` resets it)
            for output in recognizer.run(source()):
                received.append((time.perf_counter(), output))
            end = time.perf_counter()
            stats = dict(recognizer.stats)

    frame_latency, covered = [], 0
    for index, arrival in enumerate(arrivals):
        first_result = next((at for at, out in received if out["start_frame"] <= index < out["end_frame"]), None)
        if first_result is not None:
            frame_latency.append(first_result - arrival)
            covered += 1
    half = len(frame_latency) // 2
    result_latency = [out["latency_s"] for _, out in received]
    result.update(
        stats,
        wall_s=end - arrivals[0],
        sustained_fps=stats["frames_estimated"] / (end - arrivals[0]),
        frames_predicted=covered,
        frame_latency_median_s=_percentile(frame_latency, 50),
        frame_latency_p95_s=_percentile(frame_latency, 95),
        frame_latency_first_half_median_s=_percentile(frame_latency[:half], 50),
        frame_latency_second_half_median_s=_percentile(frame_latency[half:], 50),
        result_latency_median_s=_percentile(result_latency, 50),
        result_latency_p95_s=_percentile(result_latency, 95),
    )
    result["keeps_up"] = bool(
        stats["windows_skipped"] == 0
        and stats["frames_dropped"] == 0
        and result["sustained_fps"] >= 0.95 * fps
        and covered == num_frames
        and result["frame_latency_second_half_median_s"] <= 1.5 * result["frame_latency_first_half_median_s"] + 0.1
    )
    return result


def benchmark_streaming(seconds: float = 20.0, fps: int = 25, width: int = 640, height: int = 480,
                        preset: str = "small", window: int | None = None, stride: int = 8,
                        torch_threads: int = 1, drop_frames: bool = False, pose_workers=(1, 2)) -> dict:
    """`measure` in a child process (a fresh interpreter: its own torch threads and MediaPipe graphs) for each
    number of pose workers; `runs` holds their results, `fps_vs_first` the sustained frame rates over the first's."""
    runs = []
    for workers in pose_workers:
        spec = json.dumps({"seconds": seconds, "fps": fps, "width": width, "height": height, "preset": preset,
                           "window": window, "stride": stride, "torch_threads": torch_threads,
                           "drop_frames": drop_frames, "pose_workers": workers})
        child = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", spec], capture_output=True,
                               text=True, check=False)
        if child.returncode != 0:
            raise RuntimeError(f"streaming benchmark child failed:\n{child.stderr[-3000:]}")
        runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    first = runs[0]["sustained_fps"]
    return {"runs": runs, "fps_vs_first": [run["sustained_fps"] / first for run in runs]}


def table_rows(results: dict) -> list[tuple[str, str]]:
    ms = lambda seconds: f"{1000 * seconds:.0f} ms" if seconds is not None else "n/a"  # noqa: E731
    rows = []
    for result, ratio in zip(results["runs"], results["fps_vs_first"]):
        workers = f"{result['pose_workers']} pose worker{'s' if result['pose_workers'] > 1 else ''}"
        rows += [
            (f"stream {result['width']}x{result['height']} at {result['fps']} fps, {result['seconds']:g} s, "
             f"{result['preset']} preset, window {result['window']} / stride {result['stride']}, {workers}"
             f"{', dropping frames' if result['drop_frames'] else ''}",
             f"{result['sustained_fps']:.1f} frames/s sustained on {result['cpu_cores']} cores "
             f"({'keeps up' if result['keeps_up'] else 'falls behind'}; {ratio:.2f}x the first row's)"),
            (f"stream latency, frame to its first prediction ({workers})",
             f"median {ms(result['frame_latency_median_s'])}, p95 {ms(result['frame_latency_p95_s'])} "
             f"(first half {ms(result['frame_latency_first_half_median_s'])}, second half "
             f"{ms(result['frame_latency_second_half_median_s'])}); newest frame to result median "
             f"{ms(result['result_latency_median_s'])}"),
            (f"stream windows and backlog ({workers})",
             f"{result['windows_scored']} scored, {result['windows_skipped']} skipped of {result['windows']}; "
             f"{result['frames_dropped']} frames dropped; backlog max {result['backlog_max']} windows, "
             f"{result['frame_backlog_max']} frames; {result['frames_predicted']} of {result['frames']} frames in a "
             "scored window"),
        ]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--window", type=int, help="frames per window (default: the preset's clip length)")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--torch_threads", type=int, default=1)
    parser.add_argument("--drop_frames", action="store_true", help="a live source: drop frames pose estimation "
                        "cannot take (frame queue of 8) rather than wait")
    parser.add_argument("--pose_workers", default="1,2", help="pose worker counts to compare (default 1,2)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(**json.loads(args.child))))
        return None
    result = benchmark_streaming(args.seconds, args.fps, args.width, args.height, args.preset, args.window,
                                 args.stride, args.torch_threads, args.drop_frames,
                                 tuple(int(n) for n in args.pose_workers.split(",")))
    for name, value in table_rows(result):
        print(f"{name:<80} {value}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
