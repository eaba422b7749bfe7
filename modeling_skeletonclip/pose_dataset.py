"""Pose pickles (the pyskl format) -> `datasets.DatasetDict`, with a restricted unpickler and full validation.

The input is the pickle that pyskl / PoseC3D users already have (SPEC §1)::

    {"split": {"xsub_train": [frame_dir, ...], ...},
     "annotations": [{"frame_dir": str, "label": int, "img_shape": (h, w), "original_shape": (h, w),
                      "total_frames": int, "keypoint": float[M, T, V, C], "keypoint_score": float[M, T, V]}, ...]}

The output has one split per entry of ``split`` and this row schema (other modules rely on it exactly)::

    frame_dir       Value("string")
    label           ClassLabel(names=...)
    img_shape       List(Value("int32"), length=2)              (h, w)
    original_shape  List(Value("int32"), length=2)              (h, w); img_shape when absent
    total_frames    Value("int32")                              T actually stored
    num_person      Value("int32")                              M
    keypoint        Array3D(shape=(None, V, 2), "float32")      M*T rows, person-major:
                                                                keypoint.reshape(M, T, V, 2)
    keypoint_score  Array2D(shape=(None, V), "float32")         M*T rows: .reshape(M, T, V)

Flat person-major arrays read back much faster than nested lists (numpy formatting, batched
``__getitems__``). Keypoints stay keypoints: a few KB per clip; heatmaps are rendered later, on the model's device.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from itertools import islice
from typing import Any, Optional, Union

import numpy as np

from .pose_errors import MAX_ABS_COORDINATE, PoseDataError
from .pose_layouts import COCO17, LAYOUTS, JointLayout, get_layout
from .safe_pickle import UnsafePickleError, safe_load_pickle, short_repr

logger = logging.getLogger(__name__)

__all__ = ["PoseDataError", "UnsafePickleError", "load_pose_dataset", "pose_features", "read_label_map",
           "safe_load_pickle"]

# Bump when the row layout or the conversion changes: old Arrow caches are then ignored.
_CACHE_FORMAT_VERSION = 2

# Largest image side accepted in img_shape / original_shape (stored as int32).
_MAX_IMAGE_SIDE = 100_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Files at least this large show a progress bar while hashed (for the cache key) and while read.
_PROGRESS_MIN_BYTES = 32 * 2**20


# --------------------------------------------------------------------------------------------------
# Schema and label maps
# --------------------------------------------------------------------------------------------------


def pose_features(label_names: Sequence[str], num_joints: int = 17):
    """The `datasets.Features` of a pose dataset row (see the module docstring)."""
    from datasets import Array2D, Array3D, ClassLabel, Features, List, Value

    return Features(
        {
            "frame_dir": Value("string"),
            "label": ClassLabel(names=list(label_names)),
            "img_shape": List(Value("int32"), length=2),
            "original_shape": List(Value("int32"), length=2),
            "total_frames": Value("int32"),
            "num_person": Value("int32"),
            "keypoint": Array3D(shape=(None, num_joints, 2), dtype="float32"),
            "keypoint_score": Array2D(shape=(None, num_joints), dtype="float32"),
        }
    )


def read_label_map(label_map: Union[str, os.PathLike, Sequence[str]]) -> list[str]:
    """Class names from a text file (line k, counting from 0, names label k) or from a list of names."""
    if isinstance(label_map, (str, os.PathLike)):
        path = os.fspath(label_map)
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f.read().splitlines()]
        while names and not names[-1]:
            names.pop()
        for i, name in enumerate(names):
            if not name:
                raise PoseDataError(f"Label map {path}: line {i + 1} is empty; every line must name one class.")
        source = path
    else:
        names = [str(n) for n in label_map]
        source = "label_map"
    if not names:
        raise PoseDataError(f"Label map {source} names no classes.")
    dupes = sorted(n for n, count in Counter(names).items() if count > 1)
    if dupes:
        raise PoseDataError(f"Label map {source}: class names must be unique; repeated: {short_repr(dupes[:5])}.")
    return names


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------

_REQUIRED_KEYS = ("frame_dir", "label", "keypoint")


def _is_text(value: Any) -> bool:
    """A str that Arrow can store (UTF-8: no lone surrogates)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _where(path: str, index: int, ann: Any) -> str:
    fd = ann.get("frame_dir") if isinstance(ann, dict) else None
    clip = f"frame_dir {short_repr(fd)}" if _is_text(fd) else f"annotation #{index}"
    return f"{path}, {clip}"


def _is_side(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, numbers.Integral):
        return 1 <= v <= _MAX_IMAGE_SIDE
    if isinstance(v, (float, np.floating)):  # 480.0 is a size; 480.5 and inf are not
        return math.isfinite(v) and v == int(v) and 1 <= v <= _MAX_IMAGE_SIDE
    return False


def _as_hw(value: Any, field: str, where: str) -> tuple[int, int]:
    items = None
    if isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, np.ndarray) and value.shape == (2,) and value.dtype.kind in "iuf":
        items = value.tolist()
    if items is None or len(items) != 2 or not all(_is_side(v) for v in items):
        raise PoseDataError(
            f"{where}: field '{field}' must be two positive integers (h, w) of at most {_MAX_IMAGE_SIDE}; "
            f"got {short_repr(value)}."
        )
    return int(items[0]), int(items[1])


def _as_numeric_array(value: Any, field: str, where: str) -> np.ndarray:
    """An int, uint or float array (not converted): bool, complex, datetime, object and string arrays are refused."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple)):  # nested lists of numbers
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise PoseDataError(
                f"{where}: field '{field}' is not a rectangular numeric array ({short_repr(str(e))})."
            ) from None
    else:
        raise PoseDataError(
            f"{where}: field '{field}' must be a numeric array; got {type(value).__name__} {short_repr(value)}."
        )
    if arr.dtype.kind not in "iuf":
        raise PoseDataError(
            f"{where}: field '{field}' has dtype {arr.dtype}; it must hold real numbers (int, uint or float), not "
            f"bool, complex, datetime, strings or objects."
        )
    return arr


def _as_real(arr: np.ndarray) -> np.ndarray:
    """Floats as they are, ints as float64 (whose abs cannot overflow and which compare with inf)."""
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _keys(mapping: dict) -> str:
    """A few of a dict's keys, for a message (bounded; keys may be any scalar)."""
    return short_repr(sorted(short_repr(k) for k in islice(mapping, 50)))


def _check_annotation(index: int, ann: Any, path: str, num_joints: int, keypoint_3d: str) -> dict:
    """Validates one annotation without converting its arrays; returns what the conversion needs."""
    if not isinstance(ann, dict):
        raise PoseDataError(
            f"{path}, annotation #{index}: annotations must be dicts; got {type(ann).__name__}."
        )
    where = _where(path, index, ann)
    missing = [k for k in _REQUIRED_KEYS if k not in ann]
    if missing:
        raise PoseDataError(f"{where}: missing required field(s) {missing}; present: {_keys(ann)}.")
    frame_dir = ann["frame_dir"]
    if not isinstance(frame_dir, str):
        raise PoseDataError(f"{where}: field 'frame_dir' must be a string; got {type(frame_dir).__name__}.")
    if not _is_text(frame_dir):
        raise PoseDataError(
            f"{where}: field 'frame_dir' {short_repr(frame_dir)} is not valid text (it holds a lone surrogate, which "
            f"UTF-8 cannot store)."
        )
    label = ann["label"]
    if isinstance(label, np.ndarray) and label.size == 1:
        label = label.reshape(()).item()
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (numbers.Integral, np.integer)):
        raise PoseDataError(f"{where}: field 'label' must be an integer; got {short_repr(label)}.")
    label = int(label)
    if not _INT64_MIN <= label <= _INT64_MAX:
        raise PoseDataError(f"{where}: field 'label' is {short_repr(label)}, which does not fit a 64-bit integer.")

    kp = _as_numeric_array(ann["keypoint"], "keypoint", where)
    if kp.ndim != 4:
        raise PoseDataError(
            f"{where}: field 'keypoint' must have rank 4 [persons M, frames T, joints V, coords C]; "
            f"got shape {tuple(kp.shape)}."
        )
    m, t, v, c = kp.shape
    if m == 0:
        raise PoseDataError(f"{where}: field 'keypoint' holds zero persons (shape {tuple(kp.shape)}).")
    if t == 0:
        raise PoseDataError(f"{where}: field 'keypoint' holds zero frames (shape {tuple(kp.shape)}).")
    if v != num_joints:
        raise PoseDataError(
            f"{where}: field 'keypoint' has {v} joints (shape {tuple(kp.shape)}) but num_joints={num_joints}."
        )
    if c not in (2, 3):
        raise PoseDataError(
            f"{where}: field 'keypoint' must end in 2 (x, y) or 3 (x, y, z) coordinates; got shape {tuple(kp.shape)}."
        )
    if c == 3 and keypoint_3d != "project_xy":
        raise PoseDataError(
            f"{where}: field 'keypoint' holds 3D joints (shape {tuple(kp.shape)}); this library renders 2D "
            f"heatmaps. Pass keypoint_3d='project_xy' to keep x and y as they are (see load_pose_dataset), "
            f"or use a 2D pose pickle."
        )
    coords = _as_real(kp)
    largest = float(np.max(np.abs(coords), where=np.isfinite(coords), initial=0.0))
    if largest > MAX_ABS_COORDINATE:
        raise PoseDataError(
            f"{where}: field 'keypoint' holds a coordinate of magnitude {largest:.4g}; coordinates must be pixels "
            f"within +-{MAX_ABS_COORDINATE:.0e} (NaN or inf mark a missing joint)."
        )
    if "num_person" in ann:  # pickles that carry a person count must agree with the keypoints
        count = ann["num_person"]
        if isinstance(count, (bool, np.bool_)) or not isinstance(count, numbers.Integral) or count != m:
            raise PoseDataError(
                f"{where}: field 'num_person' is {short_repr(count)} but 'keypoint' holds {m} person(s) "
                f"(shape {tuple(kp.shape)})."
            )
    score = ann.get("keypoint_score")
    score_range = None
    if score is not None:
        score = _as_numeric_array(score, "keypoint_score", where)
        if tuple(score.shape) != (m, t, v):
            raise PoseDataError(
                f"{where}: field 'keypoint_score' has shape {tuple(score.shape)} but 'keypoint' has shape "
                f"{tuple(kp.shape)}; expected keypoint_score shape {(m, t, v)}."
            )
        values = _as_real(score)
        finite = np.isfinite(values)
        lo = float(np.min(values, where=finite, initial=np.inf))
        hi = float(np.max(values, where=finite, initial=-np.inf))
        if lo < 0 or hi > 1:
            score_range = (lo, hi)
    if "img_shape" in ann:
        img_shape = _as_hw(ann["img_shape"], "img_shape", where)
    elif c == 3:
        img_shape = None  # derived from the coordinates at conversion time
    else:
        raise PoseDataError(f"{where}: missing required field 'img_shape' (h, w) of the 2D keypoint coordinates.")
    original_shape = ann.get("original_shape")
    original_shape = _as_hw(original_shape, "original_shape", where) if original_shape is not None else None
    return {
        "frame_dir": frame_dir,
        "label": label,
        "img_shape": img_shape,
        "original_shape": original_shape,
        "score_range": score_range,
    }


def _validate(data: Any, path: str, names: Optional[list[str]], label_offset: int, num_joints: int,
              keypoint_3d: str) -> tuple[list[str], dict[str, list[int]], list[dict]]:
    """Checks the whole file. Returns (label names, {split: annotation indices}, per-annotation metadata)."""
    if not isinstance(data, dict):
        raise PoseDataError(
            f"{path}: the top level must be a dict with keys 'split' and 'annotations'; got {type(data).__name__}."
        )
    for key in ("split", "annotations"):
        if key not in data:
            raise PoseDataError(
                f"{path}: missing top-level field '{key}'; a pose pickle is "
                f"{{'split': {{name: [frame_dir, ...]}}, 'annotations': [dict, ...]}} (present: {_keys(data)})."
            )
    anns, split = data["annotations"], data["split"]
    if not isinstance(anns, (list, tuple)):
        raise PoseDataError(f"{path}: field 'annotations' must be a list of dicts; got {type(anns).__name__}.")
    if not isinstance(split, dict) or not split:
        raise PoseDataError(
            f"{path}: field 'split' must be a non-empty dict {{name: [frame_dir, ...]}}; got {short_repr(split)}."
        )

    metas = [_check_annotation(i, a, path, num_joints, keypoint_3d) for i, a in enumerate(anns)]
    index: dict[str, int] = {}
    for i, meta in enumerate(metas):
        fd = meta["frame_dir"]
        if fd in index:
            raise PoseDataError(
                f"{path}, frame_dir {short_repr(fd)}: field 'frame_dir' is duplicated (annotations #{index[fd]} and "
                f"#{i}); split lists refer to clips by frame_dir, so it must be unique."
            )
        index[fd] = i
    clipped = [i for i, meta in enumerate(metas) if meta["score_range"] is not None]
    if clipped:
        lo = min(metas[i]["score_range"][0] for i in clipped)
        hi = max(metas[i]["score_range"][1] for i in clipped)
        first = _where(path, clipped[0], anns[clipped[0]])[len(path) + 2:]  # the clip, without the path again
        logger.warning(
            "%s: %d clip(s) (first: %s) have keypoint_score outside [0, 1] (from %.4g to %.4g); the scores are "
            "clipped to [0, 1].", path, len(clipped), first, lo, hi,
        )

    # labels
    for i, meta in enumerate(metas):
        meta["label"] += label_offset
        if not _INT64_MIN <= meta["label"] <= _INT64_MAX:
            raise PoseDataError(
                f"{_where(path, i, anns[i])}: field 'label' is {short_repr(meta['label'])} after "
                f"label_offset={label_offset}, which does not fit a 64-bit integer."
            )
    labels = np.array([m["label"] for m in metas], dtype=np.int64)
    if names is None:
        if len(labels) and labels.min() < 0:
            i = int(labels.argmin())
            raise PoseDataError(
                f"{_where(path, i, anns[i])}: field 'label' is {metas[i]['label']} (after "
                f"label_offset={label_offset}); labels must be >= 0."
            )
        num_classes = int(labels.max()) + 1 if len(labels) else 1
        if num_classes > 1_000_000:
            i = int(labels.argmax())
            raise PoseDataError(
                f"{_where(path, i, anns[i])}: field 'label' is {metas[i]['label']}; without a label map the classes "
                f"are named class_0 .. class_<max label>, and more than 1000000 classes is not a label set. Pass "
                f"label_map= with the class names."
            )
        if len(labels) and labels.min() == 1 and label_offset == 0:
            logger.warning(
                "%s: no clip has label 0 (labels run 1..%d); if they are 1-based, pass label_offset=-1.",
                path, int(labels.max()),
            )
        names = [f"class_{k}" for k in range(num_classes)]
    elif len(labels):
        num_classes = len(names)
        lo, hi = int(labels.min()), int(labels.max())
        if label_offset == 0 and lo == 1 and hi == num_classes:
            i = int(labels.argmax())
            raise PoseDataError(
                f"{_where(path, i, anns[i])}: field 'label' is {hi}, outside the {num_classes} classes of the label "
                f"map (0..{num_classes - 1}). The labels of this file run 1..{num_classes}: they look 1-based; pass "
                f"label_offset=-1 to shift them to 0-based."
            )
        if lo < 0 or hi >= num_classes:
            i = int(labels.argmin()) if lo < 0 else int(labels.argmax())
            raise PoseDataError(
                f"{_where(path, i, anns[i])}: field 'label' is {int(labels[i])} (after label_offset={label_offset}), "
                f"outside the {num_classes} classes of the label map (0..{num_classes - 1})."
            )

    # splits
    splits: dict[str, list[int]] = {}
    for name, members in split.items():
        if not _is_text(name):
            raise PoseDataError(
                f"{path}: field 'split' has a split name {short_repr(name)}; split names must be strings."
            )
        if not isinstance(members, (list, tuple)):
            raise PoseDataError(
                f"{path}: split {short_repr(name)} (field 'split') must be a list of frame_dir strings; got "
                f"{type(members).__name__}."
            )
        rows, seen = [], set()
        for j, fd in enumerate(members):
            if not isinstance(fd, str):
                raise PoseDataError(
                    f"{path}: entry #{j} of split {short_repr(name)} (field 'split') must be a frame_dir string; got "
                    f"{type(fd).__name__} {short_repr(fd)}."
                )
            if fd not in index:
                raise PoseDataError(
                    f"{path}, frame_dir {short_repr(fd)}: listed in split {short_repr(name)} (field 'split') but no "
                    f"annotation has this frame_dir."
                )
            if fd in seen:
                raise PoseDataError(
                    f"{path}, frame_dir {short_repr(fd)}: listed twice in split {short_repr(name)} (field 'split')."
                )
            seen.add(fd)
            rows.append(index[fd])
        splits[name] = rows
    return names, splits, metas


# --------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------


def _to_row(ann: dict, meta: dict) -> dict:
    kp = np.asarray(ann["keypoint"])
    m, t, v, c = kp.shape
    kp = kp.astype(np.float32, copy=False)
    score = ann.get("keypoint_score")
    if score is not None:
        score = np.array(score, dtype=np.float32)  # a copy: edited below
    present = np.any(kp != 0, axis=-1)  # all-zero joints (all C coordinates) are padding / missing
    if c == 3:
        kp = kp[..., :2]
    if score is None:
        score = present.astype(np.float32)
    # NaN / inf coordinates are missing joints: zero coordinates and zero score.
    missing = ~np.isfinite(kp).all(axis=-1)
    if missing.any():
        kp = kp.copy()
        kp[missing] = 0.0
        score[missing] = 0.0
    score[~np.isfinite(score)] = 0.0
    if meta["score_range"] is not None:  # outside [0, 1]: clipped (the loader warned once for the file)
        np.clip(score, 0.0, 1.0, out=score)
    img_shape = meta["img_shape"]
    if img_shape is None:  # 3D projected without an image size: the extent of the coordinates
        img_shape = (max(1, int(math.ceil(float(kp[..., 1].max()))) + 1), max(1, int(math.ceil(float(kp[..., 0].max()))) + 1))
    return {
        "frame_dir": meta["frame_dir"],
        "label": meta["label"],
        "img_shape": list(img_shape),
        "original_shape": list(meta["original_shape"] or img_shape),
        "total_frames": t,
        "num_person": m,
        "keypoint": np.ascontiguousarray(kp.reshape(m * t, v, 2)),
        "keypoint_score": np.ascontiguousarray(score.reshape(m * t, v)),
    }


# The validated contents of the file being converted, keyed by cache key. Forked workers (num_proc > 1) inherit it;
# other workers read and validate the file again.
_LOADED: dict[str, tuple[Any, list, dict, list]] = {}


def _load_validated(path: str, key: str, options: tuple, limits: dict) -> tuple[Any, list, dict, list]:
    """(data, per-annotation metadata, {split: annotation indices}, label names), loaded once per key."""
    if key not in _LOADED:
        label_names, label_offset, num_joints, keypoint_3d = options
        data = safe_load_pickle(path, **limits)
        names, splits, metas = _validate(data, path, None if label_names is None else list(label_names),
                                         label_offset, num_joints, keypoint_3d)
        _LOADED.clear()
        _LOADED[key] = (data, metas, splits, names)
    return _LOADED[key]


def _generate_rows(shards: list, path: str, key: str, options: tuple, limits: dict):
    """`Dataset.from_generator` source: rows of the annotations in ``shards`` (lists of annotation indices)."""
    data, metas, _, _ = _load_validated(path, key, options, limits)
    anns = data["annotations"]
    for shard in shards:
        for i in shard:
            yield _to_row(anns[i], metas[i])


def _cache_root(cache_dir: Optional[str]) -> str:
    if cache_dir is None:
        import datasets

        cache_dir = datasets.config.HF_DATASETS_CACHE
    return os.fspath(cache_dir)


def _file_digest(path: str) -> str:
    """SHA-256 of the file's content (the cache key: an edit that keeps size and mtime still changes it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        bar = None
        if size >= _PROGRESS_MIN_BYTES:
            from datasets.utils.logging import is_progress_bar_enabled
            from tqdm.auto import tqdm

            bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=f"Hashing {os.path.basename(path)}", disable=not is_progress_bar_enabled())
        try:
            while True:
                chunk = f.read(1 << 22)
                if not chunk:
                    break
                digest.update(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    return digest.hexdigest()


def _resolve_num_joints(num_joints: Optional[int], layout) -> int:
    """The joint count every clip must have: the layout's, or a count that a known layout has."""
    if num_joints is not None and (isinstance(num_joints, bool) or not isinstance(num_joints, numbers.Integral)):
        raise ValueError(f"num_joints must be an integer; got {short_repr(num_joints)}.")
    if layout is not None:
        layout = get_layout(layout)
        if num_joints is not None and int(num_joints) != layout.num_joints:
            raise ValueError(
                f"num_joints={num_joints} disagrees with layout {layout.name!r}, which has {layout.num_joints} joints; "
                f"pass only the layout."
            )
        return layout.num_joints
    if num_joints is None:
        return COCO17.num_joints
    known = {lay.name: lay.num_joints for lay in LAYOUTS.values()}
    if int(num_joints) not in known.values():
        raise ValueError(
            f"num_joints={num_joints} matches no known joint layout "
            f"({', '.join(f'{n}: {k} joints' for n, k in known.items())}). The clip transforms flip and draw limbs "
            f"by the layout, so a skeleton with another joint count needs its own: pass "
            f"layout=JointLayout(...) (or its dict), and the same layout to the transform and the model config."
        )
    return int(num_joints)


def _read_marker(marker: str) -> Optional[dict]:
    """The cached conversion's summary ({"names": [...], "splits": {name: rows}}), or None if absent or unreadable."""
    try:
        with open(marker, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    ok = (
        isinstance(info, dict)
        and isinstance(info.get("names"), list) and all(isinstance(n, str) for n in info["names"])
        and isinstance(info.get("splits"), dict)
        and all(isinstance(n, int) and n >= 0 for n in info["splits"].values())
    )
    return info if ok else None


def _build_split(path: str, name: str, rows: Optional[list], expected: int, key: str, options: tuple, limits: dict,
                 features, cache_dir: Optional[str], num_proc: Optional[int]):
    """One split as an Arrow-backed Dataset, from its cache when intact; a damaged cache is rebuilt with a warning."""
    import datasets
    from datasets.exceptions import DatasetGenerationError
    from datasets.packaged_modules.generator.generator import Generator

    # datasets' split name: also the Arrow file's name, so short and plain ASCII
    split = re.sub(r"[^A-Za-z0-9_]", "_", name)[:100] or "split"
    if expected == 0:  # datasets cannot generate an empty split; an empty table is the same rows
        empty = {k: [] for k in features}
        return datasets.Dataset.from_dict(empty, features=features, split=datasets.NamedSplit(split))
    if rows is None:  # cache hit expected: the pickle is read only if the generator runs
        shards = [_LazySplit(path, key, options, limits, name)]
    elif (num_proc or 1) > 1 and len(rows) > 1:  # contiguous chunks keep the split order
        step = math.ceil(len(rows) / num_proc)
        shards = [rows[k:k + step] for k in range(0, len(rows), step)]
    else:
        shards = [rows]
    kwargs = dict(
        features=features,
        cache_dir=cache_dir,
        gen_kwargs={"shards": shards, "path": path, "key": key, "options": options, "limits": limits},
        split=split,
    )
    fingerprint = hashlib.sha256(f"{key}/{name}".encode()).hexdigest()[:32]
    # where from_generator keeps this split (the same builder it makes), to tell a cache hit and remove a damaged one
    builder = Generator(generator=_generate_rows, config_id=f"default-fingerprint={fingerprint}", **kwargs)
    builder_dir = builder.cache_dir
    cached = os.path.isdir(builder_dir)
    for attempt in (0, 1):
        try:
            ds = datasets.Dataset.from_generator(
                _generate_rows,
                num_proc=num_proc if (num_proc or 1) > 1 and len(shards) > 1 else None,
                fingerprint=fingerprint,
                **kwargs,
            )
            if ds.num_rows != expected:
                raise ValueError(f"it holds {ds.num_rows} rows instead of {expected}")
            return ds
        except PoseDataError:
            raise
        except DatasetGenerationError as e:
            cause = e.__cause__ or e
            if isinstance(cause, PoseDataError):
                raise cause from None
            if not cached or attempt:
                raise PoseDataError(
                    f"{path}: converting split {short_repr(name)} to Arrow failed: {type(cause).__name__}: "
                    f"{short_repr(str(cause))}."
                ) from e
            error = cause
        except Exception as e:  # a damaged cache: truncated or emptied Arrow file, wrong row count
            if not cached or attempt:
                raise
            error = e
        logger.warning(
            "%s: the Arrow cache of split %r (%s) is damaged (%s: %s); rebuilding it.",
            path, name, builder_dir, type(error).__name__, short_repr(str(error)),
        )
        shutil.rmtree(builder_dir, ignore_errors=True)
        cached = False


def load_pose_dataset(
    path: Union[str, os.PathLike],
    label_map: Union[None, str, os.PathLike, Sequence[str]] = None,
    splits: Optional[Sequence[str]] = None,
    num_joints: Optional[int] = None,
    label_offset: int = 0,
    keypoint_3d: str = "refuse",
    cache_dir: Optional[str] = None,
    num_proc: Optional[int] = None,
    layout: Union[None, str, dict, JointLayout] = None,
    pickle_limits: Optional[dict] = None,
):
    """Loads a pyskl-format pose pickle as a `datasets.DatasetDict`, one split per entry of its ``split`` dict.

    Args:
        path: the pickle, ``{"split": {name: [frame_dir, ...]}, "annotations": [dict, ...]}``. It is read with
            :func:`safe_load_pickle` (numeric numpy arrays and plain Python values only, within size limits).
        label_map: class names: a text file with one name per line (line k, from 0, names label k; e.g. the
            packaged NTU60 names, ``resources.packaged_data_file("data/label_maps/ntu60.txt")``), or a list of
            names. ``None`` names classes ``class_0 .. class_<max label>``.
        splits: build only these splits (default: all of them). Any names work (``xsub_train``, ``xsub_test``, ...).
        num_joints: joints V every clip must have. Default: the layout's (17 for COCO-17). Without ``layout`` it
            must be the joint count of a known layout (``pose_layouts.LAYOUTS``), since the clip transforms flip
            and draw limbs by the layout; with ``layout`` it must agree with it.
        label_offset: added to every label before checking. Labels that run 1..num_classes look 1-based and
            are refused unless you pass ``label_offset=-1``.
        keypoint_3d: what to do with 3D joints (``keypoint`` ending in C=3, e.g. the NTU Kinect skeletons):
            ``"refuse"`` (default) raises an error; ``"project_xy"`` keeps x and y exactly as they are and drops
            z; the score is ``keypoint_score`` when the file has one, else 1 where the joint is non-zero and 0
            where it is all zeros (padding). No pixel scale is applied (a true 2D projection of NTU skeletons would
            need one; their x, y are metres, y pointing up); the clip transform's PoseCompact later crops and
            rescales to the box of the non-zero joints. ``img_shape`` defaults to the extent of the coordinates.
        cache_dir: where the Arrow cache goes (default: the `datasets` cache). The cache is keyed on a SHA-256 of
            the file's content and on the options above, so a second load of an unchanged file reads it once (to
            hash it; a bar shows progress on large files) but does not unpickle it. A damaged cache (e.g. a
            truncated ``.arrow`` file) is rebuilt, with a warning.
        num_proc: processes that convert rows (forked workers share the loaded pickle; spawned ones re-read it).
        layout: the joint layout (a ``JointLayout``, a registered name such as ``"coco17"``, or its dict); sets
            ``num_joints``.
        pickle_limits: keyword arguments for :func:`safe_load_pickle` (``max_depth``, ``max_expanded_bytes``,
            ``max_items``, ``max_key_bytes``) for files beyond the defaults.

    Returns:
        ``datasets.DatasetDict`` with rows as in the module docstring: ``keypoint`` is ``[M*T, V, 2]`` float32,
        person-major (``.reshape(M, T, V, 2)`` with ``M = num_person``, ``T = total_frames``), ``keypoint_score``
        ``[M*T, V]``. A split that lists no clip (also in a file with no annotations) is an empty split.

    Conversions (never errors): float16 (or any int/float) arrays become float32; NaN / inf coordinates are
    missing joints: their coordinates and score become 0 (the clip is kept); NaN / inf scores become 0; scores
    outside [0, 1] are clipped to [0, 1] (one warning names the file); a missing ``keypoint_score`` with 2D joints
    becomes 1 for every non-zero joint and 0 for (0, 0) joints, which pyskl treats as missing; ``total_frames`` is
    the T of ``keypoint`` even when the annotation says otherwise (as in pyskl); ``original_shape`` defaults to
    ``img_shape``; extra annotation keys are ignored.

    Raises:
        PoseDataError (a ValueError) naming the file, the clip (frame_dir, or the annotation index) and the field,
        for any bad data: missing ``split``/``annotations``; an empty ``split`` dict; non-dict annotations; missing
        ``frame_dir``/``label``/``keypoint`` (or ``img_shape`` for 2D); ``frame_dir`` not valid text; labels not
        integers, not within int64, negative, outside the label map, or 1-based; keypoint/score arrays that are not
        real numbers (bool, complex, datetime, strings, objects), keypoint rank not 4, zero persons or frames,
        V != num_joints, C not 2/3, 3D joints with ``keypoint_3d="refuse"``, coordinates beyond +-1e6;
        keypoint_score shape not [M, T, V]; ``num_person`` (when present) other than M; ``img_shape`` /
        ``original_shape`` not two integers in [1, 100000]; duplicate frame_dir; split names that are not strings,
        split entries that are not strings or name no annotation; unknown ``splits``. UnsafePickleError (a
        PoseDataError) when the file is empty, truncated, damaged, not a pickle (a zip such as a torch checkpoint)
        or refers to anything but numeric numpy data and plain Python values, or exceeds the size limits.
        ValueError for bad arguments (``keypoint_3d``, ``num_joints`` / ``layout``).
    """
    if keypoint_3d not in ("refuse", "project_xy"):
        raise ValueError(f"keypoint_3d must be 'refuse' or 'project_xy'; got {short_repr(keypoint_3d)}.")
    num_joints = _resolve_num_joints(num_joints, layout)
    limits = dict(pickle_limits or {})
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Pose pickle not found: {path}")
    names = None if label_map is None else read_label_map(label_map)
    options = (None if names is None else tuple(names), int(label_offset), int(num_joints), keypoint_3d)
    key = hashlib.sha256(json.dumps([_CACHE_FORMAT_VERSION, _file_digest(path), options]).encode()).hexdigest()[:32]
    root = _cache_root(cache_dir)
    marker = os.path.join(root, "skeletonclip_pose", f"{key}.json")

    info = _read_marker(marker)
    if info is None:  # first load: read and validate now, so that errors surface here as PoseDataError
        _, _, split_rows, names = _load_validated(path, key, options, limits)
        info = {"names": list(names), "splits": {s: len(r) for s, r in split_rows.items()}}
    names = info["names"]

    wanted = list(info["splits"]) if splits is None else [str(s) for s in splits]
    unknown = [s for s in wanted if s not in info["splits"]]
    if unknown:
        raise PoseDataError(
            f"{path}: no split named {short_repr(unknown)}; the file has splits {short_repr(list(info['splits']))}."
        )

    import datasets

    features = pose_features(names, num_joints)
    out = {}
    try:
        for name in wanted:
            # On a cache hit the pickle is not loaded and the generator never runs; if the Arrow files were
            # removed or damaged, _LazySplit makes the generator read the pickle again.
            rows = _LOADED[key][2][name] if key in _LOADED else None
            out[name] = _build_split(path, name, rows, info["splits"][name], key, options, limits, features,
                                     cache_dir, num_proc)
    finally:
        _LOADED.pop(key, None)

    os.makedirs(os.path.dirname(marker), exist_ok=True)
    tmp = f"{marker}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f)
    os.replace(tmp, marker)
    return datasets.DatasetDict(out)


class _LazySplit:
    """Iterates the annotation indices of one split, reading the pickle only if iterated (Arrow cache missing)."""

    def __init__(self, path: str, key: str, options: tuple, limits: dict, name: str):
        self.path, self.key, self.options, self.limits, self.name = path, key, options, limits, name

    def __iter__(self):
        return iter(_load_validated(self.path, self.key, self.options, self.limits)[2][self.name])
