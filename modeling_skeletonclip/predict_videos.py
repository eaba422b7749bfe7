"""`skeletonclip predict --video PATH`: a saved model's top-k predictions on videos, optionally as a timeline of
sliding windows and as annotated videos (skeletons and the current top labels drawn on the frames).

    skeletonclip predict --model_name_or_path runs/demo --video clip.mp4 --output_dir out
    skeletonclip predict --model_name_or_path runs/demo --video videos/ --window 2s --stride 1s --save_video

Poses come from `extract_poses.video_annotation` (MediaPipe by default, offline); the scores from the
"skeleton-action-recognition" pipeline with the test-time views given here. Videos that cannot be decoded or show no
person are listed at the end (and in the output file) and never stop the run.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys

from tqdm.auto import tqdm

from .extract_poses import reason_without_path, parse_estimator_option
from .pipeline_skeletonclip import frames_or_seconds
from .run_training import ArgumentError, read_candidate_labels


logger = logging.getLogger(__name__)


class VideoArgumentError(ArgumentError):
    """A bad argument of the video prediction command: one line, exit status 2."""


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Top-k predictions of a saved model on videos (a file or a folder), as JSON or CSV; "
        "--window gives a timeline; --save_video writes annotated videos.",
    )
    parser.add_argument("--model_name_or_path", required=True, help="a folder saved by `skeletonclip train`")
    parser.add_argument("--video", required=True, help="a video file or a folder of videos (searched recursively)")
    parser.add_argument("--output_dir", required=True, help="where predictions (and annotated videos) are written")
    parser.add_argument("--predictions_format", choices=("json", "csv"), default="json")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--candidate_labels", help="text file, one class text per line (contrastive models)")
    parser.add_argument("--hypothesis_template", help="how a label becomes a text, e.g. 'a person {}'")
    parser.add_argument("--window", help="window length: frames (48) or seconds (2s); gives a timeline per video")
    parser.add_argument("--stride", help="window step: frames or seconds (default: the window)")
    parser.add_argument("--num_clips", type=int, default=1, help="clips per window (10 with --flip: the test protocol)")
    parser.add_argument("--flip", action="store_true", help="add the mirrored view of every clip")
    parser.add_argument("--target_fps", type=float, help="subsample the videos to this frame rate before pose estimation")
    parser.add_argument("--max_persons", type=int, default=2)
    parser.add_argument("--estimator", default="mediapipe", help="pose estimator: mediapipe (default), rtmlib, yolo")
    parser.add_argument(
        "--estimator_option", action="append", type=parse_estimator_option, default=[], metavar="KEY=VALUE",
        help="an estimator keyword argument (repeatable; JSON values)",
    )
    parser.add_argument("--save_video", action="store_true", help="write OUTPUT_DIR/<video>_annotated.mp4 per video")
    return parser


def list_videos(path: str) -> list[str]:
    from .extract_poses import video_extensions, videos_under

    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise VideoArgumentError(f"--video {path} is neither a video file nor a folder.")
    videos = videos_under(path, video_extensions())
    if not videos:
        raise VideoArgumentError(f"--video {path} holds no videos ({', '.join(video_extensions())}).")
    return videos


def parse_length(text: str | None, flag: str):
    """'48' -> 48 frames, '2s' / '1.5s' -> the string as the pipeline takes seconds; None stays None."""
    if text is None:
        return None
    value = text.strip().lower()
    value = int(value) if value.isdigit() else value
    try:
        frames_or_seconds(flag, value)
    except ValueError as err:
        raise VideoArgumentError(str(err)) from None
    return value


def output_name(video: str, root: str) -> str:
    """A file-name-safe name of `video` relative to the --video folder: `walk/a.mp4` -> `walk_a`."""
    relative = os.path.relpath(video, root) if os.path.isdir(root) else os.path.basename(video)
    return os.path.splitext(relative)[0].replace(os.sep, "_")


def write_results(path_prefix: str, fmt: str, results: list[dict], failures: list[dict]) -> str:
    path = f"{path_prefix}.{fmt}"
    if fmt == "json":
        with open(path, "w") as f:
            json.dump({"videos": results, "failed": failures}, f, indent=1)
        return path
    top_k = max((len(w["predictions"]) for r in results for w in r["windows"]), default=0)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["video", "start", "end", "start_frame", "end_frame"]
            + [f"top{k + 1}_{kind}" for k in range(top_k) for kind in ("label", "score")]
        )
        for result in results:
            for window in result["windows"]:
                cells = [c for p in window["predictions"] for c in (p["label"], round(p["score"], 6))]
                writer.writerow(
                    [result["video"], window["start"], window["end"], window["start_frame"], window["end_frame"]] + cells
                )
    return path


def whole_video_window(annotation: dict, predictions: list[dict]) -> dict:
    frames = int(annotation["total_frames"])
    fps = annotation.get("fps")
    return {
        "start": 0.0 if fps else None,
        "end": round(frames / fps, 3) if fps else None,
        "start_frame": 0,
        "end_frame": frames,
        "predictions": predictions,
    }


def run(args) -> dict:
    from transformers import pipeline

    from .extract_poses import NoPersonError, video_annotation
    from .pose_drawing import write_annotated_video
    from .pose_estimators import PoseEstimatorUnavailable, build_pose_estimator
    from .video_io import VideoDecodeError

    videos = list_videos(args.video)
    window = parse_length(args.window, "--window")
    stride = parse_length(args.stride, "--stride")
    if stride is not None and window is None:
        raise VideoArgumentError("--stride needs --window.")
    if args.top_k < 1 or args.num_clips < 1 or args.max_persons < 1:
        raise VideoArgumentError("--top_k, --num_clips and --max_persons must be at least 1.")
    call_kwargs = {"top_k": args.top_k, "num_clips": args.num_clips, "flip": args.flip}
    if args.candidate_labels:
        call_kwargs["candidate_labels"] = read_candidate_labels(args.candidate_labels)
    if args.hypothesis_template:
        call_kwargs["hypothesis_template"] = args.hypothesis_template
    if window is not None:
        call_kwargs["window"] = window
        if stride is not None:
            call_kwargs["stride"] = stride

    if not os.path.isdir(args.model_name_or_path):
        raise VideoArgumentError(f"--model_name_or_path {args.model_name_or_path} is not a folder saved by `skeletonclip train`.")
    try:
        estimator = build_pose_estimator(args.estimator, **dict(args.estimator_option))
    except (PoseEstimatorUnavailable, ValueError, TypeError) as err:
        raise VideoArgumentError(f"--estimator {args.estimator}: {err}") from None
    classifier = pipeline("skeleton-action-recognition", model=args.model_name_or_path, trust_remote_code=True)
    os.makedirs(args.output_dir, exist_ok=True)
    results, failures = [], []
    try:
        for video in tqdm(videos, desc="videos", unit="video", disable=len(videos) == 1):
            try:
                annotation = video_annotation(
                    video, estimator, target_fps=args.target_fps, max_persons=args.max_persons
                )
            except (VideoDecodeError, NoPersonError) as err:
                failures.append({"video": video, "reason": reason_without_path(str(err), video)})
                continue
            output = classifier(annotation, **call_kwargs)
            windows = output if window is not None else [whole_video_window(annotation, output)]
            result = {"video": video, "windows": windows}
            if args.save_video:
                path = os.path.join(args.output_dir, output_name(video, args.video) + "_annotated.mp4")
                write_annotated_video(
                    video, annotation, path,
                    predictions=None if window is not None else output,
                    timeline=windows if window is not None else None,
                    target_fps=args.target_fps,
                )
                result["annotated_video"] = path
            results.append(result)
    finally:
        estimator.close()
    path = write_results(os.path.join(args.output_dir, "predictions"), args.predictions_format, results, failures)
    print(f"Predicted {len(results)} of {len(videos)} videos; wrote {path}")
    for failure in failures:
        print(f"  failed: {failure['video']}: {failure['reason']}", file=sys.stderr)
    return {"results": results, "failed": failures, "path": path}


def main(argv=None, prog=None) -> dict:
    args = build_parser(prog).parse_args(argv)
    return run(args)
