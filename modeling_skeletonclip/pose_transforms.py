"""Frame sampling and keypoint augmentation (SPEC §2), and the batch collator.

Everything here works on keypoints, never on images: a clip is a few KB of coordinates and the
model renders heatmaps on its own device. The steps reproduce the PoseC3D recipe of pyskl:

* train: ``UniformSampleFrames(48)`` -> ``PoseCompact(hw_ratio=1, allow_imgpad=True)`` ->
  ``Resize(short side 64)`` -> ``RandomResizedCrop(area 0.56..1)`` -> ``Resize(56x56)`` -> ``Flip(0.5)``
* val: ``UniformSampleFrames(48, test mode)`` -> ``PoseCompact`` -> ``Resize(64x64)``
* test: val with 10 clips, each clip also mirrored (flip doubling): 20 views. As in pyskl's
  ``GeneratePoseTarget(double=True)``, a mirrored view is its rendered heatmap volume mirrored (columns
  x -> W - 1 - x, left/right channels swapped), not the volume of mirrored keypoints: the transform
  emits the unflipped keypoints again with a ``mirrored`` flag, and the model mirrors after rendering.

Input rows (the format of :func:`load_pose_dataset`): ``frame_dir`` str, ``label`` int,
``img_shape`` (h, w), ``total_frames`` T, ``num_person`` M, ``keypoint`` float [M*T, V, 2]
(person-major), ``keypoint_score`` float [M*T, V]. Values may be numpy arrays (the dataset in
``"numpy"`` format: the fast path) or nested Python lists. Missing joints have coordinates 0 and
score 0.

The small step functions (:func:`uniform_sample_frames`, :func:`pose_compact`,
:func:`resize_keypoints`, :func:`random_resized_crop_box`, :func:`crop_keypoints`,
:func:`flip_keypoints`) are public so that each step can be checked on its own;
:class:`PoseClipTransform` chains them.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .pose_errors import MAX_ABS_COORDINATE, PoseDataError
from .pose_layouts import get_layout

__all__ = [
    "PoseClipTransform",
    "PoseCollator",
    "uniform_sample_frames",
    "pose_compact",
    "rescale_size",
    "resize_keypoints",
    "random_resized_crop_box",
    "crop_keypoints",
    "flip_keypoints",
]

# The seed pyskl uses for its deterministic test-mode sampling.
TEST_MODE_SEED = 255


# ---------------------------------------------------------------------------------------------
# Frame sampling
# ---------------------------------------------------------------------------------------------
def _pair_interval(p_interval) -> tuple[float, float]:
    if isinstance(p_interval, (int, float)):
        return float(p_interval), float(p_interval)
    lo, hi = p_interval
    lo, hi = float(lo), float(hi)
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"p_interval must satisfy 0 < lo <= hi <= 1, got {p_interval!r}.")
    return lo, hi


def _skip_gaps(chosen: np.ndarray, L: int) -> np.ndarray:
    """L <= n < 2L: L consecutive frames, each chosen one of the L + 1 gaps skipping one more frame."""
    offset = np.zeros(L + 1, dtype=np.int64)
    offset[chosen] = 1
    return np.arange(L) + np.cumsum(offset)[:-1]


def _legacy_clip(rs: np.random.RandomState, T: int, L: int, num_clips: int, i: int, lo: float, hi: float):
    """One test-mode clip, drawing from a legacy RandomState in pyskl's exact order."""
    ratio = rs.rand() * (hi - lo) + lo  # drawn even when lo == hi, as pyskl does
    n = int(ratio * T)
    off = rs.randint(T - n + 1)
    if n < L:
        start = i if n < num_clips else i * n // num_clips
        inds = np.arange(start, start + L)
    elif n < 2 * L:
        inds = _skip_gaps(rs.choice(L + 1, n - L, replace=False), L)
    else:
        bids = np.arange(L + 1, dtype=np.int64) * n // L
        inds = bids[:L] + rs.randint(np.diff(bids))
    return inds + off


def _train_clip(rng: np.random.Generator, T: int, L: int, lo: float, hi: float):
    """One train-mode clip from a numpy Generator (deterministic draws are skipped)."""
    if lo == hi:
        n = int(lo * T)
    else:
        n = int((rng.random() * (hi - lo) + lo) * T)
    n = max(n, 1)  # pyskl would fail on randint(0) for a 0-frame interval
    off = int(rng.integers(T - n + 1)) if n < T else 0
    if n < L:
        start = int(rng.integers(n))
        inds = np.arange(start, start + L)
    elif n < 2 * L:
        inds = _skip_gaps(rng.choice(L + 1, n - L, replace=False), L)
    else:
        starts, sizes = _segments(n, L)
        # one uniform frame per segment; min() guards the (2**-53) case u * size == size
        inds = starts + np.minimum((rng.random(L) * sizes).astype(np.int64), sizes.astype(np.int64) - 1)
    return inds + off if off else inds


_SEGMENTS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _segments(n: int, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Segment starts (int64) and sizes (float64) of pyskl's boundaries b_i = i * n // L, cached."""
    seg = _SEGMENTS.get((n, L))
    if seg is None:
        bids = np.arange(L + 1, dtype=np.int64) * n // L
        seg = (bids[:L].copy(), np.diff(bids).astype(np.float64))
        if len(_SEGMENTS) < 65536:
            _SEGMENTS[(n, L)] = seg
    return seg


def uniform_sample_frames(
    total_frames: int,
    clip_len: int,
    num_clips: int = 1,
    p_interval=1.0,
    test_mode: bool = False,
    rng: Optional[np.random.Generator] = None,
) -> np.ndarray:
    """Frame indices of ``num_clips`` clips of ``clip_len`` frames, concatenated: int64 [num_clips * clip_len].

    pyskl's ``UniformSampleFrames``. Test mode is deterministic and draws from a fresh legacy
    ``np.random.RandomState(255)``, call for call as pyskl does, so its indices are identical to
    pyskl's. Train mode draws from ``rng`` (a ``np.random.Generator``), a fresh one if None.
    All indices are taken modulo ``total_frames``.
    """
    T, L = int(total_frames), int(clip_len)
    if T <= 0:
        raise ValueError(f"total_frames must be positive, got {total_frames}.")
    if L <= 0 or num_clips <= 0:
        raise ValueError(f"clip_len and num_clips must be positive, got {clip_len} and {num_clips}.")
    lo, hi = _pair_interval(p_interval)
    if test_mode:
        rs = np.random.RandomState(TEST_MODE_SEED)
        clips = [_legacy_clip(rs, T, L, num_clips, i, lo, hi) for i in range(num_clips)]
    else:
        if rng is None:
            rng = np.random.default_rng()
        clips = [_train_clip(rng, T, L, lo, hi) for _ in range(num_clips)]
    inds = clips[0] if num_clips == 1 else np.concatenate(clips)
    return np.mod(inds, T).astype(np.int64, copy=False)


# ---------------------------------------------------------------------------------------------
# Geometry steps. Keypoints are float arrays [..., 2] (x, y) in pixels; img_shape is (h, w).
# ---------------------------------------------------------------------------------------------
def pose_compact(
    keypoints: np.ndarray,
    img_shape,
    padding: float = 0.25,
    threshold: float = 10,
    hw_ratio=1.0,
    allow_imgpad: bool = True,
):
    """pyskl's ``PoseCompact``, in place on ``keypoints`` (float [..., 2]); returns ``(keypoints, (h, w))``.

    NaN coordinates become 0. One box encloses every non-zero x and every non-zero y (x and y
    are screened separately, as pyskl does) of all persons and frames. When the box is narrower
    or lower than ``threshold`` pixels nothing changes. Otherwise the box keeps its centre and
    grows by ``1 + padding``; with ``hw_ratio`` r the height becomes at least r x width and the
    width at least height / r (r = 1: a square of the larger side). Its corners are truncated to
    integers (``int()``, as pyskl); with ``allow_imgpad`` the box may leave the image, otherwise it
    is clipped to it. The box origin is subtracted from the non-zero coordinates only, and the new
    image is the box: ``(int(max_y) - int(min_y), int(max_x) - int(min_x))``.
    """
    h, w = img_shape
    if not (keypoints.flags.c_contiguous and np.issubdtype(keypoints.dtype, np.floating)):
        keypoints = np.ascontiguousarray(keypoints, dtype=np.float32)
    if not np.isfinite(keypoints.sum()):  # one cheap reduction instead of an isnan pass per row
        keypoints[np.isnan(keypoints)] = 0.0
    pts = keypoints.reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    nx, ny = x != 0, y != 0  # x and y are screened separately, as pyskl does
    xs, ys = x[nx], y[ny]
    if xs.size == 0 or ys.size == 0:
        return keypoints, (h, w)
    min_x, max_x = xs.min(), xs.max()
    min_y, max_y = ys.min(), ys.max()
    if max_x - min_x < threshold or max_y - min_y < threshold:
        return keypoints, (h, w)

    cx, cy = (max_x + min_x) / 2, (max_y + min_y) / 2
    half_w = (max_x - min_x) / 2 * (1 + padding)
    half_h = (max_y - min_y) / 2 * (1 + padding)
    if hw_ratio is not None:
        r0, r1 = (hw_ratio, hw_ratio) if isinstance(hw_ratio, (int, float)) else hw_ratio
        half_h = max(r0 * half_w, half_h)
        half_w = max(1 / r1 * half_h, half_w)
    x0, x1 = cx - half_w, cx + half_w
    y0, y1 = cy - half_h, cy + half_h
    if allow_imgpad:
        x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
    else:
        x0, y0 = int(max(0, x0)), int(max(0, y0))
        x1, y1 = int(min(w, x1)), int(min(h, y1))
    # subtract the box origin from the non-zero coordinates only
    np.subtract(x, x0, out=x, where=nx)
    np.subtract(y, y0, out=y, where=ny)
    return keypoints, (y1 - y0, x1 - x0)


def rescale_size(old_size, scale) -> tuple[int, int]:
    """mmcv's ``rescale_size``: (w, h) scaled as large as fits ``scale`` (a (long, short) edge bound or a factor)."""
    w, h = old_size
    if isinstance(scale, (int, float)):
        factor = float(scale)
    else:
        factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(w * factor + 0.5), int(h * factor + 0.5)


def resize_keypoints(keypoints: np.ndarray, img_shape, scale, keep_ratio: bool = True):
    """pyskl's ``Resize``: returns ``(keypoints * (new_w / w, new_h / h), (new_h, new_w))``.

    ``keep_ratio=True``: ``scale`` bounds the (long, short) edges, e.g. ``(inf, 64)`` = short side 64;
    ``keep_ratio=False``: ``scale`` is the exact output ``(w, h)``. All points are scaled (zeros stay zero).
    """
    h, w = img_shape
    if keep_ratio:
        new_w, new_h = rescale_size((w, h), scale)
    else:
        new_w, new_h = int(scale[0]), int(scale[1])
    factor = np.array([new_w / w, new_h / h], dtype=np.float32)
    return keypoints * factor, (new_h, new_w)


def random_resized_crop_box(
    img_shape,
    rng: np.random.Generator,
    area_range=(0.56, 1.0),
    aspect_ratio_range=(3 / 4, 4 / 3),
    max_attempts: int = 10,
) -> tuple[int, int, int, int]:
    """pyskl's ``RandomResizedCrop.get_crop_bbox``: an integer box ``(left, top, right, bottom)``.

    Up to ``max_attempts`` candidates with area ~ U(area_range) x h x w and aspect w/h log-uniform
    in ``aspect_ratio_range``; the first that fits gets a uniform position. Fallback: the centred
    square of side min(h, w).
    """
    h, w = int(img_shape[0]), int(img_shape[1])
    area = h * w
    log_lo, log_hi = math.log(aspect_ratio_range[0]), math.log(aspect_ratio_range[1])
    a_lo, a_hi = area_range
    # One draw for every candidate (aspect, area) pair and the two offsets: cheaper than many small draws.
    u = rng.random(2 * max_attempts + 2).tolist()
    for i in range(max_attempts):
        aspect = math.exp(log_lo + (log_hi - log_lo) * u[2 * i])
        target = (a_lo + (a_hi - a_lo) * u[2 * i + 1]) * area
        crop_w = round(math.sqrt(target * aspect))  # round half to even, like np.round
        crop_h = round(math.sqrt(target / aspect))
        if crop_w <= w and crop_h <= h:
            left = min(int(u[-2] * (w - crop_w + 1)), w - crop_w)
            top = min(int(u[-1] * (h - crop_h + 1)), h - crop_h)
            return left, top, left + crop_w, top + crop_h
    size = min(h, w)
    left, top = (w - size) // 2, (h - size) // 2
    return left, top, left + size, top + size


def crop_keypoints(keypoints: np.ndarray, box) -> tuple[np.ndarray, tuple[int, int]]:
    """pyskl's crop of keypoints: subtract the box origin from ALL points (missing joints, at 0,
    become negative; their score stays 0, so they still render nothing). Returns (keypoints, (h, w))."""
    left, top, right, bottom = box
    return keypoints - np.array([left, top], dtype=keypoints.dtype), (bottom - top, right - left)


def flip_keypoints(keypoints: np.ndarray, scores: np.ndarray, width: float, flip_permutation: Sequence[int]):
    """pyskl's horizontal ``Flip`` of keypoints [..., V, 2] and scores [..., V] (copies): the training flip.

    x -> width - x for non-zero x; left and right joints (and their scores) swap places. Test-time
    flip doubling mirrors rendered heatmaps instead (``heatmaps.mirror_heatmaps``).
    """
    perm = np.asarray(flip_permutation)
    kp = keypoints[..., perm, :]  # fancy indexing: a copy
    x = kp[..., 0]
    nz = x != 0
    x[nz] = width - x[nz]
    return kp, scores[..., perm]


# ---------------------------------------------------------------------------------------------
# Row decoding
# ---------------------------------------------------------------------------------------------
def _clip_name(example: Any, index: Optional[int] = None) -> str:
    """How errors name a row: its frame_dir (bounded), else its position."""
    frame_dir = example.get("frame_dir") if isinstance(example, dict) else None
    if isinstance(frame_dir, str):
        return f"frame_dir {reprlib.repr(frame_dir)}"
    return f"Example {index}" if index is not None else "A pose row"


def _float_array(value, field: str, clip: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object:  # ragged nesting as returned by some dataset formats: stack the pieces
        arr = np.stack([_float_array(v, field, clip) for v in arr])
    if arr.dtype.kind not in "fiu":
        raise PoseDataError(f"{clip}: field {field!r} must hold real numbers, got dtype {arr.dtype}.")
    return arr.astype(np.float32, copy=False)


def _int_field(example: dict, field: str, clip: str) -> int:
    value = np.asarray(example[field])
    if value.size != 1 or value.dtype.kind not in "iu" or not -(2**62) < int(value.reshape(())) < 2**62:
        raise PoseDataError(f"{clip}: field {field!r} must be an integer, got {reprlib.repr(example[field])}.")
    return int(value.reshape(()))


def _decode_row(example: dict) -> tuple[np.ndarray, np.ndarray, tuple[float, float], int]:
    """Row -> keypoints [M, T, V, 2], scores [M, T, V], img_shape (h, w), label."""
    clip = _clip_name(example)
    if not isinstance(example, dict):
        raise PoseDataError(f"A pose row must be a dict, got {type(example).__name__}.")
    missing = [key for key in ("keypoint", "label", "img_shape") if key not in example]
    if missing:
        raise PoseDataError(f"{clip}: the pose row lacks field(s) {missing}; got {reprlib.repr(sorted(example))}.")
    kp = _float_array(example["keypoint"], "keypoint", clip)
    label = _int_field(example, "label", clip)
    try:
        if isinstance(example["img_shape"], (str, bytes)):  # "48" would iterate as (4, 8)
            raise TypeError
        h, w = (float(v) for v in example["img_shape"])
    except (TypeError, ValueError):
        h = w = math.nan
    if not (0 < h < math.inf and 0 < w < math.inf):
        raise PoseDataError(f"{clip}: field 'img_shape' must be (h, w) > 0, got {reprlib.repr(example['img_shape'])}.")
    if kp.ndim != 3 or kp.shape[-1] != 2:
        raise PoseDataError(f"{clip}: field 'keypoint' must be [M*T, V, 2] (2D coordinates), got shape {kp.shape}.")
    if np.abs(np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)).max(initial=0.0) > MAX_ABS_COORDINATE:
        raise PoseDataError(
            f"{clip}: field 'keypoint' holds coordinates beyond {MAX_ABS_COORDINATE:g} pixels (largest "
            f"{np.abs(np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)).max():g}); these are not pixel positions."
        )
    rows, V = kp.shape[0], kp.shape[1]
    if "keypoint_score" in example and example["keypoint_score"] is not None:
        scores = _float_array(example["keypoint_score"], "keypoint_score", clip)
        if scores.shape != (rows, V):
            raise PoseDataError(f"{clip}: field 'keypoint_score' must be [M*T, V] = {(rows, V)}, got {scores.shape}.")
    else:
        scores = np.ones((rows, V), dtype=np.float32)
    if example.get("num_person") is not None:
        M = _int_field(example, "num_person", clip)
    elif example.get("total_frames"):
        M = max(rows // max(_int_field(example, "total_frames", clip), 1), 1)
    else:
        M = 1
    if M < 0 or (M == 0 and rows > 0):
        raise PoseDataError(f"{clip}: field 'num_person' is {M} but 'keypoint' holds {rows} rows.")
    if rows == 0:
        # A clip with no person at all: one empty person keeps every shape valid (renders nothing).
        T = max(_int_field(example, "total_frames", clip) if "total_frames" in example else 1, 1)
        return np.zeros((1, T, V, 2), np.float32), np.zeros((1, T, V), np.float32), (h, w), label
    if rows % M:
        raise PoseDataError(f"{clip}: field 'keypoint' has {rows} rows, not a multiple of num_person={M}.")
    T = rows // M
    return kp.reshape(M, T, V, 2), scores.reshape(M, T, V), (h, w), label


# ---------------------------------------------------------------------------------------------
# The transform
# ---------------------------------------------------------------------------------------------
class PoseClipTransform:
    """Samples frames and augments keypoints of one pose row (SPEC §2).

    ``__call__(row)`` returns numpy arrays, coordinates in the pixel frame of the output size
    (``train_size`` in train mode, ``eval_size`` otherwise):

    * ``keypoints`` float32 [views, M, clip_len, V, 2]
    * ``keypoint_scores`` float32 [views, M, clip_len, V]
    * ``mirrored`` bool [views], with ``flip_double`` only: the views the model mirrors after rendering
    * ``label`` int

    ``views`` = ``num_clips``, or ``2 * num_clips`` with ``flip_double``: views ``[0, num_clips)``
    are the clips in sampling order, views ``[num_clips, 2 * num_clips)`` the same clips mirrored
    (view ``num_clips + i`` mirrors view ``i``): their keypoints are those of view ``i`` and
    ``mirrored`` is True, so that the model mirrors their rendered heatmaps as pyskl does.

    ``transform_batch`` is the batched form for ``dataset.with_transform``; the faster path is the
    dataset in ``"numpy"`` format with this transform inside :class:`PoseCollator`.

    Train mode draws from a ``np.random.Generator`` owned by the transform: seeded from ``seed``
    and, inside a DataLoader worker, from the worker's seed (so workers differ and epochs differ);
    from ``torch.initial_seed()`` when ``seed`` is None in the main process. Val/test are
    deterministic (pyskl's fixed sampling seed 255).
    """

    def __init__(
        self,
        mode: str = "train",
        clip_len: int = 48,
        num_clips: Optional[int] = None,
        p_interval=(1.0, 1.0),
        hw_ratio: Optional[float] = 1.0,
        allow_imgpad: bool = True,
        resize_short: int = 64,
        crop_area=(0.56, 1.0),
        train_size=(56, 56),
        eval_size=(64, 64),
        flip_prob: float = 0.5,
        flip_double: Optional[bool] = None,
        layout="coco17",
        seed: Optional[int] = None,
    ):
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be 'train', 'val' or 'test', got {mode!r}.")
        self.mode = mode
        self.clip_len = int(clip_len)
        self.num_clips = int(num_clips) if num_clips is not None else (10 if mode == "test" else 1)
        if self.clip_len <= 0 or self.num_clips <= 0:
            raise ValueError(f"clip_len and num_clips must be positive, got {clip_len} and {num_clips}.")
        self.p_interval = _pair_interval(p_interval)
        self.hw_ratio = hw_ratio
        self.allow_imgpad = allow_imgpad
        self.resize_short = resize_short
        self.crop_area = tuple(float(a) for a in crop_area)
        if not 0 < self.crop_area[0] <= self.crop_area[1] <= 1:
            raise ValueError(f"crop_area must satisfy 0 < lo <= hi <= 1, got {crop_area!r}.")
        self.train_size = _hw(train_size)
        self.eval_size = _hw(eval_size)
        self.flip_prob = float(flip_prob)
        self.flip_double = bool(flip_double) if flip_double is not None else mode == "test"
        self.layout = get_layout(layout)
        self.flip_permutation = np.asarray(self.layout.flip_permutation(), dtype=np.int64)
        self.seed = seed
        self._test_inds_cache: dict[int, np.ndarray] = {}

    # -- randomness ---------------------------------------------------------------------------
    def _get_rng(self) -> np.random.Generator:
        """A generator for one clip, seeded from torch's global generator (and `seed`, when given).

        Drawing through torch makes augmentation reproducible wherever torch's state is: `set_seed`, the
        Trainer's checkpointed RNG states (so a resumed run draws what the uninterrupted run drew), and the
        per-worker seeds of DataLoader workers (which differ per worker and per epoch).
        """
        draw = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        return np.random.default_rng([draw] if self.seed is None else [int(self.seed), draw])

    # -- pipeline -----------------------------------------------------------------------------
    def _frame_inds(self, T: int, rng) -> np.ndarray:
        if self.mode == "train":
            return uniform_sample_frames(T, self.clip_len, self.num_clips, self.p_interval, False, rng)
        inds = self._test_inds_cache.get(T)
        if inds is None:
            inds = uniform_sample_frames(T, self.clip_len, self.num_clips, self.p_interval, True)
            if len(self._test_inds_cache) < 65536:
                self._test_inds_cache[T] = inds
        return inds

    def __call__(self, example: dict) -> dict:
        kp, scores, img_shape, label = _decode_row(example)
        M, T, V = scores.shape
        train = self.mode == "train"
        rng = self._get_rng() if train else None

        # Train: the flip is decided first, so that the joint swap rides along with the frame gather
        # (swapping joints commutes with PoseCompact, resize and crop); x is mirrored at the end.
        flip = train and self.flip_prob > 0 and rng.random() < self.flip_prob
        inds = self._frame_inds(T, rng)
        if flip:
            sel = (slice(None), inds[:, None], self.flip_permutation)
        else:
            sel = (slice(None), inds)
        kp = kp[sel]  # [M, nc*L, V, 2], a copy: the row is never modified
        scores = scores[sel]
        if not np.isfinite(scores.sum()):
            scores = np.nan_to_num(scores, nan=0.0)

        kp, img_shape = pose_compact(kp, img_shape, 0.25, 10, self.hw_ratio, self.allow_imgpad)
        if train:
            # Resize(short side) -> RandomResizedCrop -> Resize(exact) is one affine map of all
            # points: x * s1 * s2 - crop_origin * s2, applied in a single pass.
            h, w = img_shape
            new_w, new_h = rescale_size((w, h), (math.inf, self.resize_short))
            left, top, right, bottom = random_resized_crop_box((new_h, new_w), rng, self.crop_area)
            out_h, out_w = self.train_size
            s1 = np.array([new_w / w, new_h / h], dtype=np.float32)
            s2 = np.array([out_w / (right - left), out_h / (bottom - top)], dtype=np.float32)
            kp *= s1 * s2
            kp -= np.array([left, top], dtype=np.float32) * s2
            if flip:  # Flip: x -> W - x for non-zero x (joints already swapped)
                x = kp[..., 0]
                np.subtract(out_w, x, out=x, where=x != 0)
        else:
            out_h, out_w = self.eval_size
            kp, img_shape = resize_keypoints(kp, img_shape, (out_w, out_h), keep_ratio=False)

        nc, L = self.num_clips, self.clip_len
        # [M, nc*L, ...] -> [nc, M, L, ...]
        kp = kp.reshape(M, nc, L, V, 2).transpose(1, 0, 2, 3, 4)
        scores = scores.reshape(M, nc, L, V).transpose(1, 0, 2, 3)
        out = {}
        if self.flip_double:  # the mirrored views are rendered from the same keypoints, then mirrored
            kp = np.concatenate([kp, kp], axis=0)
            scores = np.concatenate([scores, scores], axis=0)
            out["mirrored"] = np.arange(2 * nc) >= nc
        return {
            "keypoints": np.ascontiguousarray(kp, dtype=np.float32),
            "keypoint_scores": np.ascontiguousarray(scores, dtype=np.float32),
            **out,
            "label": label,
        }

    def transform_batch(self, batch: dict) -> dict:
        """Batched form for ``dataset.with_transform(transform.transform_batch)``: dict of lists in and out."""
        keys = ("keypoints", "keypoint_scores", "mirrored", "label") if self.flip_double else (
            "keypoints", "keypoint_scores", "label")
        out = {k: [] for k in keys}
        if not batch:
            return out
        n = len(next(iter(batch.values())))
        for i in range(n):
            res = self({k: v[i] for k, v in batch.items()})
            for k in out:
                out[k].append(res[k])
        return out

    def __repr__(self):
        return (
            f"{type(self).__name__}(mode={self.mode!r}, clip_len={self.clip_len}, num_clips={self.num_clips}, "
            f"p_interval={self.p_interval}, flip_double={self.flip_double}, layout={self.layout.name!r})"
        )


def _hw(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


# ---------------------------------------------------------------------------------------------
# The collator
# ---------------------------------------------------------------------------------------------
class PoseCollator:
    """Stacks transformed clips into a batch of tensors; optionally transforms and tokenizes too.

    Returns ``keypoints`` float32 [B, views, M, T, V, 2], ``keypoint_scores`` float32
    [B, views, M, T, V], ``labels`` int64 [B], ``mirrored`` bool [B, views] when the clips carry it
    (flip-doubled test views; all clips or none), and, when both ``tokenizer`` and ``class_texts`` are
    given, ``input_ids`` / ``attention_mask`` [B, L] of ``text_template.format(class_texts[label])``
    (padded to the longest in the batch, truncated at ``text_max_length``).

    Several texts per class (prompt ensembling): an entry of ``class_texts`` may be a list of texts (used as they
    are, ``text_template`` applies to plain names only). If any entry is a list, the batch holds the texts of every
    clip's class, ``input_ids`` / ``attention_mask`` [N_text, L], and ``text_groups`` int64 [N_text], the clip each
    text belongs to (`SkeletonClipModel.forward` averages each clip's texts into its text embedding).

    Persons are padded to the largest M of the batch with NaN coordinates and score 0: the renderer treats them as
    missing joints, so padding never changes a clip's heatmaps (with ``use_score=False`` too, where a zero-score
    joint at (0, 0) would be drawn). With ``max_persons``, clips with more persons keep the ``max_persons`` of
    highest total score (in their original order).

    ``static_persons=N`` pads every batch to exactly N persons and the texts to ``text_max_length``, so that all
    batches of a given size share one shape (``torch.compile`` then compiles once instead of once per person
    count and text length). A clip with more than N persons is an error unless ``max_persons`` crops it first:
    nothing is dropped silently.

    With ``transform`` set, each raw row is transformed first: the fast path (the dataset in
    ``"numpy"`` format, the transform running in the DataLoader workers through the collator).
    """

    def __init__(
        self,
        transform: Optional[PoseClipTransform] = None,
        tokenizer: Any = None,
        class_texts: Optional[Sequence[str]] = None,
        text_max_length: int = 16,
        text_template: str = "{}",
        max_persons: Optional[int] = None,
        static_persons: Optional[int] = None,
    ):
        if max_persons is not None and int(max_persons) <= 0:
            raise ValueError(f"max_persons must be positive or None, got {max_persons}.")
        if static_persons is not None and int(static_persons) <= 0:
            raise ValueError(f"static_persons must be positive or None, got {static_persons}.")
        if static_persons is not None and max_persons is not None and int(max_persons) > int(static_persons):
            raise ValueError(
                f"max_persons={max_persons} exceeds static_persons={static_persons}: clips kept with more persons "
                "than the static shape could not be batched."
            )
        self.transform = transform
        self.tokenizer = tokenizer
        self.class_texts = None
        if class_texts is not None:
            self.class_texts = [list(t) if isinstance(t, (list, tuple)) else t for t in class_texts]
            for index, texts in enumerate(self.class_texts):
                if isinstance(texts, list) and not (texts and all(isinstance(t, str) for t in texts)):
                    raise ValueError(f"class_texts[{index}] must be a text or a non-empty list of texts, got "
                                     f"{reprlib.repr(texts)}.")
        self.text_max_length = int(text_max_length)
        self.text_template = text_template
        self.max_persons = int(max_persons) if max_persons is not None else None
        self.static_persons = int(static_persons) if static_persons is not None else None

    def __call__(self, examples: list) -> dict:
        if len(examples) == 0:
            raise ValueError("PoseCollator got an empty list of examples.")
        if self.transform is not None:
            examples = [self.transform(ex) for ex in examples]

        kps, scs, labels, mirrored = [], [], [], []
        for i, ex in enumerate(examples):
            clip = _clip_name(ex, i)
            if not isinstance(ex, dict):
                raise PoseDataError(f"Example {i}: a transformed clip must be a dict, got {type(ex).__name__}.")
            missing = [key for key in ("keypoints", "keypoint_scores") if key not in ex]
            if missing or not ("labels" in ex or "label" in ex):
                raise PoseDataError(
                    f"Example {i} lacks {missing or ['label']} (keys: {reprlib.repr(sorted(ex))}); rows must be "
                    "transformed by PoseClipTransform first (pass transform= to the collator or use "
                    "dataset.with_transform)."
                )
            kp = _float_array(ex["keypoints"], "keypoints", clip)
            sc = _float_array(ex["keypoint_scores"], "keypoint_scores", clip)
            if kp.ndim != 5 or kp.shape[-1] != 2 or sc.shape != kp.shape[:-1]:
                raise PoseDataError(
                    f"Example {i}: expected keypoints [views, M, T, V, 2] and keypoint_scores [views, M, T, V], "
                    f"got {kp.shape} and {sc.shape}."
                )
            if ("mirrored" in ex) != ("mirrored" in examples[0]):
                raise PoseDataError(
                    f"Example {i} {'has' if 'mirrored' in ex else 'lacks'} the field 'mirrored' and example 0 "
                    f"{'has' if 'mirrored' in examples[0] else 'lacks'} it; use one transform configuration per batch."
                )
            if "mirrored" in ex:
                flags = np.asarray(ex["mirrored"])
                if flags.dtype != np.bool_ or flags.shape != kp.shape[:1]:
                    raise PoseDataError(
                        f"Example {i}: field 'mirrored' must be bool [views] = [{kp.shape[0]}], got dtype "
                        f"{flags.dtype} and shape {flags.shape}."
                    )
                mirrored.append(flags)
            kps.append(kp)
            scs.append(sc)
            labels.append(_int_field(ex, "labels" if "labels" in ex else "label", clip))

        views, _, T, V, _ = kps[0].shape
        for i, kp in enumerate(kps):
            if (kp.shape[0], kp.shape[2], kp.shape[3]) != (views, T, V):
                raise ValueError(
                    f"Examples disagree in (views, T, V): example 0 has {(views, T, V)}, example {i} has "
                    f"{(kp.shape[0], kp.shape[2], kp.shape[3])}; use one transform configuration per batch."
                )

        num_m = [kp.shape[1] for kp in kps]
        kept = max(num_m) if self.max_persons is None else min(max(num_m), self.max_persons)  # persons kept per clip
        M = kept
        if self.static_persons is not None:
            if kept > self.static_persons:
                i = int(np.argmax(num_m))
                raise ValueError(
                    f"Example {i} has {num_m[i]} persons, more than static_persons={self.static_persons}; raise "
                    "static_persons or set max_persons to keep the highest-scoring persons."
                )
            M = self.static_persons
        B = len(kps)
        if all(m == M for m in num_m):
            keypoints = np.stack(kps)
            keypoint_scores = np.stack(scs)
        else:
            keypoints = np.full((B, views, M, T, V, 2), np.nan, dtype=np.float32)
            keypoint_scores = np.zeros((B, views, M, T, V), dtype=np.float32)
            for b, (kp, sc) in enumerate(zip(kps, scs)):
                m = kp.shape[1]
                if m > kept:
                    keep = np.sort(np.argsort(-sc.sum(axis=(0, 2, 3)), kind="stable")[:kept])
                    kp, sc, m = kp[:, keep], sc[:, keep], kept
                keypoints[b, :, :m] = kp
                keypoint_scores[b, :, :m] = sc

        batch = {
            "keypoints": torch.from_numpy(keypoints),
            "keypoint_scores": torch.from_numpy(keypoint_scores),
            "labels": torch.tensor(labels, dtype=torch.long),
        }
        if mirrored:
            batch["mirrored"] = torch.from_numpy(np.stack(mirrored))  # [B, views]
        if self.tokenizer is not None and self.class_texts is not None:
            n = len(self.class_texts)
            bad = [lab for lab in labels if not 0 <= lab < n]
            if bad:
                raise ValueError(
                    f"Label(s) {sorted(set(bad))} have no class text: class_texts has {n} entries (labels 0..{n - 1})."
                )
            if any(isinstance(t, list) for t in self.class_texts):
                texts, groups = [], []
                for clip, lab in enumerate(labels):
                    entry = self.class_texts[lab]
                    entry = entry if isinstance(entry, list) else [self.text_template.format(entry)]
                    texts.extend(entry)
                    groups.extend([clip] * len(entry))
                batch["text_groups"] = torch.tensor(groups, dtype=torch.long)
            else:
                texts = [self.text_template.format(self.class_texts[lab]) for lab in labels]
            tok = self.tokenizer(
                texts,
                padding="max_length" if self.static_persons is not None else "longest",
                truncation=True,
                max_length=self.text_max_length,
                return_tensors="pt",
            )
            batch["input_ids"] = tok["input_ids"]
            batch["attention_mask"] = tok["attention_mask"]
        return batch
