"""Action recognition on a stream: frames (or per-frame poses) in one at a time, a prediction every `stride` frames
for the last `window` frames.

    >>> recognizer = StreamingRecognizer("runs/demo", window=48, stride=8)
    >>> for result in recognizer.run(read_frames("match.mp4")):       # or camera_frames(0), or any iterator
    ...     print(result["frame"], result["predictions"][0])
    >>> recognizer.stats                                                # frames in, windows scored / skipped, ...

Stages: the source is read (decoded) as frames arrive; poses are estimated and linked into tracks
(`PoseTracker`, which keeps only the last `window` frames: the ring buffer); when `stride` new frames have come
since the last window (the first window once `window` frames have come), the window's tracks are scored by the
"skeleton-action-recognition" pipeline, exactly as `pipe(annotation of those frames)` with the same views.

With `threaded=True` reading, pose estimation and scoring each run in their own threads, with bounded queues
between them. Pose estimation may run in `pose_workers` threads, each with its own estimator, taking the next
waiting frame; the poses enter the tracker in stream order. MediaPipe's graph computes on one core, so a stream
estimated by name with MediaPipe gets two workers on a machine with two cores or more. Each MediaPipe worker then
tracks the person over the frames it takes, so the poses can differ slightly from one worker's. Between the
stages: reading waits for pose estimation only when `frame_queue_size` frames wait (or, with
`drop_frames=True`, for live sources, drops the oldest waiting frame and never waits); windows wait for the
model in a queue of `max_pending_windows`, and when the model falls behind the oldest waiting window is dropped
for the newest (counted in `stats["windows_skipped"]`), so that predictions stay current and the backlog bounded.
`threaded=False` runs each frame through every stage before reading the next (deterministic: no window skipped).

At the end of a finite stream, frames after the last window's end get one more window ending with the stream (and
a stream shorter than `window` one window of all its frames), so that the windows are those of
`pipe(annotation of the whole stream, window=window, stride=stride)`. A window in which no person was found gets
a result with no predictions (counted in `stats["windows_without_person"]`).
"""

from __future__ import annotations

import collections
import itertools
import math
import numbers
import os
import queue
import threading
import time
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from .pipeline_skeletonclip import frames_or_seconds
from .pose_estimators import PoseDetections, PoseEstimator, build_pose_estimator
from .pose_tracking import PoseTracker
from .video_io import DecodedFrame


__all__ = ["CameraUnavailable", "StreamingRecognizer", "camera_frames", "paced"]

_END = object()  # end of a stage's input


class CameraUnavailable(RuntimeError):
    """No camera opens at the index asked for: one line naming it."""


class _Window(NamedTuple):
    """A window of the stream ready to be scored."""

    start: int  # position in the stream of its first frame
    end: int  # one past its last frame
    keypoint: np.ndarray  # float32 [M, W, V, 2]
    keypoint_score: np.ndarray  # float32 [M, W, V]
    time: float | None  # seconds of the newest frame
    arrival: float  # time.perf_counter() when the newest frame was read from the source


class _LatestWindows:
    """Windows waiting for the model, at most `capacity`: a new one pushes the oldest waiting one out."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.items: collections.deque = collections.deque()
        self.closed = False
        self.condition = threading.Condition()

    def put(self, item) -> tuple[int, int]:
        """Adds `item`; returns (windows dropped for it, windows that were waiting: the backlog it found)."""
        with self.condition:
            waiting, dropped = len(self.items), 0
            while len(self.items) >= self.capacity:
                self.items.popleft()
                dropped += 1
            self.items.append(item)
            self.condition.notify()
            return dropped, waiting

    def get(self):
        """The oldest waiting window; None once closed and empty."""
        with self.condition:
            while not self.items and not self.closed:
                self.condition.wait()
            return self.items.popleft() if self.items else None

    def close(self, discard: bool = False) -> None:
        with self.condition:
            self.closed = True
            if discard:
                self.items.clear()
            self.condition.notify_all()


class StreamingRecognizer:
    """Predictions every `stride` frames over the last `window` frames of a stream (see the module docstring).

    Args:
        pipe_or_model_path: a "skeleton-action-recognition" pipeline, or a folder saved by `skeletonclip train`
            (loaded with `pipeline(model=path, trust_remote_code=True)`).
        window: frames per scored window (an int), or seconds ("2s", with `fps`). Default 48.
        stride: frames (or seconds) between results; at most `window`. Default 8.
        top_k, num_clips, flip, candidate_labels, hypothesis_template: as the pipeline takes them.
        estimator: "mediapipe" (or another name of `ESTIMATORS`, built with `estimator_options`), a
            `PoseEstimator`, or None when the stream yields per-frame poses: `PoseDetections`, `(keypoints [N, V,
            2], scores [N, V])` pairs or keypoint arrays `[N, V, 2]` (scores: 1 for joints not at (0, 0)).
        pose_workers: threads estimating poses (threaded runs), each with an estimator built from the name
            `estimator`. Default: 2 for an estimator that computes on one core (MediaPipe) where this process may
            use two cores or more, else 1. A `PoseEstimator` instance is one worker.
        max_persons: the most persons per window (the most persistent tracks in it).
        fps: frame rate of the stream: gives each result its `time` and turns seconds into frames. Frames from
            `read_frames` carry their own times.
        img_shape: (height, width) of the frames the poses are in; needed with `estimator=None`, else read from
            the images.
        threaded: run reading, pose estimation and scoring in separate threads (default) or inline.
        frame_queue_size: frames that may wait for pose estimation before reading waits (or drops one).
        drop_frames: when `frame_queue_size` frames wait, drop the oldest waiting one for the new frame instead of
            waiting (threaded runs): for live sources, whose frames only get older by waiting. Windows then hold
            the frames that were estimated, and span more of the stream.
        max_pending_windows: windows that may wait for the model before the oldest is skipped.
        tracker_options: `PoseTracker` thresholds.

    Results (dicts): `frame` (position in the stream of the newest frame), `start_frame`, `end_frame` (the window
    is frames [start_frame, end_frame) of the stream), `time` (seconds of the newest frame, None if unknown),
    `predictions` (top-k `{"label", "score"}`, best first; [] for a window with nobody in it), `latency_s`
    (seconds from reading the newest frame of the window to its result).

    `stats` (of the latest run): `frames_in` (read from the source), `frames_dropped` (with `drop_frames`),
    `frames_estimated` (through pose estimation and tracking), `windows` (formed), `windows_scored`,
    `windows_skipped` (dropped for a newer one while the model was busy), `windows_without_person`, `backlog_max`
    (the most windows found waiting for the model when a new one came, at most `max_pending_windows`),
    `frame_backlog_max` (the most frames waiting for pose estimation). `windows == windows_scored +
    windows_skipped` once a run ends.
    """

    def __init__(
        self,
        pipe_or_model_path,
        window: int | str = 48,
        stride: int | str = 8,
        *,
        top_k: int = 5,
        estimator: str | PoseEstimator | None = "mediapipe",
        estimator_options: dict | None = None,
        pose_workers: int | None = None,
        max_persons: int = 2,
        candidate_labels: list[str] | None = None,
        hypothesis_template: str | None = None,
        num_clips: int = 1,
        flip: bool = False,
        fps: float | None = None,
        img_shape: tuple[int, int] | None = None,
        threaded: bool = True,
        frame_queue_size: int = 64,
        drop_frames: bool = False,
        max_pending_windows: int = 1,
        tracker_options: dict | None = None,
    ):
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, numbers.Real)
                                or not 0 < fps < math.inf):
            raise ValueError(f"fps must be a positive number; got {fps!r}.")
        self.fps = None if fps is None else float(fps)
        self.window = _length_in_frames("window", window, self.fps)
        self.stride = _length_in_frames("stride", stride, self.fps)
        if self.stride > self.window:
            raise ValueError(f"stride ({self.stride} frames) must not exceed window ({self.window} frames): the "
                             "windows would leave frames out.")
        for name, value in (("top_k", top_k), ("max_persons", max_persons), ("num_clips", num_clips),
                            ("frame_queue_size", frame_queue_size), ("max_pending_windows", max_pending_windows)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        self.max_persons = int(max_persons)
        self.img_shape = None if img_shape is None else (int(img_shape[0]), int(img_shape[1]))
        self.threaded = bool(threaded)
        self.frame_queue_size = int(frame_queue_size)
        self.drop_frames = bool(drop_frames)
        self.max_pending_windows = int(max_pending_windows)
        self.tracker_options = dict(tracker_options or {})
        PoseTracker(self.max_persons, keep_frames=self.window, **self.tracker_options)  # bad thresholds fail here

        self.pipe = _load_pipeline(pipe_or_model_path)
        self.call_kwargs = {"top_k": int(top_k), "num_clips": int(num_clips), "flip": flip}
        if candidate_labels is not None:
            self.call_kwargs["candidate_labels"] = candidate_labels
        if hypothesis_template is not None:
            self.call_kwargs["hypothesis_template"] = hypothesis_template
        self.pipe._sanitize_parameters(**self.call_kwargs)  # bad labels, template or flip fail here, not mid-stream

        if pose_workers is not None and (isinstance(pose_workers, bool) or pose_workers < 1
                                         or not isinstance(pose_workers, numbers.Integral)):
            raise ValueError(f"pose_workers must be a positive int; got {pose_workers!r}.")
        if isinstance(estimator, str):
            first = build_pose_estimator(estimator, **(estimator_options or {}))
            if pose_workers is None:
                pose_workers = 2 if getattr(first, "computes_on_one_core", False) and _usable_cores() >= 2 else 1
            workers = int(pose_workers) if self.threaded else 1
            self.estimators = [first] + [build_pose_estimator(estimator, **(estimator_options or {}))
                                         for _ in range(workers - 1)]
            self._owns_estimator = True
        else:
            if estimator is not None and not callable(estimator):
                raise TypeError(f"estimator must be a name, a PoseEstimator or None; got {type(estimator).__name__}.")
            if pose_workers not in (None, 1):
                what = "a stream of poses (estimator=None)" if estimator is None else "one PoseEstimator instance"
                raise ValueError(f"pose_workers={pose_workers} needs the estimator by name (each worker builds its "
                                 f"own); {what} is one worker.")
            self.estimators = [] if estimator is None else [estimator]
            self._owns_estimator = False
        self.estimator = self.estimators[0] if self.estimators else None
        if self.estimator is None and self.img_shape is None:
            raise ValueError("estimator=None (a stream of poses) needs img_shape=(height, width): the frame size the "
                             "keypoints are in.")
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._windows: _LatestWindows | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.stats = self._new_stats()

    # -- public ---------------------------------------------------------------------------------------------------

    def run(self, frames: Iterable) -> Iterator[dict]:
        """Results for the stream `frames` as they come (see the class docstring); `stats` counts this run."""
        if self._closed:
            raise ValueError("StreamingRecognizer.run: the recognizer is closed; make a new one.")
        self._join()
        self.stats = self._new_stats()
        self._tracker = PoseTracker(self.max_persons, keep_frames=self.window, **self.tracker_options)
        # (position in the stream, time, arrival) of the last `window` estimated frames
        self._frames: collections.deque = collections.deque(maxlen=self.window)
        self._frame_shape = self.img_shape if self.estimator is None else None
        self._last_end = 0
        for estimator in self.estimators:
            if hasattr(estimator, "reset"):
                estimator.reset()
        return self._run_threaded(iter(frames)) if self.threaded else self._run_inline(iter(frames))

    def close(self) -> None:
        """Stops and joins the threads of a run in progress; closes the estimator if it was built here."""
        self._join()
        self._closed = True
        if self._owns_estimator:
            for estimator in self.estimators:
                estimator.close()
        self.estimators, self.estimator = [], None

    def __enter__(self) -> "StreamingRecognizer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- stages ---------------------------------------------------------------------------------------------------

    def _new_stats(self) -> dict:
        return {"frames_in": 0, "frames_dropped": 0, "frames_estimated": 0, "windows": 0, "windows_scored": 0,
                "windows_skipped": 0, "windows_without_person": 0, "backlog_max": 0, "frame_backlog_max": 0}

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.stats[name] += amount

    def _at_least(self, name: str, value: int) -> None:
        with self._lock:
            self.stats[name] = max(self.stats[name], value)

    def _detections(self, item, position: int, estimator) -> tuple[PoseDetections, float | None]:
        """One frame's poses (by `estimator`) and time (seconds) from a stream item."""
        time_s = position / self.fps if self.fps else None
        if estimator is None:
            if isinstance(item, tuple) and len(item) == 2:
                keypoints, scores = (np.asarray(part, dtype=np.float32) for part in item)
            else:
                keypoints = np.asarray(item, dtype=np.float32)
                scores = None
            if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
                raise ValueError(f"stream frame {position}: poses must be keypoints [N, V, 2] (with scores [N, V]), "
                                 f"PoseDetections or a (keypoints, scores) pair; got keypoints of shape "
                                 f"{tuple(keypoints.shape)}.")
            if scores is None:
                scores = np.any(keypoints != 0, axis=-1).astype(np.float32)  # joints at (0, 0) are missing
            if scores.shape != keypoints.shape[:2]:
                raise ValueError(f"stream frame {position}: scores must be [N, V] = {keypoints.shape[:2]} like the "
                                 f"keypoints; got {tuple(scores.shape)}.")
            return PoseDetections(keypoints, scores), time_s
        if isinstance(item, DecodedFrame):
            image, time_s = item.image, item.time
        else:
            image = item
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"stream frame {position}: expected an RGB uint8 image [H, W, 3] (or a DecodedFrame); "
                             f"got {image.dtype} {list(image.shape)}.")
        shape = image.shape[:2]
        with self._lock:  # pose workers check their frames concurrently
            if self._frame_shape is None:
                self._frame_shape = shape
            elif shape != self._frame_shape:
                raise ValueError(f"stream frame {position} is {shape[1]}x{shape[0]} pixels, earlier frames "
                                 f"{self._frame_shape[1]}x{self._frame_shape[0]}: one stream, one frame size.")
        return estimator(image), time_s

    def _add_frame(self, position: int, item, arrival: float) -> _Window | None:
        """One frame estimated and tracked (see `_track`)."""
        return self._track(position, *self._detections(item, position, self.estimator), arrival)

    def _track(self, position: int, detections: PoseDetections, time_s, arrival: float) -> _Window | None:
        """Poses of one frame into the tracker (frames in stream order); the window ending with it if one is due
        (counted in estimated frames, which are the stream's frames unless some were dropped)."""
        self._tracker.update(detections)
        self._frames.append((position, time_s, arrival))
        self._count("frames_estimated")
        end = self._tracker.num_frames
        if end >= self.window and (end - self.window) % self.stride == 0:
            return self._make_window(end)
        return None

    def _final_window(self) -> _Window | None:
        """At the end of the stream: the window ending with it, if frames after the last window's end are left."""
        end = self._tracker.num_frames
        return self._make_window(end) if end > self._last_end else None

    def _make_window(self, end: int) -> _Window:
        keypoint, keypoint_score = self._tracker.recent(self.window)  # [M, W, V, 2], [M, W, V]
        first_position = self._frames[-keypoint.shape[1]][0]
        newest_position, time_s, arrival = self._frames[-1]
        self._last_end = end
        self._count("windows")
        return _Window(first_position, newest_position + 1, keypoint, keypoint_score, time_s, arrival)

    def _score(self, window: _Window) -> dict:
        if window.keypoint.shape[0] == 0:
            predictions = []
            self._count("windows_without_person")
        else:
            annotation = {"keypoint": window.keypoint, "keypoint_score": window.keypoint_score,
                          "img_shape": self._frame_shape, "total_frames": window.end - window.start}
            if self.fps:
                annotation["fps"] = self.fps
            predictions = self.pipe(annotation, **self.call_kwargs)
        self._count("windows_scored")
        return {"frame": window.end - 1, "start_frame": window.start, "end_frame": window.end, "time": window.time,
                "predictions": predictions, "latency_s": time.perf_counter() - window.arrival}

    # -- inline ---------------------------------------------------------------------------------------------------

    def _run_inline(self, frames: Iterator) -> Iterator[dict]:
        for position in itertools.count():
            try:
                item = next(frames)
            except StopIteration:
                break
            arrival = time.perf_counter()
            self._count("frames_in")
            window = self._add_frame(position, item, arrival)
            if window is not None:
                yield self._score(window)
        window = self._final_window()
        if window is not None:
            yield self._score(window)

    # -- threaded -------------------------------------------------------------------------------------------------

    def _run_threaded(self, frames: Iterator) -> Iterator[dict]:
        stop = self._stop = threading.Event()
        frame_queue: queue.Queue = queue.Queue(maxsize=self.frame_queue_size)
        windows = self._windows = _LatestWindows(self.max_pending_windows)
        results: queue.Queue = queue.Queue()
        errors: list[BaseException] = []

        def fail(err: BaseException) -> None:
            if not errors:
                errors.append(err)
            stop.set()
            windows.close(discard=True)
            results.put(_END)

        def put_waiting(q: queue.Queue, item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def put_dropping_oldest(q: queue.Queue, item) -> None:
            while True:
                try:
                    q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        q.get_nowait()
                        self._count("frames_dropped")
                    except queue.Empty:
                        pass

        def read() -> None:
            try:
                for position in itertools.count():
                    if stop.is_set():
                        return
                    try:
                        item = next(frames)
                    except StopIteration:
                        break
                    self._count("frames_in")
                    entry = (position, item, time.perf_counter())
                    if self.drop_frames:
                        put_dropping_oldest(frame_queue, entry)
                    elif not put_waiting(frame_queue, entry):
                        return
                    self._at_least("frame_backlog_max", frame_queue.qsize())
                put_waiting(frame_queue, _END)
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller
                fail(err)

        # Pose workers take frames in stream order, numbered as taken; the poses enter the tracker in that order.
        taking, ordering = threading.Lock(), threading.Lock()
        order = {"taken": 0, "tracked": 0, "end_taken": False}
        estimated: dict[int, tuple] = {}  # number -> (entry, detections, time) waiting for earlier frames

        def take():
            """`(number, entry)` of the next waiting frame; None once the end was taken or on stop."""
            while not stop.is_set():
                with taking:
                    if order["end_taken"]:
                        return None
                    try:
                        entry = frame_queue.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    number, order["taken"] = order["taken"], order["taken"] + 1
                    order["end_taken"] = entry is _END
                    return number, entry
            return None

        def track(number: int, entry, detections, time_s) -> None:
            """Adds one estimated frame, then tracks every frame that is next in order."""
            with ordering:
                estimated[number] = (entry, detections, time_s)
                while order["tracked"] in estimated:
                    entry, detections, time_s = estimated.pop(order["tracked"])
                    order["tracked"] += 1
                    if entry is _END:
                        window = self._final_window()
                    else:
                        window = self._track(entry[0], detections, time_s, entry[2])
                    if window is not None:
                        dropped, waiting = windows.put(window)
                        self._count("windows_skipped", dropped)
                        self._at_least("backlog_max", waiting)
                    if entry is _END:
                        windows.close()

        def estimate(estimator) -> None:
            try:
                while (taken := take()) is not None:
                    number, entry = taken
                    if entry is _END:
                        track(number, entry, None, None)
                    else:
                        track(number, entry, *self._detections(entry[1], entry[0], estimator))
            except BaseException as err:  # noqa: BLE001
                fail(err)

        def score() -> None:
            try:
                while True:
                    window = windows.get()
                    if window is None or stop.is_set():
                        break
                    results.put(self._score(window))
                results.put(_END)
            except BaseException as err:  # noqa: BLE001
                fail(err)

        estimators = self.estimators or [None]
        self._threads = [threading.Thread(target=read, name="streaming-read", daemon=True)]
        self._threads += [threading.Thread(target=estimate, args=(estimator,), name=f"streaming-estimate-{i}",
                                           daemon=True) for i, estimator in enumerate(estimators)]
        self._threads.append(threading.Thread(target=score, name="streaming-score", daemon=True))
        for thread in self._threads:
            thread.start()
        try:
            while True:
                try:
                    result = results.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set() and results.empty():  # stopped by close() from another thread
                        break
                    continue
                if result is _END:
                    break
                yield result
            if errors:
                raise errors[0]
        finally:
            self._join()

    def _join(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._windows is not None:
            self._windows.close(discard=True)  # wakes the model thread
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self._threads = []


def _usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load_pipeline(pipe_or_model_path):
    if callable(pipe_or_model_path) and hasattr(pipe_or_model_path, "model"):
        return pipe_or_model_path
    from transformers import pipeline

    if not os.path.isdir(os.fspath(pipe_or_model_path)):
        raise ValueError(f"{os.fspath(pipe_or_model_path)!r} is not a model folder (saved by `skeletonclip train`) "
                         "nor a skeleton-action-recognition pipeline.")
    return pipeline("skeleton-action-recognition", model=os.fspath(pipe_or_model_path), trust_remote_code=True)


def _length_in_frames(name: str, value, fps: float | None) -> int:
    """A window length or stride in frames: an int, or seconds as '2s' (needs fps)."""
    unit, amount = frames_or_seconds(name, value)
    if unit == "frames":
        return amount
    if fps is None:
        raise ValueError(f"{name}={value!r} is in seconds and needs the stream's frame rate: pass fps=...")
    return max(1, int(round(amount * fps)))


def paced(frames: Iterable, fps: float) -> Iterator:
    """`frames` released at `fps` frames per second of wall-clock time (a video file read as a live camera would
    deliver it); a frame that is late is released at once, and the next ones catch up on the schedule."""
    start = time.perf_counter()
    for k, frame in enumerate(frames):
        delay = start + k / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield frame


class _CameraFrames:
    """RGB uint8 frames [H, W, 3] from an open `cv2.VideoCapture`, until it stops delivering or `close()`."""

    def __init__(self, capture, index):
        self.capture, self.index = capture, index
        reported = capture.get(5)  # cv2.CAP_PROP_FPS; 0 when the driver does not say
        self.fps = float(reported) if reported and math.isfinite(reported) and reported > 0 else None

    def __iter__(self) -> "_CameraFrames":
        return self

    def __next__(self) -> np.ndarray:
        if self.capture is None:
            raise StopIteration
        ok, bgr = self.capture.read()
        if not ok:
            self.close()
            raise StopIteration
        return np.ascontiguousarray(bgr[:, :, ::-1])  # BGR -> RGB

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None

    def __del__(self):
        self.close()


def camera_frames(index: int = 0) -> _CameraFrames:
    """The frames of camera `index` through OpenCV: an iterator of RGB uint8 [H, W, 3] with `fps` (None when the
    driver does not report it) and `close()`. Raises `CameraUnavailable` (one line) when no camera opens there."""
    try:
        import cv2
    except ImportError:
        raise CameraUnavailable("reading a camera needs OpenCV: pip install opencv-python-headless") from None
    # OpenCV's own warnings about a missing device would only repeat the error: silenced while opening.
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    previous = logging.setLogLevel(logging.LOG_LEVEL_SILENT) if logging is not None else None
    try:
        capture = cv2.VideoCapture(index)
        opened = capture.isOpened()
    finally:
        if previous is not None:
            logging.setLogLevel(previous)
    if not opened:
        capture.release()
        raise CameraUnavailable(f"camera {index}: no camera opens (cv2.VideoCapture({index}) failed): check that "
                                "one is connected and free, or read a video file instead.")
    return _CameraFrames(capture, index)


# -- the `skeletonclip stream` command ----------------------------------------------------------------------------


def build_parser(prog: str | None = None):
    import argparse

    from .extract_poses import parse_estimator_option

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Live predictions of a saved model on a video file or a camera: one line per result, every "
        "--stride frames over the last --window frames (poses by MediaPipe by default).",
    )
    parser.add_argument("--model_name_or_path", required=True, help="a folder saved by `skeletonclip train`")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="a video file, read as a stream")
    source.add_argument("--camera", type=int, metavar="INDEX", help="a camera through OpenCV (0: the first)")
    parser.add_argument("--window", default="48", help="frames per window (48) or seconds (2s); default 48")
    parser.add_argument("--stride", default="8", help="frames (8) or seconds (0.5s) between results; default 8")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--num_clips", type=int, default=1, help="clips per window")
    parser.add_argument("--flip", action="store_true", help="add the mirrored view of every clip")
    parser.add_argument("--candidate_labels", help="text file, one class text per line (contrastive models)")
    parser.add_argument("--hypothesis_template", help="how a label becomes a text, e.g. 'a person {}'")
    parser.add_argument("--max_persons", type=int, default=2)
    parser.add_argument("--estimator", default="mediapipe", help="pose estimator: mediapipe (default), rtmlib, yolo")
    parser.add_argument(
        "--estimator_option", action="append", type=parse_estimator_option, default=[], metavar="KEY=VALUE",
        help="an estimator keyword argument (repeatable; JSON values)",
    )
    parser.add_argument("--pose_workers", type=int, help="threads estimating poses, one estimator each (default: "
                        "2 for mediapipe, which computes on one core, where two cores are free; else 1)")
    parser.add_argument("--target_fps", type=float, help="--video: subsample to this frame rate")
    parser.add_argument("--realtime", action="store_true", help="--video: release frames at the video's frame rate, "
                        "as a camera would")
    parser.add_argument("--max_frames", type=int, help="stop after this many frames")
    parser.add_argument("--frame_queue_size", type=int, help="frames that may wait for pose estimation (default 64; "
                        "8 for --camera and --realtime, which drop the oldest waiting frame rather than wait)")
    parser.add_argument("--inline", action="store_true", help="estimate and score in the reading thread (no skipping)")
    parser.add_argument("--jsonl", action="store_true", help="print each result as a JSON line")
    return parser


def format_result(result: dict) -> str:
    """One line: the window's frames (and time), the top labels with scores, the latency."""
    when = f" ({result['time']:.2f} s)" if result.get("time") is not None else ""
    labels = ", ".join(f"{p['label']} {p['score']:.3f}" for p in result["predictions"]) or "no person"
    return (f"frames {result['start_frame']}-{result['end_frame'] - 1}{when}: {labels} "
            f"[latency {result['latency_s']:.3f} s]")


def format_stats(stats: dict) -> str:
    return (f"{stats['frames_in']} frames in, {stats['frames_dropped']} dropped, {stats['frames_estimated']} "
            f"estimated; {stats['windows']} windows: "
            f"{stats['windows_scored']} scored, {stats['windows_skipped']} skipped, "
            f"{stats['windows_without_person']} without a person; backlog max {stats['backlog_max']} windows, "
            f"{stats['frame_backlog_max']} frames")


def main(argv=None, prog=None) -> dict:
    import json
    import sys

    from .pose_estimators import PoseEstimatorUnavailable
    from .predict_videos import VideoArgumentError, parse_length
    from .run_training import read_candidate_labels
    from .video_io import probe_video, read_frames

    args = build_parser(prog).parse_args(argv)
    window, stride = parse_length(args.window, "--window"), parse_length(args.stride, "--stride")
    for flag, value in (("--max_frames", args.max_frames), ("--frame_queue_size", args.frame_queue_size),
                        ("--pose_workers", args.pose_workers)):
        if value is not None and value < 1:
            raise VideoArgumentError(f"{flag} must be at least 1.")
    live = args.camera is not None or args.realtime
    if args.camera is not None and (args.target_fps is not None or args.realtime):
        raise VideoArgumentError("--target_fps and --realtime go with --video (a camera delivers in real time).")
    if not os.path.isdir(args.model_name_or_path):
        raise VideoArgumentError(f"--model_name_or_path {args.model_name_or_path} is not a folder saved by "
                                 "`skeletonclip train`.")
    if args.video is not None:
        if not os.path.isfile(args.video):
            raise VideoArgumentError(f"--video {args.video} is not a file.")
        fps = probe_video(args.video).fps
        if args.target_fps is not None and args.target_fps < fps:
            fps = args.target_fps
        frames = read_frames(args.video, target_fps=args.target_fps)
        if args.realtime:
            frames = paced(frames, fps)
    else:
        try:
            frames = camera_frames(args.camera)
        except CameraUnavailable as err:
            raise VideoArgumentError(str(err)) from None
        fps = frames.fps
    if args.max_frames is not None:
        frames = itertools.islice(frames, args.max_frames)
    options = {}
    if args.candidate_labels:
        options["candidate_labels"] = read_candidate_labels(args.candidate_labels)
    if args.hypothesis_template:
        options["hypothesis_template"] = args.hypothesis_template
    try:
        recognizer = StreamingRecognizer(
            args.model_name_or_path, window, stride, top_k=args.top_k, num_clips=args.num_clips, flip=args.flip,
            estimator=args.estimator, estimator_options=dict(args.estimator_option), pose_workers=args.pose_workers,
            max_persons=args.max_persons,
            fps=fps, threaded=not args.inline, drop_frames=live,
            frame_queue_size=args.frame_queue_size or (8 if live else 64), **options,
        )
    except (PoseEstimatorUnavailable, ValueError, TypeError) as err:
        raise VideoArgumentError(f"stream: {err}") from None
    results = []
    with recognizer:
        for result in recognizer.run(frames):
            results.append(result)
            print(json.dumps(result) if args.jsonl else format_result(result), flush=True)
    print(format_stats(recognizer.stats), file=sys.stderr)
    return {"results": results, "stats": dict(recognizer.stats)}
