"""Links per-frame pose detections into person tracks: the `[M, T, V, 2]` keypoints of a pyskl annotation.

pyskl's extraction script links each frame's poses to the tracks by a Hungarian assignment on raw pixel distances
to each track's last pose, and accepts every assignment. `PoseTracker` also assigns with the Hungarian method, but
on a scale-free similarity, and only where that similarity is high enough:

- **similarity** of a detection to a track: the mean of an OKS (COCO's keypoint similarity: per-joint Gaussian of
  the distance, scaled by the person's box area and COCO's per-joint sigmas) and the IoU of the boxes of the
  confident joints. It is taken against the track's last seen pose and against that pose moved on by the track's
  velocity (the best of the two), so that two people crossing paths keep their identities and a person who stood
  still and comes back after a gap is found again.
- **gating**: a detection whose best similarity is below `min_similarity` starts a new track instead of being
  forced onto an existing one (pyskl would glue a spurious detection to a real person's track).
- **gap tolerance**: a track that misses up to `max_gap` frames still takes detections; after that it is closed.

`result()` keeps the `max_persons` most persistent tracks (most frames seen, ties by total score), in order of
first appearance. Frames where a kept track is absent hold zeros with score 0 (missing joints, never interpolated).

For a stream, `recent(num_frames)` gives the same arrays for the last `num_frames` frames only (tracks ranked by
what they hold in those frames), and `keep_frames=N` bounds the memory: observations older than the last N frames
are dropped (an open track keeps its last two, which linking needs), so a tracker can run for hours.
"""

from __future__ import annotations

import bisect

import numpy as np
from scipy.optimize import linear_sum_assignment


__all__ = ["PoseTracker", "COCO17_SIGMAS"]

# COCO's per-keypoint OKS sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO17_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
     0.089, 0.089],
    dtype=np.float64,
)
# Joints of other layouts: the mean COCO sigma.
_DEFAULT_SIGMA = float(COCO17_SIGMAS.mean())

DEFAULT_THRESHOLDS = {
    # a detection joins a track only if their similarity (OKS/IoU mean, in [0, 1]) is at least this
    "min_similarity": 0.1,
    # frames a track may miss and still take detections (pyskl: 30)
    "max_gap": 30,
    # joints scored at least this count for the similarity (all joints of a detection with none above it)
    "keypoint_threshold": 0.1,
}


class _Track:
    """One person's detections: frame index -> (keypoints [V, 2], scores [V])."""

    def __init__(self, order: int, frame: int, keypoints: np.ndarray, scores: np.ndarray, center: np.ndarray):
        self.order = order  # creation order: the tie-break of first appearance within a frame
        self.frames: list[int] = []
        self.keypoints: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.centers: list[np.ndarray] = []  # box centres of the confident joints
        self.add(frame, keypoints, scores, center)

    def add(self, frame: int, keypoints: np.ndarray, scores: np.ndarray, center: np.ndarray) -> None:
        self.frames.append(frame)
        self.keypoints.append(keypoints)
        self.scores.append(scores)
        self.centers.append(center)

    def drop_before(self, frame: int, keep_last: int) -> None:
        """Forgets the observations before `frame`, except the last `keep_last` ones."""
        cut = min(bisect.bisect_left(self.frames, frame), max(len(self.frames) - keep_last, 0))
        if cut:
            del self.frames[:cut], self.keypoints[:cut], self.scores[:cut], self.centers[:cut]

    @property
    def last_frame(self) -> int:
        return self.frames[-1]

    def velocity(self) -> np.ndarray:
        """Pixels per frame of the box centre between the last two observations (zero with one observation)."""
        if len(self.frames) < 2:
            return np.zeros(2)
        return (self.centers[-1] - self.centers[-2]) / (self.frames[-1] - self.frames[-2])

    def total_score(self) -> float:
        return float(sum(s.mean() for s in self.scores)) if self.scores else 0.0


def _confident(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Joints that count for matching: scored >= threshold, else any with a positive score, else all. [V] bool"""
    mask = scores >= threshold
    if not mask.any():
        mask = scores > 0
    if not mask.any():
        mask = np.ones_like(scores, dtype=bool)
    return mask


def _box(keypoints: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of the masked joints, padded by 10 % of its size and at least 1 pixel."""
    pts = keypoints[mask]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = np.maximum(0.1 * (hi - lo), 1.0)
    return np.concatenate([lo - pad, hi + pad])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


class PoseTracker:
    """Links the detections of consecutive frames into tracks (see the module docstring).

    Args:
        max_persons: M, the most tracks `result()` returns.
        keep_frames: if set, keep only what the last `keep_frames` frames need (`recent(n)` for n <= keep_frames);
            `result()` then refuses once older frames are forgotten. None keeps everything.
        min_similarity, max_gap, keypoint_threshold: see `DEFAULT_THRESHOLDS`.

    Call `update(detections)` once per processed frame, in order (a frame with no person too: it counts as a
    frame), then `result()`, or `recent(n)` at any time.
    """

    def __init__(self, max_persons: int = 2, *, keep_frames: int | None = None, **thresholds):
        if isinstance(max_persons, bool) or not isinstance(max_persons, (int, np.integer)) or max_persons < 1:
            raise ValueError(f"max_persons must be a positive integer; got {max_persons!r}.")
        unknown = sorted(set(thresholds) - set(DEFAULT_THRESHOLDS))
        if unknown:
            raise ValueError(
                f"PoseTracker: unknown threshold(s) {unknown}; choose from {sorted(DEFAULT_THRESHOLDS)}."
            )
        settings = {**DEFAULT_THRESHOLDS, **thresholds}
        self.max_persons = int(max_persons)
        self.min_similarity = float(settings["min_similarity"])
        self.max_gap = int(settings["max_gap"])
        self.keypoint_threshold = float(settings["keypoint_threshold"])
        if not 0.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in [0, 1]; got {self.min_similarity}.")
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0; got {self.max_gap}.")
        if keep_frames is not None and (isinstance(keep_frames, bool) or not isinstance(keep_frames, (int, np.integer))
                                        or keep_frames < 1):
            raise ValueError(f"keep_frames must be a positive integer or None; got {keep_frames!r}.")
        self.keep_frames = None if keep_frames is None else int(keep_frames)
        self.num_frames = 0
        self.num_joints: int | None = None
        self.tracks: list[_Track] = []
        self._next_order = 0  # creation counter (tracks may be forgotten, so not len(self.tracks))

    # ------------------------------------------------------------------------------------------------------------

    def _sigmas(self, num_joints: int) -> np.ndarray:
        if num_joints == len(COCO17_SIGMAS):
            return COCO17_SIGMAS
        return np.full(num_joints, _DEFAULT_SIGMA)

    def _similarity(self, track_kp, track_mask, det_kp, det_mask, det_box, sigmas) -> float:
        """Mean of OKS and box IoU between a (possibly moved) track pose and a detection, in [0, 1]."""
        track_box = _box(track_kp, track_mask)
        iou = _iou(track_box, det_box)
        both = track_mask & det_mask
        if both.any():
            area = 0.5 * (_area(track_box) + _area(det_box)) + 1.0
            d2 = np.sum((track_kp[both] - det_kp[both]) ** 2, axis=-1)
            oks = float(np.mean(np.exp(-d2 / (2.0 * area * (2.0 * sigmas[both]) ** 2))))
        else:
            oks = 0.0
        return 0.5 * (oks + iou)

    def update(self, detections) -> None:
        """Adds one frame's detections (`PoseDetections`: keypoints [N, V, 2], scores [N, V]; N = 0 allowed)."""
        keypoints = np.asarray(detections.keypoints, dtype=np.float64)
        scores = np.asarray(detections.scores, dtype=np.float64)
        if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or scores.shape != keypoints.shape[:2]:
            raise ValueError(
                f"PoseTracker.update: detections must be keypoints [N, V, 2] and scores [N, V]; got "
                f"{tuple(keypoints.shape)} and {tuple(scores.shape)} (frame {self.num_frames})."
            )
        frame = self.num_frames
        self.num_frames += 1
        if self.keep_frames is not None:
            self._forget()
        n = keypoints.shape[0]
        if n == 0:
            return
        if self.num_joints is None:
            self.num_joints = keypoints.shape[1]
        elif keypoints.shape[1] != self.num_joints:
            raise ValueError(
                f"PoseTracker.update: frame {frame} has {keypoints.shape[1]} joints per person, earlier frames "
                f"{self.num_joints}."
            )
        # Non-finite joints are missing: zero coordinates, zero score.
        bad = ~np.isfinite(keypoints).all(axis=-1) | ~np.isfinite(scores)
        if bad.any():
            keypoints, scores = keypoints.copy(), scores.copy()
            keypoints[bad], scores[bad] = 0.0, 0.0
        scores = np.clip(scores, 0.0, 1.0)

        det_masks = [_confident(scores[j], self.keypoint_threshold) for j in range(n)]
        det_boxes = [_box(keypoints[j], det_masks[j]) for j in range(n)]
        det_centers = [0.5 * (b[:2] + b[2:]) for b in det_boxes]
        sigmas = self._sigmas(keypoints.shape[1])

        open_tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_gap + 1]
        similarity = np.zeros((len(open_tracks), n))
        for i, track in enumerate(open_tracks):
            last_kp = track.keypoints[-1]
            mask = _confident(track.scores[-1], self.keypoint_threshold)
            moved = last_kp + track.velocity() * (frame - track.last_frame)
            for j in range(n):
                similarity[i, j] = max(
                    self._similarity(last_kp, mask, keypoints[j], det_masks[j], det_boxes[j], sigmas),
                    self._similarity(moved, mask, keypoints[j], det_masks[j], det_boxes[j], sigmas),
                )

        matched = set()
        if open_tracks:
            rows, cols = linear_sum_assignment(-similarity)
            for i, j in zip(rows, cols):
                if similarity[i, j] >= self.min_similarity:
                    open_tracks[i].add(frame, keypoints[j], scores[j], det_centers[j])
                    matched.add(j)
        for j in range(n):  # unmatched detections start tracks, in detection order
            if j not in matched:
                self.tracks.append(_Track(self._next_order, frame, keypoints[j], scores[j], det_centers[j]))
                self._next_order += 1

    def _forget(self) -> None:
        """Drops what no `recent(keep_frames)` and no linking needs any more (called as each frame arrives)."""
        first_kept = self.num_frames - self.keep_frames
        if first_kept <= 0:
            return
        kept = []
        for track in self.tracks:
            is_open = self.num_frames - 1 - track.last_frame <= self.max_gap + 1
            if not is_open and track.last_frame < first_kept:
                continue  # closed and wholly before the kept frames
            track.drop_before(first_kept, keep_last=2 if is_open else 0)
            kept.append(track)
        self.tracks = kept

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """keypoint float32 [M, T, V, 2], keypoint_score float32 [M, T, V]: the M = min(max_persons, tracks)
        most persistent tracks over the T frames seen, in order of first appearance; zeros with score 0 where a
        track is absent."""
        if self.keep_frames is not None and self.num_frames > self.keep_frames:
            raise ValueError(
                f"PoseTracker.result: this tracker keeps the last {self.keep_frames} frames (keep_frames) and has seen "
                f"{self.num_frames}; use recent({self.keep_frames}) for the kept frames."
            )
        return self._stack(0, self.num_frames)

    def recent(self, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """`result()` of the last `num_frames` frames (all frames seen if fewer): keypoint float32 [M, W, V, 2],
        keypoint_score float32 [M, W, V], W = min(num_frames, frames seen); the M = min(max_persons, tracks seen in
        those frames) tracks most persistent within them, in order of first appearance. `recent(T)` equals
        `result()` after T frames."""
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ValueError(f"PoseTracker.recent: num_frames must be a positive integer; got {num_frames!r}.")
        if self.keep_frames is not None and num_frames > self.keep_frames:
            raise ValueError(f"PoseTracker.recent: asked for {num_frames} frames; this tracker keeps "
                             f"{self.keep_frames} (keep_frames).")
        return self._stack(max(self.num_frames - int(num_frames), 0), self.num_frames)

    def _stack(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """The arrays of frames [start, end) from the kept tracks with observations there (see `recent`)."""
        num_joints = self.num_joints or len(COCO17_SIGMAS)
        spans = []  # (track, first observation index in range, end index)
        for track in self.tracks:
            lo, hi = bisect.bisect_left(track.frames, start), bisect.bisect_left(track.frames, end)
            if hi > lo:
                spans.append((track, lo, hi))

        def rank(span):
            track, lo, hi = span
            score = float(sum(s.mean() for s in track.scores[lo:hi]))
            return -(hi - lo), -score, track.frames[lo], track.order

        ranked = sorted(spans, key=rank)
        kept = sorted(ranked[: self.max_persons], key=lambda span: (span[0].frames[span[1]], span[0].order))
        keypoint = np.zeros((len(kept), end - start, num_joints, 2), dtype=np.float32)  # [M, W, V, 2]
        keypoint_score = np.zeros((len(kept), end - start, num_joints), dtype=np.float32)  # [M, W, V]
        for m, (track, lo, hi) in enumerate(kept):
            rows = np.asarray(track.frames[lo:hi]) - start
            keypoint[m, rows] = np.stack(track.keypoints[lo:hi])
            keypoint_score[m, rows] = np.stack(track.scores[lo:hi])
        return keypoint, keypoint_score
