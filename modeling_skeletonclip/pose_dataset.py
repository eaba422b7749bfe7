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
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from .safe_pickle import PoseDataError, UnsafePickleError, safe_load_pickle  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

# Bump when the row layout or the conversion changes: old Arrow caches are then ignored.
_CACHE_FORMAT_VERSION = 1


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
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PoseDataError(f"Label map {source}: class names must be unique; repeated: {dupes[:5]}.")
    return names


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------

_REQUIRED_KEYS = ("frame_dir", "label", "keypoint")


def _where(path: str, index: int, ann: Any) -> str:
    fd = ann.get("frame_dir") if isinstance(ann, dict) else None
    clip = f"frame_dir {fd!r}" if isinstance(fd, str) else f"annotation #{index}"
    return f"{path}, {clip}"


def _as_hw(value: Any, field: str, where: str) -> tuple[int, int]:
    try:
        hw = tuple(value)
        ok = len(hw) == 2 and all(float(v) == int(v) and int(v) > 0 for v in hw)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise PoseDataError(f"{where}: field '{field}' must be two positive integers (h, w); got {value!r}.")
    return int(hw[0]), int(hw[1])


def _as_float_array(value: Any, field: str, where: str) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
        return value
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise PoseDataError(f"{where}: field '{field}' is not a numeric array ({e}).") from None
    return arr


def _check_annotation(index: int, ann: Any, path: str, num_joints: int, keypoint_3d: str) -> dict:
    """Validates one annotation without converting its arrays; returns what the conversion needs."""
    if not isinstance(ann, dict):
        raise PoseDataError(
            f"{path}, annotation #{index}: annotations must be dicts; got {type(ann).__name__}."
        )
    where = _where(path, index, ann)
    missing = [k for k in _REQUIRED_KEYS if k not in ann]
    if missing:
        raise PoseDataError(f"{where}: missing required field(s) {missing}; present: {sorted(map(str, ann))}.")
    frame_dir = ann["frame_dir"]
    if not isinstance(frame_dir, str):
        raise PoseDataError(f"{where}: field 'frame_dir' must be a string; got {type(frame_dir).__name__}.")
    label = ann["label"]
    if isinstance(label, np.ndarray) and label.size == 1:
        label = label.reshape(()).item()
    if isinstance(label, bool) or not isinstance(label, (numbers.Integral, np.integer)):
        raise PoseDataError(f"{where}: field 'label' must be an integer; got {label!r}.")

    kp = ann["keypoint"]
    kp = _as_float_array(kp, "keypoint", where)
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
    score = ann.get("keypoint_score")
    if score is not None:
        score = _as_float_array(score, "keypoint_score", where)
        if tuple(score.shape) != (m, t, v):
            raise PoseDataError(
                f"{where}: field 'keypoint_score' has shape {tuple(score.shape)} but 'keypoint' has shape "
                f"{tuple(kp.shape)}; expected keypoint_score shape {(m, t, v)}."
            )
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
        "label": int(label),
        "img_shape": img_shape,
        "original_shape": original_shape,
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
                f"{{'split': {{name: [frame_dir, ...]}}, 'annotations': [dict, ...]}} (present: {sorted(map(str, data))})."
            )
    anns, split = data["annotations"], data["split"]
    if not isinstance(anns, (list, tuple)):
        raise PoseDataError(f"{path}: field 'annotations' must be a list of dicts; got {type(anns).__name__}.")
    if not isinstance(split, dict) or not split:
        raise PoseDataError(f"{path}: field 'split' must be a non-empty dict {{name: [frame_dir, ...]}}; got {split!r:.80}.")

    metas = [_check_annotation(i, a, path, num_joints, keypoint_3d) for i, a in enumerate(anns)]
    index: dict[str, int] = {}
    for i, meta in enumerate(metas):
        fd = meta["frame_dir"]
        if fd in index:
            raise PoseDataError(
                f"{path}, frame_dir {fd!r}: field 'frame_dir' is duplicated (annotations #{index[fd]} and #{i}); "
                f"split lists refer to clips by frame_dir, so it must be unique."
            )
        index[fd] = i

    # labels
    for i, meta in enumerate(metas):
        meta["label"] += label_offset
    labels = np.array([m["label"] for m in metas], dtype=np.int64)
    if names is None:
        if len(labels) and labels.min() < 0:
            i = int(labels.argmin())
            raise PoseDataError(
                f"{_where(path, i, anns[i])}: field 'label' is {metas[i]['label']} (after label_offset={label_offset}); "
                f"labels must be >= 0."
            )
        num_classes = int(labels.max()) + 1 if len(labels) else 1
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
        if not isinstance(members, (list, tuple, np.ndarray)):
            raise PoseDataError(f"{path}: split {name!r} must be a list of frame_dir strings; got {type(members).__name__}.")
        rows, seen = [], set()
        for fd in members:
            if fd not in index:
                raise PoseDataError(
                    f"{path}, frame_dir {fd!r}: listed in split {name!r} (field 'split') but no annotation has this frame_dir."
                )
            if fd in seen:
                raise PoseDataError(f"{path}, frame_dir {fd!r}: listed twice in split {name!r} (field 'split').")
            seen.add(fd)
            rows.append(index[fd])
        splits[str(name)] = rows
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


def _load_validated(path: str, key: str, options: tuple) -> tuple[Any, list, dict, list]:
    """(data, per-annotation metadata, {split: annotation indices}, label names), loaded once per key."""
    if key not in _LOADED:
        label_names, label_offset, num_joints, keypoint_3d = options
        data = safe_load_pickle(path)
        names, splits, metas = _validate(data, path, None if label_names is None else list(label_names),
                                         label_offset, num_joints, keypoint_3d)
        _LOADED.clear()
        _LOADED[key] = (data, metas, splits, names)
    return _LOADED[key]


def _generate_rows(shards: list, path: str, key: str, options: tuple):
    """`Dataset.from_generator` source: rows of the annotations in ``shards`` (lists of annotation indices)."""
    data, metas, _, _ = _load_validated(path, key, options)
    anns = data["annotations"]
    for shard in shards:
        for i in shard:
            yield _to_row(anns[i], metas[i])


def _cache_root(cache_dir: Optional[str]) -> str:
    if cache_dir is None:
        import datasets

        cache_dir = datasets.config.HF_DATASETS_CACHE
    return os.fspath(cache_dir)


def load_pose_dataset(
    path: Union[str, os.PathLike],
    label_map: Union[None, str, os.PathLike, Sequence[str]] = None,
    splits: Optional[Sequence[str]] = None,
    num_joints: int = 17,
    label_offset: int = 0,
    keypoint_3d: str = "refuse",
    cache_dir: Optional[str] = None,
    num_proc: Optional[int] = None,
):
    """Loads a pyskl-format pose pickle as a `datasets.DatasetDict`, one split per entry of its ``split`` dict.

    Args:
        path: the pickle, ``{"split": {name: [frame_dir, ...]}, "annotations": [dict, ...]}``. It is read with
            :func:`safe_load_pickle` (numeric numpy arrays and plain Python values only, within size limits).
        label_map: class names: a text file with one name per line (line k, from 0, names label k; e.g.
            ``data/label_maps/ntu60.txt``), or a list of names. ``None`` names classes ``class_0 .. class_<max label>``.
        splits: build only these splits (default: all of them). Any names work (``xsub_train``, ``xsub_test``, ...).
        num_joints: joints V every clip must have (17 for COCO-17).
        label_offset: added to every label before checking. Labels that run 1..num_classes look 1-based and
            are refused unless you pass ``label_offset=-1``.
        keypoint_3d: what to do with 3D joints (``keypoint`` ending in C=3, e.g. the NTU Kinect skeletons):
            ``"refuse"`` (default) raises an error; ``"project_xy"`` keeps x and y exactly as they are and drops
            z; the score is ``keypoint_score`` when the file has one, else 1 where the joint is non-zero and 0
            where it is all zeros (padding). No pixel scale is applied (a true 2D projection of NTU skeletons would
            need one; their x, y are metres, y pointing up); the clip transform's PoseCompact later crops and
            rescales to the box of the non-zero joints. ``img_shape`` defaults to the extent of the coordinates.
        cache_dir: where the Arrow cache goes (default: the `datasets` cache). The cache is keyed on the file's
            path, modification time and size and on the options above, so a second load of an unchanged file
            does not read the pickle at all.
        num_proc: processes that convert rows (forked workers share the loaded pickle; spawned ones re-read it).

    Returns:
        ``datasets.DatasetDict`` with rows as in the module docstring: ``keypoint`` is ``[M*T, V, 2]`` float32,
        person-major (``.reshape(M, T, V, 2)`` with ``M = num_person``, ``T = total_frames``), ``keypoint_score``
        ``[M*T, V]``.

    Conversions (never errors): float16 (or any numeric) arrays become float32; NaN / inf coordinates are
    missing joints: their coordinates and score become 0 (the clip is kept); a missing ``keypoint_score`` with
    2D joints becomes 1 for every non-zero joint and 0 for (0, 0) joints, which pyskl treats as missing;
    ``total_frames`` is the T of ``keypoint`` even when the annotation says otherwise (as in pyskl);
    ``original_shape`` defaults to ``img_shape``; extra annotation keys are ignored.

    Raises:
        PoseDataError (a ValueError) naming the file, the clip (frame_dir, or the annotation index) and the field:
        missing ``split``/``annotations``; non-dict annotations; missing ``frame_dir``/``label``/``keypoint``
        (or ``img_shape`` for 2D); keypoint rank not 4, zero persons or frames, V != num_joints, C not 2/3,
        3D joints with ``keypoint_3d="refuse"``; keypoint_score shape not [M, T, V]; labels negative, outside
        the label map, or 1-based; duplicate frame_dir; split entries naming no annotation; unknown ``splits``.
        UnsafePickleError when the pickle refers to anything but numpy and plain Python values.
    """
    import datasets

    if keypoint_3d not in ("refuse", "project_xy"):
        raise ValueError(f"keypoint_3d must be 'refuse' or 'project_xy'; got {keypoint_3d!r}.")
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Pose pickle not found: {path}")
    names = None if label_map is None else read_label_map(label_map)
    st = os.stat(path)
    options = (None if names is None else tuple(names), int(label_offset), int(num_joints), keypoint_3d)
    key = hashlib.sha256(
        json.dumps([_CACHE_FORMAT_VERSION, path, st.st_mtime_ns, st.st_size, options]).encode()
    ).hexdigest()[:32]
    root = _cache_root(cache_dir)
    marker = os.path.join(root, "skeletonclip_pose", f"{key}.json")

    info = None
    if os.path.isfile(marker):
        try:
            with open(marker, encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = None
    if info is None:  # first load: read and validate now, so that errors surface here as PoseDataError
        _, _, split_rows, names = _load_validated(path, key, options)
        info = {"names": list(names), "splits": {s: len(r) for s, r in split_rows.items()}}
    names = info["names"]

    wanted = list(info["splits"]) if splits is None else [str(s) for s in splits]
    unknown = [s for s in wanted if s not in info["splits"]]
    if unknown:
        raise PoseDataError(f"{path}: no split named {unknown}; the file has splits {list(info['splits'])}.")

    features = pose_features(names, num_joints)
    out = {}
    try:
        for name in wanted:
            # On a cache hit the pickle is not loaded and the generator never runs; if the Arrow files were
            # removed, _LazySplit makes the generator read the pickle again.
            rows = _LOADED[key][2][name] if key in _LOADED else None
            if rows is None:
                shards = [_LazySplit(path, key, options, name)]
            elif (num_proc or 1) > 1 and len(rows) > 1:  # contiguous chunks keep the split order
                step = math.ceil(len(rows) / num_proc)
                shards = [rows[k:k + step] for k in range(0, len(rows), step)]
            else:
                shards = [rows]
            out[name] = datasets.Dataset.from_generator(
                _generate_rows,
                features=features,
                cache_dir=cache_dir,
                gen_kwargs={"shards": shards, "path": path, "key": key, "options": options},
                num_proc=num_proc if (num_proc or 1) > 1 and len(shards) > 1 else None,
                split=re.sub(r"[^\w.]", "_", name) or "split",
                fingerprint=hashlib.sha256(f"{key}/{name}".encode()).hexdigest()[:32],
            )
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

    def __init__(self, path: str, key: str, options: tuple, name: str):
        self.path, self.key, self.options, self.name = path, key, options, name

    def __iter__(self):
        return iter(_load_validated(self.path, self.key, self.options)[2][self.name])
