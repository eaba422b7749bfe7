"""Pose estimators: the real MediaPipe model on the astronaut photo and on frames where the photo moves and grows
(joints checked against regions read off the photo), no person on a blank image, tracking state and its reset,
and the one-line errors for unknown names, missing models, packages and weights files."""

import importlib.util
import os

import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, ASTRONAUT_SHOULDERS, astronaut_frame_placements, astronaut_frames

from modeling_skeletonclip.pose_estimators import (
    ESTIMATORS,
    MEDIAPIPE_STARTUP_NOISE,
    MEDIAPIPE_TO_COCO17,
    PoseDetections,
    PoseEstimator,
    PoseEstimatorUnavailable,
    _detections,
    _stderr_without,
    build_pose_estimator,
)

FACE_JOINTS = (0, 1, 2, 3, 4)  # COCO-17: nose, left eye, right eye, left ear, right ear
LEFT_SHOULDER, RIGHT_SHOULDER = 5, 6


def inside(point, region, margin=0.0):
    x0, y0, x1, y1 = region
    return x0 - margin <= point[0] <= x1 + margin and y0 - margin <= point[1] <= y1 + margin


def assert_detections_shape(detections, persons):
    assert isinstance(detections, PoseDetections)
    assert detections.keypoints.shape == (persons, 17, 2) and detections.keypoints.dtype == np.float32
    assert detections.scores.shape == (persons, 17) and detections.scores.dtype == np.float32
    assert ((detections.scores >= 0) & (detections.scores <= 1)).all()


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.astronaut()  # 512 x 512 RGB


@pytest.fixture(scope="module")
def still_estimator():
    with build_pose_estimator("mediapipe", static_image_mode=True) as estimator:
        yield estimator


def test_the_mapping_takes_mediapipes_coco_joints():
    # BlazePose: 0 nose, 2/5 left/right eye (centres), 7/8 ears, 11-16 arms, 23-28 legs; left before right
    assert MEDIAPIPE_TO_COCO17 == (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def test_mediapipe_on_the_astronaut_photo(still_estimator, photo):
    detections = still_estimator(photo)
    assert_detections_shape(detections, 1)
    keypoints, scores = detections.keypoints[0], detections.scores[0]
    for joint in FACE_JOINTS:
        assert inside(keypoints[joint], ASTRONAUT_FACE), (joint, keypoints[joint])
    for joint in (LEFT_SHOULDER, RIGHT_SHOULDER):
        assert inside(keypoints[joint], ASTRONAUT_SHOULDERS), (joint, keypoints[joint])
    # her left shoulder is on the image's right
    assert keypoints[LEFT_SHOULDER, 0] > keypoints[RIGHT_SHOULDER, 0] + 100
    assert keypoints[1, 0] > keypoints[2, 0] and keypoints[3, 0] > keypoints[4, 0]  # eyes and ears likewise
    assert (scores[list(FACE_JOINTS) + [LEFT_SHOULDER, RIGHT_SHOULDER]] > 0.9).all()
    # pixels of the image, not normalised coordinates
    assert keypoints[:7].max() > 100


def photo_coordinates(keypoints, placement):
    scale, x_offset, y_offset = placement
    return (keypoints - np.array([x_offset, y_offset], np.float32)) / scale


def test_mediapipe_video_mode_tracks_and_reset_restarts(photo):
    frames = astronaut_frames(4)  # 320 x 240 canvas, the photo at scale 0.40 .. 0.46, drifting right
    placements = astronaut_frame_placements(4)
    # At this size (the photo about 200 pixels wide) MediaPipe sets the shoulders 20-25 photo pixels higher than on
    # the full photo, on the neck ring's edge: the shoulder band gets 30 photo pixels (12-14 frame pixels) of
    # margin. A wrong scale or offset is off by far more.
    shoulder_margin = 30
    with build_pose_estimator("mediapipe") as estimator:
        first = [estimator(frame) for frame in frames]
        again_without_reset = estimator(frames[0])
        estimator.reset()
        after_reset = [estimator(frame) for frame in frames]
    for detections, placement in zip(first, placements):
        assert_detections_shape(detections, 1)
        keypoints = photo_coordinates(detections.keypoints[0], placement)
        for joint in FACE_JOINTS:
            assert inside(keypoints[joint], ASTRONAUT_FACE), (joint, keypoints[joint])
        for joint in (LEFT_SHOULDER, RIGHT_SHOULDER):
            assert inside(keypoints[joint], ASTRONAUT_SHOULDERS, shoulder_margin), (joint, keypoints[joint])
        assert keypoints[LEFT_SHOULDER, 0] > keypoints[RIGHT_SHOULDER, 0]
        assert (detections.scores[0, list(FACE_JOINTS)] > 0.9).all()
    # tracking carries state from frame to frame; after reset() the video starts afresh, as on a new estimator
    assert np.abs(again_without_reset.keypoints - first[0].keypoints).max() > 1.0
    for a, b in zip(first, after_reset):
        np.testing.assert_allclose(b.keypoints, a.keypoints, atol=0.5)


@pytest.mark.parametrize("static_image_mode", [True, False])
def test_mediapipe_finds_nobody_on_a_blank_image(static_image_mode):
    with build_pose_estimator("mediapipe", static_image_mode=static_image_mode) as estimator:
        detections = estimator(np.full((240, 320, 3), 128, np.uint8))
    assert_detections_shape(detections, 0)


def test_mediapipe_refuses_images_that_are_not_rgb_uint8(still_estimator, photo):
    with pytest.raises(ValueError, match=r"pose estimator 'mediapipe': the image must be RGB uint8 \[H, W, 3\], "
                                         r"got float32 \[512, 512, 3\]"):
        still_estimator(photo.astype(np.float32))
    with pytest.raises(ValueError, match=r"got uint8 \[512, 512\]"):
        still_estimator(photo[..., 0])


def test_mediapipe_start_up_lines_are_dropped_from_stderr(capfd, photo):
    with build_pose_estimator("mediapipe") as estimator:
        estimator(photo)
        estimator.reset()
        estimator(photo)
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "inference_feedback_manager" not in err and "GetPrototype" not in err, err


def test_stderr_filter_keeps_every_other_line(capfd):
    with _stderr_without(MEDIAPIPE_STARTUP_NOISE):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"E0000 00:00:1.2 123 graph.cc:1] a real problem\n")
        os.write(2, b"W0000 00:00:1796167771.919247   25750 inference_feedback_manager.cc:114] Feedback manager "
                    b"requires a model with a single signature inference. Disabling support for feedback tensors.\n")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert err == "E0000 00:00:1.2 123 graph.cc:1] a real problem\nafter\n"


@pytest.mark.parametrize("complexity", [0, 2])
def test_mediapipe_model_complexity_without_its_model_file(complexity):
    package = os.path.dirname(importlib.util.find_spec("mediapipe").origin)
    name = {0: "pose_landmark_lite.tflite", 2: "pose_landmark_heavy.tflite"}[complexity]
    if os.path.isfile(os.path.join(package, "modules", "pose_landmark", name)):
        pytest.skip(f"this mediapipe has {name}")
    with pytest.raises(PoseEstimatorUnavailable) as error:
        build_pose_estimator("mediapipe", model_complexity=complexity)
    message = str(error.value)
    assert f"model_complexity={complexity} needs" in message and name in message and "\n" not in message
    assert "it has model_complexity [1]" in message and "use model_complexity=1" in message


def test_mediapipe_refuses_bad_options():
    with pytest.raises(ValueError, match="model_complexity must be 0, 1 or 2, got 3"):
        build_pose_estimator("mediapipe", model_complexity=3)
    with pytest.raises(ValueError, match=r"min_detection_confidence must be a number in \[0, 1\], got 1.5"):
        build_pose_estimator("mediapipe", min_detection_confidence=1.5)


# ---------------------------------------------------------------------------------------------------------------
# Registry and the estimators whose packages are not installed here
# ---------------------------------------------------------------------------------------------------------------

def test_registry():
    assert list(ESTIMATORS) == ["mediapipe", "rtmlib", "yolo"]
    for name, estimator in ESTIMATORS.items():
        assert issubclass(estimator, PoseEstimator) and estimator.name == name


def test_unknown_estimator_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown pose estimator 'openpose'; choose one of: mediapipe, rtmlib, yolo"):
        build_pose_estimator("openpose")


def test_unknown_option_lists_the_estimators_options():
    with pytest.raises(ValueError, match=r"pose estimator 'yolo' has no option 'model'; its options: weights, conf, "
                                         r"device"):
        build_pose_estimator("yolo", model="yolo11n-pose.pt")


def skip_if_installed(*packages):
    installed = [p for p in packages if importlib.util.find_spec(p) is not None]
    if installed:
        pytest.skip(f"{', '.join(installed)} installed here")


def test_rtmlib_needs_local_model_files(tmp_path):
    with pytest.raises(PoseEstimatorUnavailable, match=r"pose estimator 'rtmlib' needs pose_model=<path>: .*model zoo"):
        build_pose_estimator("rtmlib")
    missing = str(tmp_path / "rtmo-m.onnx")
    with pytest.raises(PoseEstimatorUnavailable) as error:
        build_pose_estimator("rtmlib", pose_model=missing)
    message = str(error.value)
    assert f"pose_model file '{missing}' does not exist" in message and "rtmlib#model-zoo" in message
    assert "\n" not in message
    pose_file = tmp_path / "rtmpose-m.onnx"
    pose_file.write_bytes(b"onnx")
    with pytest.raises(PoseEstimatorUnavailable, match=r"det_model file '.*yolox.onnx' does not exist"):
        build_pose_estimator("rtmlib", pose_model=str(pose_file), det_model=str(tmp_path / "yolox.onnx"))
    with pytest.raises(PoseEstimatorUnavailable, match=r"must be a local file, not a URL \(nothing is downloaded\)"):
        build_pose_estimator("rtmlib", pose_model="https://download.openmmlab.com/rtmo.zip")


def test_rtmlib_without_its_packages(tmp_path):
    skip_if_installed("rtmlib")  # the message names both packages, whichever is missing
    pose_file = tmp_path / "rtmo-m.onnx"
    pose_file.write_bytes(b"onnx")
    with pytest.raises(PoseEstimatorUnavailable) as error:
        build_pose_estimator("rtmlib", pose_model=str(pose_file))
    assert str(error.value) == ("pose estimator 'rtmlib' needs the rtmlib and onnxruntime packages: "
                                "pip install rtmlib onnxruntime")
    with pytest.raises(ValueError, match="backend must be one of onnxruntime, opencv, openvino, got 'tensorrt'"):
        build_pose_estimator("rtmlib", pose_model=str(pose_file), backend="tensorrt")


def test_yolo_needs_a_local_weights_file(tmp_path):
    with pytest.raises(PoseEstimatorUnavailable, match=r"pose estimator 'yolo' needs weights=<path>"):
        build_pose_estimator("yolo")
    with pytest.raises(PoseEstimatorUnavailable) as error:
        build_pose_estimator("yolo", weights="yolo11n-pose.pt")  # a bare name Ultralytics would download
    message = str(error.value)
    assert "weights file 'yolo11n-pose.pt' does not exist" in message and "docs.ultralytics.com" in message


def test_yolo_without_ultralytics(tmp_path):
    skip_if_installed("ultralytics")
    weights = tmp_path / "yolo11n-pose.pt"
    weights.write_bytes(b"weights")
    with pytest.raises(PoseEstimatorUnavailable) as error:
        build_pose_estimator("yolo", weights=str(weights))
    assert str(error.value) == "pose estimator 'yolo' needs the ultralytics package: pip install ultralytics"


def test_detections_are_float32_with_scores_in_the_unit_interval():
    keypoints = np.arange(2 * 17 * 2, dtype=np.float64).reshape(2, 17, 2)
    keypoints[1, 3] = np.nan
    scores = np.full((2, 17), 0.5)
    scores[0, 0], scores[0, 1], scores[1, 2] = 3.2, -0.1, np.nan
    detections = _detections(keypoints, scores)
    assert_detections_shape(detections, 2)
    assert detections.scores[0, 0] == 1.0 and detections.scores[0, 1] == 0.0 and detections.scores[1, 2] == 0.0
    # a joint without coordinates is missing: zeros with score 0
    assert (detections.keypoints[1, 3] == 0).all() and detections.scores[1, 3] == 0.0
    assert detections.keypoints[1, 4, 0] == keypoints[1, 4, 0]
    assert_detections_shape(PoseDetections.empty(), 0)
