"""Skeletons and labels drawn on frames (OpenCV), and the annotated video written from a real video file."""

import numpy as np
import pytest

from helpers import astronaut_frames, write_astronaut_video
from modeling_skeletonclip.pose_drawing import (
    CENTER_COLOR,
    LEFT_COLOR,
    RIGHT_COLOR,
    annotated_frames,
    draw_label_panel,
    draw_skeletons,
    timeline_lines,
    write_annotated_video,
)
from modeling_skeletonclip.video_io import probe_video, read_frames


def one_person(points: dict, score=0.9):
    """keypoints [1, 17, 2] and scores [1, 17]: the given joints at their points, every other joint missing."""
    keypoints = np.zeros((1, 17, 2), np.float32)
    scores = np.zeros((1, 17), np.float32)
    for joint, xy in points.items():
        keypoints[0, joint] = xy
        scores[0, joint] = score
    return keypoints, scores


def test_limbs_are_drawn_in_the_colour_of_their_side_between_visible_joints():
    image = np.zeros((120, 160, 3), np.uint8)
    # left shoulder -> left elbow (a left limb), right shoulder -> right elbow (a right limb), shoulder to shoulder
    # is no COCO-17 limb; nose -> left shoulder is a centre limb.
    keypoints, scores = one_person({5: (40, 40), 7: (40, 100), 6: (120, 40), 8: (120, 100), 0: (80, 10)})
    draw_skeletons(image, keypoints, scores)
    assert tuple(image[70, 40]) == pytest.approx(LEFT_COLOR, abs=40)
    assert tuple(image[70, 120]) == pytest.approx(RIGHT_COLOR, abs=40)
    assert tuple(image[25, 60]) == pytest.approx(CENTER_COLOR, abs=60)
    assert image[40, 80].sum() == 0  # no limb joins the shoulders


def test_joints_below_the_threshold_missing_or_nan_are_not_drawn():
    image = np.zeros((120, 160, 3), np.uint8)
    keypoints, scores = one_person({5: (40, 40), 7: (40, 100)})
    scores[0, 7] = 0.2  # below the default threshold 0.3
    keypoints[0, 9] = np.nan
    scores[0, 9] = 1.0
    draw_skeletons(image, keypoints, scores)
    assert image[70, 40].sum() == 0  # no limb goes to the unseen elbow
    assert image[100, 40].sum() == 0
    assert image[40, 40].sum() > 0  # the visible shoulder is
    assert image[:, 100:].sum() == 0  # nothing else


def test_bad_shapes_are_one_clear_error():
    with pytest.raises(ValueError, match=r"keypoints \[M, V, 2\] and scores \[M, V\]"):
        draw_skeletons(np.zeros((8, 8, 3), np.uint8), np.zeros((17, 2)), np.zeros(17))


def test_the_label_panel_writes_in_the_top_left_corner_only():
    image = np.full((240, 320, 3), 128, np.uint8)
    draw_label_panel(image, ["drink water 0.82", "sit down 0.10"])
    corner = image[:40, :120]
    assert (corner.max(axis=-1) == 255).any() and (corner.max(axis=-1) == 0).any()  # white text on black
    assert (image[120:, 160:] == 128).all()


def test_the_panel_shows_the_latest_window_covering_the_frame():
    timeline = [
        {"start_frame": 0, "end_frame": 10, "predictions": [{"label": "walk", "score": 0.9}]},
        {"start_frame": 5, "end_frame": 15, "predictions": [{"label": "run", "score": 0.6}]},
    ]
    assert timeline_lines(timeline, 2) == ["walk 0.90"]
    assert timeline_lines(timeline, 7) == ["run 0.60"]
    assert timeline_lines(timeline, 20) == []


def test_annotated_frames_draw_on_copies():
    frames = astronaut_frames(2, 160, 120)
    originals = [f.copy() for f in frames]
    keypoint = np.zeros((1, 2, 17, 2), np.float32)
    keypoint_score = np.zeros((1, 2, 17), np.float32)
    keypoint[0, :, 5], keypoint[0, :, 7], keypoint_score[0, :, [5, 7]] = (100, 60), (100, 110), 1.0
    drawn = list(annotated_frames(frames, keypoint, keypoint_score, predictions=[{"label": "wave", "score": 0.5}]))
    assert all((f == o).all() for f, o in zip(frames, originals))
    assert all(np.abs(d.astype(int) - o).sum() > 0 for d, o in zip(drawn, originals))


def test_the_annotated_video_has_the_source_frames_with_the_skeleton_drawn(tmp_path):
    source, _ = write_astronaut_video(str(tmp_path / "in.mp4"), num_frames=6, fps=10)
    T = 6
    keypoint = np.zeros((1, T, 17, 2), np.float32)
    keypoint_score = np.zeros((1, T, 17), np.float32)
    keypoint[0, :, 11], keypoint[0, :, 13], keypoint_score[0, :, [11, 13]] = (200, 60), (200, 200), 1.0
    annotation = {"keypoint": keypoint, "keypoint_score": keypoint_score, "total_frames": T, "fps": 10.0}
    out = write_annotated_video(source, annotation, str(tmp_path / "out.mp4"),
                                predictions=[{"label": "wave", "score": 0.5}])
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames) == (320, 240, T)
    assert info.fps == pytest.approx(10.0)
    for plain, drawn in zip(read_frames(source), read_frames(out)):
        limb = drawn.image[130, 198:203].astype(int)  # the left hip -> left knee line, x = 200
        assert np.abs(limb - LEFT_COLOR).sum(axis=-1).min() < 90  # some pixel across the line has its colour
        assert np.abs(drawn.image[150:, :150].astype(int) - plain.image[150:, :150]).mean() < 4  # the rest as it was
