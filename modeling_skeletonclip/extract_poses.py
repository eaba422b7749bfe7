r"""Videos -> a pyskl pose pickle that `load_pose_dataset` reads: decode, estimate 2D poses per frame, track persons.

    skeletonclip extract-poses videos/ poses.pkl                      # videos/<class>/<video>.mp4
    skeletonclip extract-poses list.csv poses.pkl --target_fps 15     # rows: path,label[,split]
    skeletonclip extract-poses videos/ poses.pkl --shard 0/4          # writes poses.shard-0-of-4.pkl
    skeletonclip merge-poses poses.shard-*-of-4.pkl --output poses.pkl

Inputs (INPUT):
  * a folder with one sub-folder per class (videos found recursively inside each; the sorted sub-folder names are
    the label map, as torchvision's ImageFolder);
  * a CSV or JSON list of ``path,label[,split]`` (label: a class name; relative paths are resolved against the
    list's folder; the label map is the sorted set of names unless --label_map names them);
  * a folder of videos without sub-folders, or one video file: unlabeled. Such clips get label 0 of a one-class
    label map ("unlabeled") and all go into one split, "test" (load_pose_dataset refuses negative labels).

Splits: those of the list, else a seeded train/val split by --val_ratio, stratified by class: every class with at
least two videos gets at least one val video and keeps at least one train video; a one-video class stays in train.

Output: OUTPUT (``{"split": {name: [frame_dir, ...]}, "annotations": [...], "extraction": {...}}``; keypoint
``[M, T, 17, 2]`` pixels in COCO-17 order, keypoint_score ``[M, T, 17]``, ``fps`` of the kept frames), with
``<stem>_label_map.txt`` and ``<stem>_report.json`` beside it. ``frame_dir`` is the video's path relative to the
input's folder, without extension. ``extraction`` records the full video list, labels, splits, failures and
settings, which `merge-poses` checks; load_pose_dataset ignores it.

Resuming: each finished video is written atomically to ``OUTPUT.parts/`` (keyed by a hash of its relative path,
size, modification time and the extraction settings); a rerun reuses those and retries the videos that failed.
A video that cannot be decoded or shows no person is named in the summary and the report, never dropped silently.
Exit status: 0 when the pickle was written (failures are printed), 1 with --strict and any failure, or when no
video could be extracted, 2 for bad arguments or inputs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import multiprocessing
import os
import pickle
import sys
import zlib
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .pose_tracking import PoseTracker
from .safe_pickle import PoseDataError, safe_load_pickle


__all__ = [
    "ExtractionInputError",
    "NoPersonError",
    "VideoEntry",
    "VideoList",
    "assign_splits",
    "extract_poses",
    "list_videos",
    "main",
    "merge_main",
    "merge_pose_pickles",
    "shard_output_path",
    "video_annotation",
]

# Bump when what a part file holds, or how it is computed, changes: old parts are then not reused.
PART_FORMAT_VERSION = 1
UNLABELED_NAME = "unlabeled"
UNLABELED_SPLIT = "test"
LIST_EXTENSIONS = (".csv", ".json")


class NoPersonError(ValueError):
    """The estimator found no person in any frame of the video; the message names the file."""


class ExtractionInputError(ValueError):
    """Bad inputs or arguments for the extraction (a list row, a folder layout, a shard): one line, exit status 2."""


# --------------------------------------------------------------------------------------------------
# One video
# --------------------------------------------------------------------------------------------------


def _check_target_fps(target_fps) -> Optional[float]:
    if target_fps is None:
        return None
    if isinstance(target_fps, bool) or not isinstance(target_fps, (int, float)) or not (
        math.isfinite(target_fps) and target_fps > 0
    ):
        raise ValueError(f"target_fps must be a positive number; got {target_fps!r}.")
    return float(target_fps)


def video_annotation(path, estimator="mediapipe", *, target_fps=None, max_persons=2, label: int = -1,
                     frame_dir: Optional[str] = None, tracker_options: Optional[dict] = None) -> dict:
    """One pyskl annotation of a video: its frames decoded (subsampled to ``target_fps``), poses estimated per
    frame and linked into the ``max_persons`` most persistent tracks.

    Args:
        estimator: a `PoseEstimator` (reset first: a new video) or the name of one (built and closed here).
        frame_dir: the clip's name; default the file name without extension.
        tracker_options: `PoseTracker` thresholds.

    Returns:
        ``{"frame_dir", "label", "img_shape": (H, W), "original_shape": (H, W), "total_frames": T,
        "keypoint": float32 [M, T, 17, 2] (pixels), "keypoint_score": float32 [M, T, 17], "fps"}``, where (H, W)
        is the upright frame size, T counts the kept frames and fps is their rate.

    Raises:
        VideoDecodeError when the video cannot be decoded or has no frame; NoPersonError when no frame shows a
        person.
    """
    from .video_io import VideoDecodeError, probe_video, read_frames

    target_fps = _check_target_fps(target_fps)
    path = os.fspath(path)
    own_estimator = isinstance(estimator, str)
    if own_estimator:
        from .pose_estimators import build_pose_estimator

        estimator = build_pose_estimator(estimator)
    else:
        estimator.reset()
    try:
        info = probe_video(path)
        tracker = PoseTracker(max_persons, **(tracker_options or {}))
        height, width = info.height, info.width
        first_time = last_time = 0.0
        for index, frame in enumerate(read_frames(path, target_fps=target_fps)):
            if index == 0:
                height, width = frame.image.shape[:2]  # the pixels the keypoints are in
                first_time = frame.time
            last_time = frame.time
            tracker.update(estimator(frame.image))
    finally:
        if own_estimator:
            estimator.close()
    if tracker.num_frames == 0:
        raise VideoDecodeError(path, "no frame could be decoded")
    keypoint, keypoint_score = tracker.result()  # [M, T, 17, 2], [M, T, 17]
    if keypoint.shape[0] == 0:
        raise NoPersonError(f"{path}: no person found in any of its {tracker.num_frames} frames.")
    fps = float(info.fps)
    if not fps > 0 and tracker.num_frames > 1 and last_time > first_time:  # no declared rate: the measured one
        fps = (tracker.num_frames - 1) / (last_time - first_time)
    if target_fps is not None and (not fps > 0 or target_fps < fps):
        fps = target_fps  # read_frames never upsamples: a higher target keeps the source rate
    if frame_dir is None:
        frame_dir = os.path.splitext(os.path.basename(path))[0]
    return {
        "frame_dir": frame_dir,
        "label": int(label),
        "img_shape": (int(height), int(width)),
        "original_shape": (int(height), int(width)),
        "total_frames": int(tracker.num_frames),
        "keypoint": keypoint,
        "keypoint_score": keypoint_score,
        "fps": fps,
    }


# --------------------------------------------------------------------------------------------------
# The video list: inputs, labels, splits, shards
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoEntry:
    path: str  # absolute
    relpath: str  # relative to the input root, "/"-separated: keys its part file
    frame_dir: str  # relpath without extension
    label_name: Optional[str]  # None: unlabeled
    split: Optional[str]  # given by a list, else None


@dataclass
class VideoList:
    root: str  # the folder frame_dirs are relative to
    videos: list  # VideoEntry, sorted by frame_dir
    label_names: list  # label k = label_names[k]
    labeled: bool
    source: str  # the input, for messages
    label_of: dict = field(default_factory=dict)  # class name -> label

    def label(self, entry: VideoEntry) -> int:
        return 0 if entry.label_name is None else self.label_of[entry.label_name]


def video_extensions() -> tuple:
    from .video_io import VIDEO_EXTENSIONS

    return tuple(ext.lower() for ext in VIDEO_EXTENSIONS)


def _is_video(name: str, extensions: tuple) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions


def videos_under(folder: str, extensions: tuple, skip: Sequence[str] = ()) -> list:
    """Video files below ``folder`` (recursive; hidden entries and ``skip`` folders left out), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and os.path.abspath(os.path.join(dirpath, d)) not in skip)
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if _is_video(f, extensions))
    return found


def _entry(path: str, root: str, label_name, split) -> VideoEntry:
    path = os.path.abspath(path)
    relpath = os.path.relpath(path, root).replace(os.sep, "/")
    return VideoEntry(path, relpath, os.path.splitext(relpath)[0], label_name, split)


def _read_list(path: str) -> list:
    """Rows (path, label, split or None) of a CSV or JSON list, with their row numbers for messages."""
    rows = []
    if path.lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except ValueError as err:
            raise ExtractionInputError(f"{path}: not valid JSON ({err}).") from None
        if not isinstance(data, list):
            raise ExtractionInputError(
                f"{path}: a JSON list must hold a list of {{'path': ..., 'label': ..., 'split': ...}} objects or "
                f"[path, label, split] lists; got {type(data).__name__}."
            )
        for i, item in enumerate(data):
            if isinstance(item, dict):
                unknown = sorted(set(item) - {"path", "label", "split"})
                if unknown or "path" not in item or "label" not in item:
                    raise ExtractionInputError(
                        f"{path}, entry #{i}: needs keys 'path' and 'label' (and optionally 'split'); got "
                        f"{sorted(item)}."
                    )
                values = [item["path"], item["label"]] + ([item["split"]] if "split" in item else [])
            elif isinstance(item, list):
                values = item
            else:
                raise ExtractionInputError(f"{path}, entry #{i}: must be an object or a list; got {item!r:.80}.")
            rows.append((f"entry #{i}", values))
    else:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = [(n, r) for n, r in enumerate(csv.reader(f), start=1) if any(c.strip() for c in r)]
        if lines and [c.strip().lower() for c in lines[0][1]] in (["path", "label"], ["path", "label", "split"]):
            lines = lines[1:]  # a header
        rows = [(f"line {n}", [c.strip() for c in r]) for n, r in lines]
    out = []
    for where, values in rows:
        if len(values) not in (2, 3) or not all(isinstance(v, str) and v for v in values):
            raise ExtractionInputError(
                f"{path}, {where}: expected path,label[,split] (non-empty texts); got {values!r:.120}."
            )
        out.append((where, values[0], values[1], values[2] if len(values) == 3 else None))
    return out


def _read_label_names(label_map) -> list:
    from .pose_dataset import read_label_map

    try:
        return read_label_map(label_map)
    except FileNotFoundError:
        raise ExtractionInputError(f"--label_map {label_map} does not exist.") from None
    except PoseDataError as err:
        raise ExtractionInputError(str(err)) from None


def list_videos(inputs, label_map=None, skip: Sequence[str] = ()) -> VideoList:
    """The videos of ``inputs`` (a video file, a folder of videos, a folder of class folders, or a CSV/JSON list:
    see the module docstring) with labels and any listed splits, sorted by frame_dir.

    ``label_map`` (a file or a list of names) fixes the class order; every class of the inputs must be in it.
    ``skip``: folders to leave out (the output's own parts folder). Raises ExtractionInputError on bad inputs:
    no videos, a folder holding both videos and class folders, a class folder without videos, a bad list row,
    unknown class names, two videos with the same frame_dir.
    """
    source = os.fspath(inputs)
    path = os.path.abspath(source)
    extensions = video_extensions()
    skip = [os.path.abspath(s) for s in skip]
    if not os.path.exists(path):
        raise ExtractionInputError(f"Input {source} does not exist.")
    labeled = True
    if os.path.isfile(path) and path.lower().endswith(LIST_EXTENSIONS):
        root = os.path.dirname(path)
        rows = _read_list(path)
        with_split = [r for r in rows if r[3] is not None]
        if with_split and len(with_split) != len(rows):
            first = next(r for r in rows if r[3] is None)
            raise ExtractionInputError(
                f"{source}, {first[0]}: has no split while other rows have one; give every row a split or none."
            )
        entries = [_entry(os.path.join(root, os.path.expanduser(p)), root, label, split)
                   for _, p, label, split in rows]
    elif os.path.isfile(path):
        if not _is_video(os.path.basename(path), extensions):
            raise ExtractionInputError(
                f"Input {source} is neither a video ({', '.join(extensions)}) nor a list (.csv, .json)."
            )
        root, labeled = os.path.dirname(path), False
        entries = [_entry(path, root, None, None)]
    else:
        root = path
        names = sorted(os.listdir(path))
        loose = [n for n in names if os.path.isfile(os.path.join(path, n)) and _is_video(n, extensions)]
        folders = [n for n in names if os.path.isdir(os.path.join(path, n)) and not n.startswith(".")
                   and os.path.join(path, n) not in skip]
        class_videos = {n: videos_under(os.path.join(path, n), extensions, skip) for n in folders}
        if loose and any(class_videos.values()):
            classes = [n for n in folders if class_videos[n]]
            raise ExtractionInputError(
                f"Input folder {source} holds videos ({', '.join(loose[:3])}{', ...' if len(loose) > 3 else ''}) "
                f"and class folders ({', '.join(classes[:3])}{', ...' if len(classes) > 3 else ''}); put every "
                f"video into a class folder, or list them in a CSV."
            )
        if loose:
            labeled = False
            entries = [_entry(os.path.join(path, n), root, None, None) for n in loose]
        else:
            empty = [n for n in folders if not class_videos[n]]
            if empty and len(empty) < len(folders):
                raise ExtractionInputError(
                    f"Input folder {source}: class folder(s) {', '.join(empty[:5])} hold no videos "
                    f"({', '.join(extensions)})."
                )
            entries = [_entry(v, root, n, None) for n in folders for v in class_videos[n]]
    if not entries:
        raise ExtractionInputError(f"Input {source} holds no videos ({', '.join(extensions)}).")

    by_frame_dir = {}
    for entry in entries:
        other = by_frame_dir.get(entry.frame_dir)
        if other is not None:
            if other.path == entry.path:
                raise ExtractionInputError(f"Input {source}: video {entry.path} is listed twice.")
            raise ExtractionInputError(
                f"Input {source}: {other.path} and {entry.path} would both be frame_dir {entry.frame_dir!r} "
                f"(the path without extension); rename one."
            )
        by_frame_dir[entry.frame_dir] = entry
    videos = [by_frame_dir[k] for k in sorted(by_frame_dir)]

    if not labeled:
        if label_map is not None:
            raise ExtractionInputError(
                f"--label_map needs labeled inputs (class folders or a list); {source} holds unlabeled videos."
            )
        names = [UNLABELED_NAME]
    else:
        found = sorted({v.label_name for v in videos})
        if label_map is None:
            names = found
        else:
            names = _read_label_names(label_map)
            unknown = [n for n in found if n not in set(names)]
            if unknown:
                raise ExtractionInputError(
                    f"Input {source}: class(es) {', '.join(map(repr, unknown[:5]))} are not in --label_map "
                    f"{label_map if isinstance(label_map, (str, os.PathLike)) else ''}".rstrip() + "."
                )
    return VideoList(root, videos, list(names), labeled, source, {n: k for k, n in enumerate(names)})


def assign_splits(video_list: VideoList, val_ratio: float = 0.2, seed: int = 0) -> dict:
    """{split name: [frame_dir, ...]} over every video of the list, in list order.

    A list's own splits are kept (in order of first appearance). Otherwise labeled videos get a "train"/"val"
    split stratified by class: per class ``round(val_ratio * n)`` val videos, at least one when the class has two
    or more and ``val_ratio > 0``, and at least one train video; drawn by a generator seeded by (seed, class name),
    so a class's split does not depend on the other classes. Unlabeled videos all go to "test".
    """
    if not (isinstance(val_ratio, (int, float)) and 0 <= val_ratio < 1):
        raise ExtractionInputError(f"--val_ratio must be in [0, 1); got {val_ratio!r}.")
    videos = video_list.videos
    if videos and videos[0].split is not None:
        splits: dict = {}
        for v in videos:
            splits.setdefault(v.split, []).append(v.frame_dir)
        return splits
    if not video_list.labeled:
        return {UNLABELED_SPLIT: [v.frame_dir for v in videos]}
    val = set()
    for name in video_list.label_names:
        members = [v.frame_dir for v in videos if v.label_name == name]  # sorted by frame_dir
        n = len(members)
        if n < 2 or val_ratio == 0:
            continue
        count = min(max(int(math.floor(val_ratio * n + 0.5)), 1), n - 1)
        rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
        val.update(members[i] for i in rng.permutation(n)[:count])
    return {"train": [v.frame_dir for v in videos if v.frame_dir not in val],
            "val": [v.frame_dir for v in videos if v.frame_dir in val]}


def parse_shard(text: str) -> tuple:
    """"i/n" -> (i, n) with 0 <= i < n."""
    try:
        index, count = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ExtractionInputError(f"--shard must be i/n (e.g. 0/4); got {text!r}.") from None
    if not 0 <= index < count:
        raise ExtractionInputError(f"--shard {text}: needs 0 <= i < n.")
    return index, count


def shard_output_path(output: str, index: int, count: int) -> str:
    """Where shard ``index`` of ``count`` writes: out.pkl -> out.shard-0-of-4.pkl."""
    stem, ext = os.path.splitext(output)
    return f"{stem}.shard-{index}-of-{count}{ext}"


def _beside(output: str, suffix: str) -> str:
    return os.path.splitext(output)[0] + suffix


# --------------------------------------------------------------------------------------------------
# Part files and the worker
# --------------------------------------------------------------------------------------------------


def _atomic_write(path: str, write) -> None:
    """Writes via a temporary file in the same folder and os.replace, so a reader never sees a partial file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _dump_pickle(path: str, data) -> None:
    _atomic_write(path, lambda f: pickle.dump(data, f, protocol=4))


def _part_name(entry: VideoEntry, settings: dict) -> str:
    try:
        stat = os.stat(entry.path)
        stamp = [stat.st_size, int(stat.st_mtime)]
    except OSError:
        stamp = None
    key = json.dumps([PART_FORMAT_VERSION, entry.relpath, stamp, settings], sort_keys=True)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32] + ".pkl"


def _read_part(path: str, entry: VideoEntry) -> Optional[dict]:
    """A finished video's part, or None when absent or unreadable (then it is extracted again)."""
    if not os.path.isfile(path):
        return None
    try:
        part = safe_load_pickle(path)
    except PoseDataError:
        return None
    ok = isinstance(part, dict) and part.get("video") == entry.relpath and {
        "img_shape", "original_shape", "total_frames", "keypoint", "keypoint_score", "fps"} <= set(part)
    return part if ok else None


def reason_without_path(message: str, path: str) -> str:
    """The reason of an error message that starts with the file's path (the report names the file itself)."""
    return message[len(path) + 2:] if message.startswith(path + ": ") else message


class _Extractor:
    """Holds one estimator (built on first use, from its name and options) and extracts videos into part files."""

    def __init__(self, settings: dict):
        self.settings = settings
        self.estimator = None

    def build(self) -> Optional[str]:
        """Builds the estimator; returns a one-line reason when it cannot be built."""
        if self.estimator is None:
            from .pose_estimators import PoseEstimatorUnavailable, build_pose_estimator

            name, options = self.settings["estimator"], self.settings["estimator_options"]
            try:
                self.estimator = build_pose_estimator(name, **options)
            except PoseEstimatorUnavailable as err:
                return str(err)
            except (TypeError, ValueError) as err:
                return f"estimator {name!r} with options {options}: {err}"
        return None

    def __call__(self, task: tuple) -> tuple:
        """(entry, part path) -> ("ok" | "failed" | "fatal", relpath, reason)."""
        entry, part_path = task
        problem = self.build()
        if problem is not None:
            return "fatal", entry.relpath, problem
        from .video_io import VideoDecodeError

        try:
            ann = video_annotation(entry.path, self.estimator, target_fps=self.settings["target_fps"],
                                   max_persons=self.settings["max_persons"])
        except (VideoDecodeError, NoPersonError) as err:
            return "failed", entry.relpath, reason_without_path(str(err), entry.path)
        except Exception as err:  # an estimator failing on one video must not end a long run
            return "failed", entry.relpath, f"{type(err).__name__}: {reason_without_path(str(err), entry.path)}"
        part = {"video": entry.relpath}
        part.update((k, ann[k]) for k in ("img_shape", "original_shape", "total_frames", "keypoint",
                                          "keypoint_score", "fps"))
        _dump_pickle(part_path, part)
        return "ok", entry.relpath, None

    def close(self):
        if self.estimator is not None:
            self.estimator.close()
            self.estimator = None


_WORKER: Optional[_Extractor] = None


def _worker_init(settings: dict) -> None:
    global _WORKER
    _WORKER = _Extractor(settings)


def _worker_run(task: tuple) -> tuple:
    return _WORKER(task)


def _mp_context():
    """forkserver where there is one (its server imports this module once; workers fork from it), else spawn.
    Never fork: the parent may hold estimator threads."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["modeling_skeletonclip.extract_poses"])
    return context


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def _annotation(entry: VideoEntry, part: dict, label: int) -> dict:
    return {
        "frame_dir": entry.frame_dir,
        "label": int(label),
        "img_shape": tuple(int(x) for x in part["img_shape"]),
        "original_shape": tuple(int(x) for x in part["original_shape"]),
        "total_frames": int(part["total_frames"]),
        "keypoint": np.asarray(part["keypoint"], dtype=np.float32),
        "keypoint_score": np.asarray(part["keypoint_score"], dtype=np.float32),
        "fps": float(part["fps"]),
    }


def _write_outputs(output: str, data: dict, report: dict) -> None:
    """The pickle, its label map and its report, each written atomically."""
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    _dump_pickle(output, data)
    names = "".join(f"{n}\n" for n in data["extraction"]["label_names"])
    _atomic_write(_beside(output, "_label_map.txt"), lambda f: f.write(names.encode("utf-8")))
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(_beside(output, "_report.json"), lambda f: f.write(text.encode("utf-8")))


def _pickle_data(video_list_meta: dict, annotations: list, failed: dict, shard) -> dict:
    """The output pickle: splits restricted to the written clips (in list order), annotations, extraction record."""
    written = {a["frame_dir"] for a in annotations}
    splits: dict = {name: [] for name in video_list_meta["split_names"]}
    for frame_dir, split in zip(video_list_meta["videos"], video_list_meta["splits"]):
        if frame_dir in written:
            splits[split].append(frame_dir)
    extraction = dict(video_list_meta)
    extraction["shard"] = None if shard is None else list(shard)
    extraction["failed"] = dict(failed)
    return {"split": splits, "annotations": annotations, "extraction": extraction}


def extract_poses(inputs, output, *, estimator: str = "mediapipe", estimator_options: Optional[dict] = None,
                  target_fps=None, max_persons: int = 2, label_map=None, val_ratio: float = 0.2, seed: int = 0,
                  num_workers: int = 1, shard: Optional[tuple] = None, progress: Optional[bool] = None) -> dict:
    """Extracts the poses of every video of ``inputs`` (see `list_videos`) into the pose pickle ``output`` (with
    ``shard=(i, n)``: the i-th of n interleaved parts of the sorted video list, written to `shard_output_path`).

    Finished videos are kept in ``<output>.parts/`` and reused by a rerun with the same settings; failed videos are
    retried. ``num_workers`` processes each build their own estimator. ``progress``: a tqdm bar (None: when
    stderr is a terminal).

    Returns the report (also written to ``<stem>_report.json``): the output paths, counts (``videos``,
    ``written``, ``extracted`` this run, ``reused`` from parts, ``failed``), the failures as
    ``[{"path", "frame_dir", "reason"}]`` and the settings.
    """
    if not isinstance(estimator, str):
        raise ExtractionInputError("extract_poses takes the estimator's name and options (workers build their own).")
    if isinstance(max_persons, bool) or not isinstance(max_persons, int) or max_persons < 1:
        raise ExtractionInputError(f"--max_persons must be a positive integer; got {max_persons!r}.")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ExtractionInputError(f"--num_workers must be a positive integer; got {num_workers!r}.")
    try:
        target_fps = _check_target_fps(target_fps)
    except ValueError as err:
        raise ExtractionInputError(f"--target_fps: {err}") from None
    options = dict(estimator_options or {})
    try:  # they go into the part keys and the pickle: plain JSON values only
        if json.loads(json.dumps(options)) != options or not all(isinstance(k, str) for k in options):
            raise TypeError("not plain JSON values")
    except (TypeError, ValueError) as err:
        raise ExtractionInputError(f"estimator_options must map names to numbers, texts, booleans or lists "
                                   f"({err}); got {options!r:.200}.") from None
    if shard is not None and not (isinstance(shard, (tuple, list)) and len(shard) == 2
                                  and all(isinstance(x, int) for x in shard) and 0 <= shard[0] < shard[1]):
        raise ExtractionInputError(f"shard must be (i, n) with 0 <= i < n; got {shard!r}.")
    output = os.path.abspath(os.fspath(output))
    parts_dir = output + ".parts"
    video_list = list_videos(inputs, label_map, skip=[parts_dir])
    splits = assign_splits(video_list, val_ratio, seed)
    split_of = {fd: name for name, members in splits.items() for fd in members}
    settings = {"estimator": estimator, "estimator_options": options,
                "target_fps": target_fps, "max_persons": max_persons}
    meta = {
        "version": PART_FORMAT_VERSION,
        "videos": [v.frame_dir for v in video_list.videos],
        "labels": [video_list.label(v) for v in video_list.videos],
        "splits": [split_of[v.frame_dir] for v in video_list.videos],
        "split_names": list(splits),
        "label_names": list(video_list.label_names),
        "settings": settings,
    }
    videos = video_list.videos
    if shard is not None:
        index, count = shard
        videos = videos[index::count]
        output = shard_output_path(output, index, count)

    os.makedirs(parts_dir, exist_ok=True)
    part_paths = {v.relpath: os.path.join(parts_dir, _part_name(v, settings)) for v in videos}
    parts = {v.relpath: _read_part(part_paths[v.relpath], v) for v in videos}
    todo = [v for v in videos if parts[v.relpath] is None]
    reused = len(videos) - len(todo)
    failed: dict = {}  # frame_dir -> reason

    from tqdm.auto import tqdm

    bar = tqdm(total=len(videos), initial=reused, unit="video", desc="Extracting poses",
               disable=(not sys.stderr.isatty()) if progress is None else not progress)
    by_relpath = {v.relpath: v for v in videos}
    tasks = [(v, part_paths[v.relpath]) for v in todo]

    def record(result):
        status, relpath, reason = result
        entry = by_relpath[relpath]
        if status == "fatal":
            raise ExtractionInputError(reason)
        if status == "failed":
            failed[entry.frame_dir] = reason
            bar.set_postfix(failed=len(failed))
        else:
            parts[relpath] = _read_part(part_paths[relpath], entry)
        bar.update(1)

    try:
        if num_workers == 1 or len(tasks) <= 1:
            extractor = _Extractor(settings)
            try:
                for task in tasks:
                    record(extractor(task))
            finally:
                extractor.close()
        elif tasks:
            with _mp_context().Pool(min(num_workers, len(tasks)), initializer=_worker_init,
                                    initargs=(settings,)) as pool:
                for result in pool.imap_unordered(_worker_run, tasks):
                    record(result)
    finally:
        bar.close()

    annotations = []
    for v in videos:
        part = parts[v.relpath]
        if part is not None:
            annotations.append(_annotation(v, part, video_list.label(v)))
        elif v.frame_dir not in failed:  # a part that vanished between writing and reading
            failed[v.frame_dir] = f"its part file {part_paths[v.relpath]} could not be read back"
    failed = {v.frame_dir: failed[v.frame_dir] for v in videos if v.frame_dir in failed}  # list order
    data = _pickle_data(meta, annotations, failed, shard)
    path_of = {v.frame_dir: v.path for v in videos}
    report = {
        "output": output,
        "label_map": _beside(output, "_label_map.txt"),
        "parts": parts_dir,
        "input": video_list.source,
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "videos": len(videos),
        "written": len(annotations),
        "extracted": len(todo) - sum(1 for v in todo if v.frame_dir in failed),
        "reused": reused,
        "failed": [{"path": path_of[fd], "frame_dir": fd, "reason": r} for fd, r in failed.items()],
        "splits": {name: len(members) for name, members in data["split"].items()},
        "settings": settings,
    }
    _write_outputs(output, data, report)
    return report



# --------------------------------------------------------------------------------------------------
# Merging shards
# --------------------------------------------------------------------------------------------------


def _names(items, limit=10) -> str:
    items = list(items)
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def merge_pose_pickles(shards: Sequence, output) -> dict:
    """Joins the shard pickles of one extraction (`extract_poses(..., shard=(i, n))`) into ``output``, with its
    label map and report beside it, as the unsharded run writes them.

    Every video of the extraction's list must be in exactly one of the pickles (written, or recorded as failed);
    the pickles must agree on the video list, labels, splits, label map and settings. Raises
    ExtractionInputError naming the missing or doubled videos, or the pickles that disagree.
    """
    shards = [os.fspath(s) for s in shards]
    if not shards:
        raise ExtractionInputError("merge-poses needs at least one shard pickle.")
    loaded = []
    for path in shards:
        if not os.path.isfile(path):
            raise ExtractionInputError(f"Shard pickle {path} does not exist.")
        try:
            data = safe_load_pickle(path)
        except PoseDataError as err:
            raise ExtractionInputError(str(err)) from None
        meta = data.get("extraction") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or "videos" not in meta or not isinstance(data.get("annotations"), list):
            raise ExtractionInputError(
                f"{path} was not written by extract-poses (it has no 'extraction' record of its video list)."
            )
        loaded.append((path, data, meta))
    first_path, _, first = loaded[0]
    for path, _, meta in loaded[1:]:
        for key in ("version", "videos", "labels", "splits", "split_names", "label_names", "settings"):
            if meta.get(key) != first.get(key):
                what = {"videos": "video list", "label_names": "label map"}.get(key, key)
                raise ExtractionInputError(
                    f"{first_path} and {path} come from different extractions: their {what} differ."
                )
    seen: dict = {}  # frame_dir -> the pickles that hold it
    annotations, failed = {}, {}
    for path, data, meta in loaded:
        held = [a["frame_dir"] for a in data["annotations"]] + list(meta.get("failed", {}))
        for frame_dir in held:
            seen.setdefault(frame_dir, []).append(path)
        annotations.update((a["frame_dir"], a) for a in data["annotations"])
        failed.update(meta.get("failed", {}))
    listed = set(first["videos"])
    doubled = [fd for fd in first["videos"] if len(seen.get(fd, ())) > 1]
    if doubled:
        raise ExtractionInputError(
            f"merge-poses: {len(doubled)} video(s) are in more than one of the given pickles: "
            + _names(f"{fd} ({', '.join(os.path.basename(p) for p in seen[fd])})" for fd in doubled) + "."
        )
    missing = [fd for fd in first["videos"] if fd not in seen]
    if missing:
        raise ExtractionInputError(
            f"merge-poses: {len(missing)} of the {len(listed)} videos are in none of the given pickles "
            f"(a shard missing?): {_names(missing)}."
        )
    strangers = sorted(set(seen) - listed)
    if strangers:
        raise ExtractionInputError(f"merge-poses: pickles hold videos outside their own list: {_names(strangers)}.")
    ordered = [annotations[fd] for fd in first["videos"] if fd in annotations]
    failed = {fd: failed[fd] for fd in first["videos"] if fd in failed}
    meta = {k: v for k, v in first.items() if k not in ("shard", "failed")}
    data = _pickle_data(meta, ordered, failed, None)
    output = os.path.abspath(os.fspath(output))
    report = {
        "output": output,
        "label_map": _beside(output, "_label_map.txt"),
        "merged": shards,
        "videos": len(first["videos"]),
        "written": len(ordered),
        "failed": [{"frame_dir": fd, "reason": r} for fd, r in failed.items()],
        "splits": {name: len(members) for name, members in data["split"].items()},
        "settings": first["settings"],
    }
    _write_outputs(output, data, report)
    return report


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def parse_estimator_option(text: str) -> tuple:
    """"key=value" -> (key, value); the value is read as JSON when it is (numbers, true/false, null), else a str."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value; got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def _summary(report: dict) -> str:
    lines = [
        f"Wrote {report['output']}: {report['written']} of {report['videos']} videos "
        f"({report['extracted']} extracted, {report['reused']} reused from {report['parts']}); "
        f"splits {', '.join(f'{k} {n}' for k, n in report['splits'].items())}; label map {report['label_map']}."
    ]
    if report["failed"]:
        lines.append(f"{len(report['failed'])} video(s) failed (retried on a rerun; "
                     f"report: {_beside(report['output'], '_report.json')}):")
        lines += [f"  {f['path']}: {f['reason']}" for f in report["failed"]]
    return "\n".join(lines)


def _fail(message: str):
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def build_parser(prog=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a folder of class folders, a CSV/JSON list (path,label[,split]), a folder of "
                                      "videos or one video")
    parser.add_argument("output", help="the pose pickle to write (e.g. poses.pkl)")
    parser.add_argument("--target_fps", type=float, default=None,
                        help="keep frames at about this rate (never more than the video has); default: every frame")
    parser.add_argument("--max_persons", type=int, default=2, help="persons kept per video (default 2)")
    parser.add_argument("--estimator", default="mediapipe", help="pose estimator (default mediapipe)")
    parser.add_argument("--estimator_option", action="append", type=parse_estimator_option, default=[],
                        metavar="KEY=VALUE", help="an estimator keyword argument (repeatable; JSON values)")
    parser.add_argument("--label_map", default=None, help="class names, one per line: fixes the label order")
    parser.add_argument("--val_ratio", type=float, default=0.2,
                        help="share of each class for the val split when the input gives no splits (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/val split (default 0)")
    parser.add_argument("--num_workers", type=int, default=1, help="processes, each with its own estimator")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="extract only part I of N of the sorted video list, into OUTPUT's .shard-I-of-N file")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when any video failed")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None, prog=None) -> None:
    """The `skeletonclip extract-poses` command. Exit status: 0 when the pickle was written, 1 with --strict and a
    failed video or when no video could be extracted, 2 for bad arguments or inputs (one line on stderr)."""
    args = build_parser(prog).parse_args(argv)
    try:
        from .pose_estimators import ESTIMATORS, PoseEstimatorUnavailable
    except ImportError as err:
        _fail(f"extract-poses needs the video extra (pip install 'skeletonclip[video]'): {err}")
    if args.estimator not in ESTIMATORS:
        _fail(f"--estimator {args.estimator!r} is unknown; choose from {', '.join(ESTIMATORS)}.")
    try:
        report = extract_poses(
            args.input, args.output, estimator=args.estimator, estimator_options=dict(args.estimator_option),
            target_fps=args.target_fps, max_persons=args.max_persons, label_map=args.label_map,
            val_ratio=args.val_ratio, seed=args.seed, num_workers=args.num_workers,
            shard=None if args.shard is None else parse_shard(args.shard),
            progress=False if args.no_progress else None,
        )
    except (ExtractionInputError, PoseEstimatorUnavailable) as err:
        _fail(str(err))
    print(_summary(report))
    if (report["videos"] and report["written"] == 0) or (args.strict and report["failed"]):
        sys.exit(1)


def merge_main(argv=None, prog=None) -> None:
    """The `skeletonclip merge-poses` command: shard pickles -> one pickle (exit status 2 on any disagreement)."""
    parser = argparse.ArgumentParser(prog=prog, description="Join the shard pickles of `extract-poses --shard I/N` "
                                                            "into one pose pickle, checking that every video of the "
                                                            "list is in exactly one of them.")
    parser.add_argument("shards", nargs="+", help="the shard pickles (OUTPUT.shard-I-of-N.pkl)")
    parser.add_argument("--output", "-o", required=True, help="the merged pose pickle")
    args = parser.parse_args(argv)
    try:
        report = merge_pose_pickles(args.shards, args.output)
    except ExtractionInputError as err:
        _fail(str(err))
    print(f"Wrote {report['output']}: {report['written']} of {report['videos']} videos from {len(args.shards)} "
          f"pickle(s); {len(report['failed'])} failed; label map {report['label_map']}.")
    for f in report["failed"]:
        print(f"  {f['frame_dir']}: {f['reason']}")
