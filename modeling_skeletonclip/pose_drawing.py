"""Skeletons and predicted labels drawn on video frames: the annotated video of `skeletonclip predict --save_video`.

Drawing uses OpenCV (the headless build of the "video" extra); frames are RGB uint8 `[H, W, 3]` throughout.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from .pose_layouts import COCO17, JointLayout, get_layout


# RGB colours: the person's left side, right side and the centre line, so that a flipped skeleton is visible at a glance.
LEFT_COLOR = (255, 140, 0)
RIGHT_COLOR = (0, 160, 255)
CENTER_COLOR = (60, 220, 60)
PANEL_TEXT_COLOR = (255, 255, 255)
PANEL_BACKGROUND = (0, 0, 0)


def _cv2():
    try:
        import cv2
    except ImportError as err:
        raise ImportError(
            "Drawing skeletons needs OpenCV: pip install 'skeletonclip[video]' (opencv-python-headless)."
        ) from err
    return cv2


def _side_color(joints: Sequence[int], layout: JointLayout) -> tuple[int, int, int]:
    if all(j in layout.left_joints for j in joints):
        return LEFT_COLOR
    if all(j in layout.right_joints for j in joints):
        return RIGHT_COLOR
    return CENTER_COLOR


def draw_skeletons(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    layout: JointLayout | str | dict = COCO17,
    score_threshold: float = 0.3,
    color: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Draws the limbs and joints of every person whose joints score at least `score_threshold`, in place.

    image: RGB uint8 `[H, W, 3]`; keypoints `[M, V, 2]` in the image's pixels; scores `[M, V]` (missing joints 0,
    skipped). `color` (RGB) draws everything in one colour instead of the left / right / centre colours (e.g. one
    colour per person). Returns `image`.
    """
    cv2 = _cv2()
    layout = get_layout(layout)
    keypoints = np.asarray(keypoints, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or scores.shape != keypoints.shape[:-1]:
        raise ValueError(f"Expected keypoints [M, V, 2] and scores [M, V], got {keypoints.shape} and {scores.shape}.")
    thickness = max(1, round(min(image.shape[:2]) / 160))
    visible = (scores >= score_threshold) & np.isfinite(keypoints).all(axis=-1)  # [M, V]
    points = np.round(np.nan_to_num(keypoints)).astype(np.int32)
    for person, seen in zip(points, visible):
        for a, b in layout.limbs:
            if seen[a] and seen[b]:
                cv2.line(image, tuple(map(int, person[a])), tuple(map(int, person[b])),
                         color or _side_color((a, b), layout), thickness, cv2.LINE_AA)
        for j in np.flatnonzero(seen):
            cv2.circle(image, tuple(map(int, person[j])), thickness + 1, color or _side_color((j,), layout), -1,
                       cv2.LINE_AA)
    return image


def draw_label_panel(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Writes `lines` (e.g. the current top labels with scores) in a dark box in the top-left corner, in place."""
    if not lines:
        return image
    cv2 = _cv2()
    scale = max(0.35, min(image.shape[:2]) / 640)
    thickness = max(1, round(scale * 1.5))
    sizes = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness) for line in lines]
    line_height = max(h + base for (_, h), base in sizes) + 4
    width = max(w for (w, _), _ in sizes) + 10
    height = line_height * len(lines) + 6
    cv2.rectangle(image, (0, 0), (min(width, image.shape[1] - 1), min(height, image.shape[0] - 1)), PANEL_BACKGROUND, -1)
    for i, line in enumerate(lines):
        baseline_y = 4 + line_height * (i + 1) - sizes[i][1]
        cv2.putText(image, line, (5, baseline_y), cv2.FONT_HERSHEY_SIMPLEX, scale, PANEL_TEXT_COLOR, thickness,
                    cv2.LINE_AA)
    return image


def prediction_lines(predictions: Sequence[dict], top: int = 3) -> list[str]:
    """`["drink water 0.82", ...]` from a pipeline's `[{"label", "score"}, ...]`."""
    return [f"{p['label']} {p['score']:.2f}" for p in list(predictions)[:top]]


def timeline_lines(timeline: Sequence[dict], frame: int, top: int = 3) -> list[str]:
    """The panel text at `frame` of a pipeline timeline: the predictions of the latest window that covers it."""
    covering = [w for w in timeline if w["start_frame"] <= frame < w["end_frame"]]
    if not covering:
        return []
    return prediction_lines(covering[-1]["predictions"], top)


def annotated_frames(
    frames: Iterable[np.ndarray],
    keypoint: np.ndarray,
    keypoint_score: np.ndarray,
    predictions: Sequence[dict] | None = None,
    timeline: Sequence[dict] | None = None,
    layout: JointLayout | str | dict = COCO17,
    top: int = 3,
    score_threshold: float = 0.3,
) -> Iterator[np.ndarray]:
    """Frame `t` of `frames` with the skeletons of `keypoint[:, t]` and the labels of the moment drawn on a copy.

    keypoint `[M, T, V, 2]`, keypoint_score `[M, T, V]` index the same frames as `frames` (the frames the poses
    were extracted from). Labels: the window of `timeline` covering the frame, else the clip's `predictions`.
    """
    static = prediction_lines(predictions, top) if predictions is not None else []
    num_frames = keypoint.shape[1]
    for t, frame in enumerate(frames):
        image = np.array(frame, dtype=np.uint8, copy=True)
        if t < num_frames:
            draw_skeletons(image, keypoint[:, t], keypoint_score[:, t], layout, score_threshold)
        draw_label_panel(image, timeline_lines(timeline, t, top) if timeline is not None else static)
        yield image


def write_annotated_video(
    video_path: str,
    annotation: dict,
    output_path: str,
    predictions: Sequence[dict] | None = None,
    timeline: Sequence[dict] | None = None,
    target_fps: float | None = None,
    layout: JointLayout | str | dict = COCO17,
    top: int = 3,
) -> str:
    """Writes `output_path`: the frames of `video_path` that `annotation` was extracted from (same `target_fps`),
    with skeletons and the current top labels drawn. Returns `output_path`."""
    from .video_io import VideoWriter, probe_video, read_frames

    info = probe_video(video_path)
    fps = float(annotation.get("fps") or target_fps or info.fps)
    frames = (frame.image for frame in read_frames(video_path, target_fps=target_fps))
    drawn = annotated_frames(
        frames, np.asarray(annotation["keypoint"]), np.asarray(annotation["keypoint_score"]),
        predictions=predictions, timeline=timeline, layout=layout, top=top,
    )
    with VideoWriter(output_path, fps=fps) as writer:
        for image in drawn:
            writer.write(image)
    return output_path
