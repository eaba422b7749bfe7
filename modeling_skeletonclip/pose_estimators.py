"""2D pose estimators behind one small interface: an RGB image in, COCO-17 keypoints of the persons found out.

* `mediapipe` (default): MediaPipe Pose (BlazePose, the legacy `mp.solutions` API), one person at most; needs
  mediapipe 0.10.14, whose wheel carries the model (offline).
* `rtmlib`: RTMO (one stage) or YOLOX + RTMPose (two stages) through rtmlib, many persons; needs rtmlib,
  onnxruntime and local ONNX files.
* `yolo`: Ultralytics YOLO pose, many persons; needs ultralytics and a local `.pt` weights file.

Every estimator returns `PoseDetections`: keypoints float32 [N, 17, 2] in pixels of the image and scores float32
[N, 17] in [0, 1], N = persons found (0 allowed). The frameworks are imported when an estimator is built, never at
import of this module (MediaPipe's import takes about a second). Nothing here downloads: a weights file must be a
local path, checked before the framework is imported, so that a missing file and a missing package are each one
clear line (`PoseEstimatorUnavailable`).

`build_pose_estimator(name, **options)` builds one from plain values, so that worker processes can each build their
own from `(name, options)`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import re
import sys
import threading
import warnings
from typing import NamedTuple

import numpy as np

__all__ = [
    "ESTIMATORS",
    "MEDIAPIPE_TO_COCO17",
    "MediaPipePoseEstimator",
    "PoseDetections",
    "PoseEstimator",
    "PoseEstimatorUnavailable",
    "RTMLibPoseEstimator",
    "YoloPoseEstimator",
    "build_pose_estimator",
]

NUM_JOINTS = 17  # COCO-17: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles (left before right)

# MediaPipe's 33 BlazePose landmarks that are COCO-17 joints, in COCO-17 order.
MEDIAPIPE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

# The landmark model file of each `model_complexity`, under the mediapipe package.
MEDIAPIPE_LANDMARK_MODELS = {
    0: "modules/pose_landmark/pose_landmark_lite.tflite",
    1: "modules/pose_landmark/pose_landmark_full.tflite",
    2: "modules/pose_landmark/pose_landmark_heavy.tflite",
}
MEDIAPIPE_MODEL_URL = "https://storage.googleapis.com/mediapipe-assets/"

# What MediaPipe's C++ side prints on stderr each time its graph starts: information, not problems.
MEDIAPIPE_STARTUP_NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|W\d{4} [\d:. ]+\d+ inference_feedback_manager\.cc:\d+\] Feedback manager requires a model with a single "
    r"signature inference)"
)


class PoseEstimatorUnavailable(RuntimeError):
    """An estimator that cannot run here: the message names what to install, or which file to put where."""


class PoseDetections(NamedTuple):
    keypoints: np.ndarray  # float32 [N, 17, 2], COCO-17 order, pixels of the image
    scores: np.ndarray  # float32 [N, 17] in [0, 1]; N = persons found (0 allowed)

    @classmethod
    def empty(cls) -> "PoseDetections":
        return cls(np.zeros((0, NUM_JOINTS, 2), np.float32), np.zeros((0, NUM_JOINTS), np.float32))


class PoseEstimator:
    """The interface every estimator implements: `__call__(image)` on RGB uint8 [H, W, 3] returns PoseDetections;
    `reset()` starts a new video (drops any tracking state); `close()` frees the model. A context manager.
    `computes_on_one_core`: one call uses one core, so that several instances in threads go faster."""

    name: str = "base"
    computes_on_one_core: bool = False

    def __call__(self, image: np.ndarray) -> PoseDetections:
        raise NotImplementedError

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "PoseEstimator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_image(self, image) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise ValueError(f"pose estimator {self.name!r}: the image must be RGB uint8 [H, W, 3], got "
                             f"{image.dtype} {list(image.shape)}")
        return np.ascontiguousarray(image)


def _detections(keypoints, scores) -> PoseDetections:
    """PoseDetections from any [N, 17, 2] coordinates and [N, 17] scores: float32, scores clipped to [0, 1], NaN
    scores 0 and NaN coordinates 0 with score 0 (missing joints)."""
    keypoints = np.asarray(keypoints, dtype=np.float32).reshape(-1, NUM_JOINTS, 2)
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float32).reshape(-1, NUM_JOINTS), nan=0.0)
    missing = ~np.isfinite(keypoints).all(axis=-1)
    keypoints = np.where(missing[..., None], 0.0, keypoints).astype(np.float32)
    scores = np.where(missing, 0.0, np.clip(scores, 0.0, 1.0)).astype(np.float32)
    return PoseDetections(keypoints, scores)


def _local_file(estimator, option, path, where) -> str:
    """`path` if it is an existing local file, else PoseEstimatorUnavailable naming the option, the path and where
    the file comes from."""
    if path is None:
        raise PoseEstimatorUnavailable(f"pose estimator {estimator!r} needs {option}=<path>: {where}")
    path = os.fspath(path)
    if re.match(r"^[a-z][a-z0-9+.-]*://", path, flags=re.IGNORECASE):
        raise PoseEstimatorUnavailable(f"pose estimator {estimator!r}: {option}={path!r} must be a local file, not a "
                                       f"URL (nothing is downloaded): {where}")
    if not os.path.isfile(path):
        raise PoseEstimatorUnavailable(f"pose estimator {estimator!r}: {option} file {path!r} does not exist: "
                                       f"{where}")
    return path


def _check_unit_interval(estimator, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"pose estimator {estimator!r}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


@contextlib.contextmanager
def _stderr_without(noise: re.Pattern):
    """Forwards every line written to file descriptor 2 meanwhile (by any thread, C++ included) to the real stderr,
    except the lines that `noise` matches. Does nothing where descriptor 2 cannot be redirected."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError, AttributeError):
        yield
        return

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not noise.match(line.decode("utf-8", "replace")):
                    os.write(saved, line)

    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the forwarder reads to its end and stops
        forwarder.join(timeout=10)
        os.close(saved)


# ---------------------------------------------------------------------------------------------------------------
# MediaPipe (default)
# ---------------------------------------------------------------------------------------------------------------

class MediaPipePoseEstimator(PoseEstimator):
    """MediaPipe Pose (BlazePose GHUM) through mediapipe 0.10.14's legacy `mp.solutions.pose.Pose`.

    Single-person: the legacy solution tracks the most prominent person only, so N is 0 or 1. Its 33 landmarks
    map to COCO-17 by `MEDIAPIPE_TO_COCO17`; pixel coordinates are the normalised ones times the image width and
    height (joints it places outside the image keep those coordinates, usually with low scores). Scores are the
    landmarks' `visibility`, clipped to [0, 1] (the legacy API clears `presence`: it reads 0 for every landmark).

    `static_image_mode=False` (the default) is MediaPipe's video mode: it detects once, then tracks from frame to
    frame (with landmark smoothing, which assumes MediaPipe's simulated 30 fps clock); `reset()` restarts the graph
    for the next video. `True` detects on every image independently. `model_complexity` picks the landmark model
    (0 lite, 1 full, 2 heavy); the wheel ships only the full model, and the others are refused unless their
    `.tflite` file has been put in the package (MediaPipe would otherwise try to download it). `quiet` drops the
    lines MediaPipe's C++ side prints on stderr when its graph starts (every other line still shows).
    """

    name = "mediapipe"
    computes_on_one_core = True  # measured: as fast pinned to one core as on two

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static_image_mode: bool = False,
                 smooth_landmarks: bool = True, quiet: bool = True):
        if model_complexity not in MEDIAPIPE_LANDMARK_MODELS or isinstance(model_complexity, bool):
            raise ValueError(f"pose estimator 'mediapipe': model_complexity must be 0, 1 or 2, got "
                             f"{model_complexity!r}")
        min_detection_confidence = _check_unit_interval(self.name, "min_detection_confidence",
                                                        min_detection_confidence)
        min_tracking_confidence = _check_unit_interval(self.name, "min_tracking_confidence", min_tracking_confidence)
        spec = importlib.util.find_spec("mediapipe")
        if spec is None or not spec.submodule_search_locations:
            raise PoseEstimatorUnavailable(
                "pose estimator 'mediapipe' needs the mediapipe package: pip install --no-deps mediapipe==0.10.14 "
                "with the 'video' extra of this package (pip install 'skeletonclip[video]')")
        model_file = os.path.join(list(spec.submodule_search_locations)[0],
                                  MEDIAPIPE_LANDMARK_MODELS[model_complexity])
        if not os.path.isfile(model_file):
            shipped = [c for c, f in MEDIAPIPE_LANDMARK_MODELS.items()
                       if os.path.isfile(os.path.join(list(spec.submodule_search_locations)[0], f))]
            raise PoseEstimatorUnavailable(
                f"pose estimator 'mediapipe': model_complexity={model_complexity} needs {model_file}, which the "
                f"installed mediapipe does not ship (it has model_complexity {shipped or 'none'}); put "
                f"{os.path.basename(model_file)} from {MEDIAPIPE_MODEL_URL} there, or use model_complexity=1")
        self.static_image_mode = bool(static_image_mode)
        self.quiet = bool(quiet)
        # protobuf's deprecation notice on every graph output MediaPipe converts: not ours to act on
        warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated",
                                category=UserWarning)
        try:
            from mediapipe.python.solutions import pose as mp_pose
        except ImportError as e:
            raise PoseEstimatorUnavailable(
                f"pose estimator 'mediapipe' cannot import mediapipe ({e}): pip install --no-deps "
                f"mediapipe==0.10.14 with the 'video' extra of this package") from None
        self._pose = None

        def build():
            self._pose = mp_pose.Pose(
                static_image_mode=self.static_image_mode,
                model_complexity=model_complexity,
                smooth_landmarks=bool(smooth_landmarks),
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )

        self._start_graph(build)

    def _start_graph(self, start) -> None:
        """Runs `start` (building or restarting the graph). With `quiet`, also one blank image, with MediaPipe's
        start-up lines dropped from stderr: the graph opens its models on its own threads and has printed those
        lines once it has processed an image. A blank image finds nobody and leaves no tracking state (the next
        results equal a fresh graph's)."""
        if not self.quiet:
            start()
            return
        with _stderr_without(MEDIAPIPE_STARTUP_NOISE):
            start()
            self._pose.process(np.zeros((64, 64, 3), np.uint8))

    def __call__(self, image: np.ndarray) -> PoseDetections:
        if self._pose is None:
            raise ValueError("pose estimator 'mediapipe' is closed")
        image = self._check_image(image)
        results = self._pose.process(image)
        if results.pose_landmarks is None:
            return PoseDetections.empty()
        landmarks = results.pose_landmarks.landmark
        height, width = image.shape[:2]
        keypoints = np.array([[landmarks[j].x * width, landmarks[j].y * height] for j in MEDIAPIPE_TO_COCO17])
        scores = np.array([landmarks[j].visibility for j in MEDIAPIPE_TO_COCO17])
        return _detections(keypoints[None], scores[None])  # [1, 17, 2], [1, 17]

    def reset(self) -> None:
        if self._pose is not None and not self.static_image_mode:
            self._start_graph(self._pose.reset)

    def close(self) -> None:
        if self._pose is not None:
            pose, self._pose = self._pose, None
            pose.close()


# ---------------------------------------------------------------------------------------------------------------
# rtmlib (multi-person, ONNX)
# ---------------------------------------------------------------------------------------------------------------

RTMLIB_MODELS_WHERE = ("RTMO or RTMPose/YOLOX ONNX files are listed in rtmlib's model zoo "
                       "(https://github.com/Tau-J/rtmlib#model-zoo; unzip the onnx_sdk archive and pass the .onnx)")
RTMLIB_BACKEND_PACKAGES = {"onnxruntime": ("rtmlib", "onnxruntime"), "opencv": ("rtmlib",),
                           "openvino": ("rtmlib", "openvino")}


class RTMLibPoseEstimator(PoseEstimator):
    """Multi-person COCO-17 poses with rtmlib's ONNX models, from local files only.

    `pose_model` alone is a one-stage RTMO model (`rtmlib.RTMO`, input `pose_input_size`, default 640 x 640);
    `pose_model` with `det_model` is two stages: a YOLOX person detector (`rtmlib.YOLOX`, `det_input_size`) and
    an RTMPose model on each box (`rtmlib.RTMPose`, `pose_input_size` (w, h), default 192 x 256). No box or no pose
    gives N = 0 (rtmlib itself would run RTMPose on the whole image, or return a zero pose). rtmlib's models take
    OpenCV's BGR order: the RGB image is flipped for them. Scores are clipped to [0, 1] (RTMPose's SimCC maxima
    can exceed 1).
    """

    name = "rtmlib"

    def __init__(self, pose_model: str | None = None, det_model: str | None = None,
                 pose_input_size: tuple | None = None, det_input_size: tuple = (640, 640),
                 backend: str = "onnxruntime", device: str = "cpu"):
        if backend not in RTMLIB_BACKEND_PACKAGES:
            raise ValueError(f"pose estimator 'rtmlib': backend must be one of {', '.join(RTMLIB_BACKEND_PACKAGES)}, "
                             f"got {backend!r}")
        pose_model = _local_file(self.name, "pose_model", pose_model, RTMLIB_MODELS_WHERE)
        if det_model is not None:
            det_model = _local_file(self.name, "det_model", det_model, RTMLIB_MODELS_WHERE)
        packages = RTMLIB_BACKEND_PACKAGES[backend]
        missing = [p for p in packages if importlib.util.find_spec(p) is None]
        if missing:
            needs = " and ".join(packages)
            raise PoseEstimatorUnavailable(
                f"pose estimator 'rtmlib' needs the {needs} packages: pip install {' '.join(packages)}")
        import rtmlib

        self.two_stage = det_model is not None
        if self.two_stage:
            self._detector = rtmlib.YOLOX(det_model, model_input_size=tuple(det_input_size), backend=backend,
                                          device=device)
            self._pose = rtmlib.RTMPose(pose_model, model_input_size=tuple(pose_input_size or (192, 256)),
                                        backend=backend, device=device)
        else:
            self._detector = None
            self._pose = rtmlib.RTMO(pose_model, model_input_size=tuple(pose_input_size or (640, 640)),
                                     backend=backend, device=device)

    def __call__(self, image: np.ndarray) -> PoseDetections:
        bgr = np.ascontiguousarray(self._check_image(image)[..., ::-1])
        if self.two_stage:
            boxes = np.asarray(self._detector(bgr), dtype=np.float32).reshape(-1, 4)  # [N, 4] x0, y0, x1, y1
            if len(boxes) == 0:
                return PoseDetections.empty()
            keypoints, scores = self._pose(bgr, bboxes=boxes)
        else:
            keypoints, scores = self._pose(bgr)
        keypoints, scores = np.asarray(keypoints), np.asarray(scores)
        if keypoints.size == 0:
            return PoseDetections.empty()
        if keypoints.shape[-2:] != (NUM_JOINTS, 2):
            raise ValueError(f"pose estimator 'rtmlib': the pose model gives keypoints {list(keypoints.shape)}, "
                             f"not COCO-17 [N, 17, 2]; use a COCO-17 body model")
        detections = _detections(keypoints, scores)
        found = detections.scores.max(axis=1) > 0  # RTMO answers "nobody" with one all-zero pose
        return PoseDetections(detections.keypoints[found], detections.scores[found])

    def close(self) -> None:
        self._detector = self._pose = None


# ---------------------------------------------------------------------------------------------------------------
# Ultralytics YOLO pose (multi-person)
# ---------------------------------------------------------------------------------------------------------------

YOLO_WEIGHTS_WHERE = ("Ultralytics pose weights such as yolo11n-pose.pt are listed at "
                      "https://docs.ultralytics.com/tasks/pose/")


class YoloPoseEstimator(PoseEstimator):
    """Multi-person COCO-17 poses with an Ultralytics YOLO pose model from a local `.pt` file (`weights`).

    `conf` is the person detection threshold, `device` as Ultralytics takes it (None: its default). The model takes
    OpenCV's BGR order for numpy images: the RGB image is flipped for it. Models without keypoint confidences give
    score 1 for every joint they place.
    """

    name = "yolo"

    def __init__(self, weights: str | None = None, conf: float = 0.25, device: str | None = None):
        weights = _local_file(self.name, "weights", weights, YOLO_WEIGHTS_WHERE)
        self.conf = _check_unit_interval(self.name, "conf", conf)
        self.device = device
        if importlib.util.find_spec("ultralytics") is None:
            raise PoseEstimatorUnavailable(
                "pose estimator 'yolo' needs the ultralytics package: pip install ultralytics")
        from ultralytics import YOLO

        self._model = YOLO(weights)

    def __call__(self, image: np.ndarray) -> PoseDetections:
        bgr = np.ascontiguousarray(self._check_image(image)[..., ::-1])
        options = {"verbose": False, "conf": self.conf}
        if self.device is not None:
            options["device"] = self.device
        result = self._model(bgr, **options)[0]
        if result.keypoints is None or len(result.keypoints) == 0:
            return PoseDetections.empty()
        keypoints = result.keypoints.xy.cpu().numpy()  # [N, 17, 2]
        if keypoints.shape[-2:] != (NUM_JOINTS, 2):
            raise ValueError(f"pose estimator 'yolo': the model gives keypoints {list(keypoints.shape)}, not COCO-17 "
                             f"[N, 17, 2]; use a COCO-17 pose model")
        conf = result.keypoints.conf
        scores = conf.cpu().numpy() if conf is not None else np.ones(keypoints.shape[:2], np.float32)
        return _detections(keypoints, scores)

    def close(self) -> None:
        self._model = None


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------

ESTIMATORS: dict[str, type] = {
    "mediapipe": MediaPipePoseEstimator,
    "rtmlib": RTMLibPoseEstimator,
    "yolo": YoloPoseEstimator,
}


def build_pose_estimator(name: str = "mediapipe", **options) -> PoseEstimator:
    """The estimator registered as `name` in ESTIMATORS, built with `options` (its keyword arguments)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown pose estimator {name!r}; choose one of: {', '.join(ESTIMATORS)}")
    estimator = ESTIMATORS[name]
    accepted = [p for p in inspect.signature(estimator.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"pose estimator {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
                         f"{', '.join(accepted)}")
    return estimator(**options)
