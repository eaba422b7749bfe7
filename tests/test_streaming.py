"""StreamingRecognizer: results equal to the pipeline's on each window, the window schedule, a real video through
the real MediaPipe model in threads, skipping stale windows behind a slow model, errors of the worker threads, the
camera helper without a camera, and the `skeletonclip stream` command."""

import itertools
import os
import threading
import time

import numpy as np
import pytest
from helpers import tiny_recognition_pipeline, write_astronaut_video

from modeling_skeletonclip.cli import main
from modeling_skeletonclip.pose_estimators import ESTIMATORS, PoseDetections, PoseEstimator
from modeling_skeletonclip.streaming import CameraUnavailable, StreamingRecognizer, camera_frames, paced
from modeling_skeletonclip.synthetic_poses import make_synthetic_poses
from modeling_skeletonclip.video_io import VideoDecodeError, read_frames

VIEWS = {"num_clips": 2, "flip": True}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def pipe(minilm_tokenizer):
    return tiny_recognition_pipeline(minilm_tokenizer)


@pytest.fixture(scope="module")
def clips():
    """Synthetic clips by number of persons: one actor alone, and two persons (hug)."""
    data = make_synthetic_poses(num_train_per_class=0, num_val_per_class=2)
    one = next(a for a in data["annotations"] if a["keypoint"].shape[0] == 1 and a["total_frames"] >= 40)
    two = next(a for a in data["annotations"] if a["label"] == 11 and a["total_frames"] >= 40)
    return {1: one, 2: two}


def pose_stream(annotation):
    """The clip as a stream of per-frame poses: (keypoints [M, V, 2], scores [M, V]) per frame."""
    keypoint = annotation["keypoint"].astype(np.float32)
    score = annotation["keypoint_score"].astype(np.float32)
    return [(keypoint[:, t], score[:, t]) for t in range(keypoint.shape[1])]


def window_of(annotation, start, end):
    return {"keypoint": annotation["keypoint"][:, start:end].astype(np.float32),
            "keypoint_score": annotation["keypoint_score"][:, start:end].astype(np.float32),
            "img_shape": annotation["img_shape"]}


def recognizer(pipe, annotation=None, **kwargs):
    options = {"window": 16, "stride": 6, "estimator": None, "threaded": False, "top_k": 6, **VIEWS}
    if annotation is not None:
        options["img_shape"] = annotation["img_shape"]
    options.update(kwargs)
    return StreamingRecognizer(pipe, **options)


def assert_threads_joined():
    assert not [t for t in threading.enumerate() if t.name.startswith("streaming-")]


# ----------------------------------------------------------------------------------------------------------------
# Scores and the window schedule
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persons", [1, 2])
def test_each_result_is_the_pipeline_on_its_window(pipe, clips, persons):
    annotation = clips[persons]
    total = annotation["total_frames"]
    results = list(recognizer(pipe, annotation).run(pose_stream(annotation)))
    for result in results:
        expected = pipe(window_of(annotation, result["start_frame"], result["end_frame"]), top_k=6, **VIEWS)
        assert result["predictions"] == expected, (result["start_frame"], result["end_frame"])
    # The windows and scores of the pipeline's own timeline over the whole clip.
    timeline = pipe(window_of(annotation, 0, total), window=16, stride=6, top_k=6, **VIEWS)
    assert [(r["start_frame"], r["end_frame"], r["predictions"]) for r in results] == [
        (w["start_frame"], w["end_frame"], w["predictions"]) for w in timeline
    ]


def test_results_come_every_stride_frames_once_the_window_fills(pipe, clips):
    annotation = clips[1]
    stream = pose_stream(annotation)[:40]
    rec = recognizer(pipe, annotation, window=10, stride=4, fps=20, top_k=2)
    seen = []
    for result in rec.run(stream):
        seen.append(result)
        assert rec.stats["frames_in"] == result["frame"] + 1  # inline: the result of a frame comes before the next
    assert [(r["start_frame"], r["end_frame"], r["frame"]) for r in seen] == [
        (s, s + 10, s + 9) for s in range(0, 31, 4)] + [(30, 40, 39)]  # the last window ends with the stream
    assert [r["time"] for r in seen] == pytest.approx([r["frame"] / 20 for r in seen])
    assert all(len(r["predictions"]) == 2 and r["latency_s"] >= 0 for r in seen)
    assert rec.stats == {"frames_in": 40, "frames_dropped": 0, "frames_estimated": 40, "windows": 9,
                         "windows_scored": 9, "windows_skipped": 0, "windows_without_person": 0, "backlog_max": 0,
                         "frame_backlog_max": 0}
    # Shorter than the window: one window of the whole stream; "2s" at 4 fps is 8 frames.
    short = list(recognizer(pipe, annotation, window="2s", stride="1s", fps=4).run(stream[:5]))
    assert [(r["start_frame"], r["end_frame"]) for r in short] == [(0, 5)]
    assert short[0]["predictions"] == pipe(window_of(annotation, 0, 5), top_k=6, **VIEWS)


def test_a_window_without_anybody_has_no_predictions(pipe, clips):
    nobody = PoseDetections.empty()
    stream = [nobody] * 8 + pose_stream(clips[1])[:8]
    rec = recognizer(pipe, clips[1], window=8, stride=8)
    results = list(rec.run(stream))
    assert [(r["start_frame"], r["predictions"] == []) for r in results] == [(0, True), (8, False)]
    assert rec.stats["windows_without_person"] == 1


def test_threaded_gives_the_inline_results_when_nothing_is_skipped(pipe, clips):
    annotation = clips[2]
    inline = list(recognizer(pipe, annotation).run(pose_stream(annotation)))

    def slow_producer():
        for item in pose_stream(annotation):
            time.sleep(0.005)
            yield item

    with recognizer(pipe, annotation, threaded=True, max_pending_windows=100) as rec:
        threaded = list(rec.run(slow_producer()))
        stats = dict(rec.stats)
        first = next(rec.run(slow_producer()))  # stopping early joins the threads too
    assert_threads_joined()
    key = [(r["start_frame"], r["end_frame"], r["predictions"]) for r in inline]
    assert [(r["start_frame"], r["end_frame"], r["predictions"]) for r in threaded] == key
    assert first == {**threaded[0], "latency_s": first["latency_s"]}
    frames = annotation["total_frames"]
    assert stats["frames_in"] == stats["frames_estimated"] == frames
    assert stats["windows"] == stats["windows_scored"] == len(inline) and stats["windows_skipped"] == 0
    with pytest.raises(ValueError, match="the recognizer is closed"):
        rec.run(slow_producer())


class PosesFromImages(PoseEstimator):
    """Reads the poses a test wrote into each image (frame k of `poses` is an image whose pixels are k) after a
    delay that varies from frame to frame, so that pose workers finish out of stream order."""

    name = "poses_from_images"
    computes_on_one_core = True
    poses: list = []

    def __init__(self):
        self.threads = set()

    def __call__(self, image):
        self.threads.add(threading.get_ident())
        k = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
        time.sleep(0.002 * ((k * 7) % 5))
        return PoseDetections(*self.poses[k])


def test_pose_workers_feed_the_tracker_in_stream_order(pipe, clips, monkeypatch):
    annotation = clips[2]
    stream = pose_stream(annotation)
    monkeypatch.setitem(ESTIMATORS, PosesFromImages.name, PosesFromImages)
    monkeypatch.setattr(PosesFromImages, "poses", stream)
    height, width = annotation["img_shape"]
    images = []
    for k in range(len(stream)):
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0], image[..., 1] = k % 256, k // 256
        images.append(image)
    inline = list(recognizer(pipe, annotation).run(stream))
    with recognizer(pipe, threaded=True, estimator=PosesFromImages.name, pose_workers=3,
                    max_pending_windows=100) as rec:
        estimators = list(rec.estimators)
        threaded = list(rec.run(images))
        stats = dict(rec.stats)
    assert_threads_joined()
    assert len(estimators) == 3 and all(len(e.threads) == 1 for e in estimators)  # one estimator per worker
    assert len(set.union(*(e.threads for e in estimators))) == 3  # and every worker estimated frames
    key = [(r["start_frame"], r["end_frame"], r["predictions"]) for r in inline]
    assert [(r["start_frame"], r["end_frame"], r["predictions"]) for r in threaded] == key
    assert stats["frames_estimated"] == len(stream) and stats["windows_skipped"] == 0


class SlowPipeline:
    """The pipeline, taking `seconds` longer per call: a model that cannot keep up with the stream."""

    def __init__(self, pipe, seconds):
        self.pipe, self.seconds, self.model = pipe, seconds, pipe.model

    def __call__(self, *args, **kwargs):
        time.sleep(self.seconds)
        return self.pipe(*args, **kwargs)

    def _sanitize_parameters(self, **kwargs):
        return self.pipe._sanitize_parameters(**kwargs)


def test_a_slow_model_skips_stale_windows_and_keeps_the_backlog_bounded(pipe, clips):
    annotation = clips[1]
    stream = pose_stream(annotation)[:40]
    with recognizer(SlowPipeline(pipe, 0.3), annotation, window=8, stride=2, threaded=True) as rec:
        results = list(rec.run(stream))
    stats = rec.stats
    assert stats["frames_in"] == stats["frames_estimated"] == 40 and stats["windows"] == 17
    assert stats["windows_skipped"] > 0 and stats["windows_scored"] == len(results) < 17
    assert stats["windows_scored"] + stats["windows_skipped"] == stats["windows"]
    assert stats["backlog_max"] == 1  # one window waits at most; older ones are dropped for it
    assert stats["frame_backlog_max"] <= 64  # the frame queue's bound
    ends = [r["end_frame"] for r in results]
    assert ends == sorted(set(ends)) and ends[-1] == 40  # the newest window is never the one dropped
    for result in results:  # the scored windows are scored right
        assert result["predictions"] == pipe(window_of(annotation, result["start_frame"], result["end_frame"]),
                                             top_k=6, **VIEWS)
        assert result["latency_s"] > 0.3


# ----------------------------------------------------------------------------------------------------------------
# A real video through the real MediaPipe model
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path, _ = write_astronaut_video(str(tmp_path_factory.mktemp("video") / "astronaut.mp4"), num_frames=24, fps=10)
    return path


def test_a_video_file_through_mediapipe_in_threads(pipe, video):
    with StreamingRecognizer(pipe, window=8, stride=4, top_k=3, fps=10) as rec:
        workers = len(rec.estimators)
        results = list(rec.run(read_frames(video)))
    assert_threads_joined()
    # MediaPipe computes on one core: two graphs where this process may use two cores.
    assert workers == (2 if len(os.sched_getaffinity(0)) >= 2 else 1)
    assert rec.stats["frames_in"] == rec.stats["frames_estimated"] == 24
    assert rec.stats["windows"] == rec.stats["windows_scored"] + rec.stats["windows_skipped"] == 5
    assert rec.stats["frame_backlog_max"] <= 64 and rec.stats["backlog_max"] <= 1
    assert results and results[-1]["end_frame"] == 24
    for result in results:
        assert result["end_frame"] - result["start_frame"] == 8 and result["frame"] == result["end_frame"] - 1
        assert result["time"] == pytest.approx(result["frame"] / 10)  # the decoded frames' own times
        assert len(result["predictions"]) == 3 and result["latency_s"] > 0  # the astronaut is found


def test_a_live_source_drops_frames_rather_than_wait_for_pose_estimation(pipe, video):
    frames = [frame.image for frame in read_frames(video)]
    sent = []

    def live(rec):
        """Frames at 100 fps (faster than MediaPipe), at least 48 and on until 6 have been estimated, however
        slowly this machine estimates them."""
        for k, image in enumerate(paced(itertools.islice(itertools.cycle(frames), 5000), 100)):
            if k >= 48 and rec.stats["frames_estimated"] >= 6:
                return
            sent.append(k)
            yield image

    with StreamingRecognizer(pipe, window=4, stride=2, top_k=3, frame_queue_size=2, drop_frames=True) as rec:
        results = list(rec.run(live(rec)))
    stats, total = rec.stats, len(sent)
    assert stats["frames_in"] == total and stats["frames_dropped"] > 0 and stats["frames_estimated"] >= 4, stats
    assert stats["frames_estimated"] + stats["frames_dropped"] == total and stats["frame_backlog_max"] <= 2
    assert results and results[-1]["end_frame"] == total  # the newest frame is never the one dropped
    spans = [r["end_frame"] - r["start_frame"] for r in results]
    assert min(spans) >= 4 and max(spans) > 4, (stats, spans)  # 4 estimated frames over a longer span


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


def test_an_error_in_the_pose_thread_surfaces_in_the_caller(pipe, clips):
    stream = pose_stream(clips[1])[:12]
    stream[9] = np.zeros((1, 17, 3), np.float32)
    rec = recognizer(pipe, clips[1], window=4, stride=4, threaded=True)
    with pytest.raises(ValueError, match=r"^stream frame 9: poses must be keypoints \[N, V, 2\]"):
        list(rec.run(stream))
    assert_threads_joined()

    class FailingEstimator(PoseEstimator):
        name = "failing"

        def __call__(self, image):
            raise RuntimeError("the estimator ran out of memory")

    frames = [np.zeros((48, 64, 3), np.uint8)] * 3
    with pytest.raises(RuntimeError, match="^the estimator ran out of memory$"):
        list(StreamingRecognizer(pipe, window=2, stride=1, estimator=FailingEstimator()).run(frames))
    assert_threads_joined()


def test_a_broken_video_fails_in_the_caller(pipe, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 4000)
    rec = recognizer(pipe, window=4, stride=4, threaded=True, estimator=None, img_shape=(240, 320))
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        list(rec.run(read_frames(str(broken))))
    assert_threads_joined()


def test_bad_settings_fail_at_construction(pipe):
    with pytest.raises(ValueError, match=r"stride \(9 frames\) must not exceed window \(8 frames\)"):
        StreamingRecognizer(pipe, window=8, stride=9, estimator=None, img_shape=(1, 1))
    with pytest.raises(ValueError, match=r"window='2s' is in seconds and needs the stream's frame rate"):
        StreamingRecognizer(pipe, window="2s", estimator=None, img_shape=(1, 1))
    with pytest.raises(ValueError, match=r"estimator=None \(a stream of poses\) needs img_shape"):
        StreamingRecognizer(pipe, estimator=None)
    with pytest.raises(ValueError, match="candidate_labels must be a non-empty list"):
        StreamingRecognizer(pipe, estimator=None, img_shape=(1, 1), candidate_labels=[])
    with pytest.raises(ValueError, match="pose_workers must be a positive int; got 0"):
        StreamingRecognizer(pipe, estimator=None, img_shape=(1, 1), pose_workers=0)
    with pytest.raises(ValueError, match=r"pose_workers=2 needs the estimator by name .* a stream of poses"):
        StreamingRecognizer(pipe, estimator=None, img_shape=(1, 1), pose_workers=2)
    with pytest.raises(ValueError, match=r"pose_workers=2 needs the estimator by name .* one PoseEstimator"):
        StreamingRecognizer(pipe, estimator=PosesFromImages(), pose_workers=2)


def test_no_camera_is_one_clear_line(capfd, tmp_path):
    with pytest.raises(CameraUnavailable) as err:
        camera_frames(0)
    assert capfd.readouterr().err == ""  # OpenCV's own warnings are not repeated
    assert str(err.value) == ("camera 0: no camera opens (cv2.VideoCapture(0) failed): check that one is connected "
                              "and free, or read a video file instead.")
    (tmp_path / "model").mkdir()
    assert main(["stream", "--model_name_or_path", str(tmp_path / "model"), "--camera", "0"]) == 2
    assert capfd.readouterr().err.splitlines() == [f"error: {err.value}"]


# ----------------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------------


def test_the_stream_command_prints_a_line_per_result(pipe, video, tmp_path, capsys):
    pipe.save_pretrained(str(tmp_path / "model"))
    capsys.readouterr()
    assert main(["stream", "--model_name_or_path", str(tmp_path / "model"), "--video", video, "--window", "0.8s",
                 "--stride", "4", "--top_k", "2", "--inline"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "frames 0-7 (0.70 s)", "frames 4-11 (1.10 s)", "frames 8-15 (1.50 s)", "frames 12-19 (1.90 s)",
        "frames 16-23 (2.30 s)"]
    assert all(line.count(", ") == 1 and "[latency " in line for line in lines)
    assert captured.err.splitlines()[-1].startswith("24 frames in, 0 dropped, 24 estimated; 5 windows: ")


def test_the_stream_command_reads_candidate_labels(pipe, video, tmp_path, capsys):
    pipe.save_pretrained(str(tmp_path / "model"))
    (tmp_path / "labels.txt").write_text("waving a hand\n\nstanding still\n")
    args = ["stream", "--model_name_or_path", str(tmp_path / "model"), "--video", video, "--window", "0.8s",
            "--stride", "8", "--top_k", "2", "--inline", "--candidate_labels"]
    capsys.readouterr()
    assert main(args + [str(tmp_path / "labels.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for line in lines:
        shown = line.split(": ", 1)[1].split(" [latency")[0]
        assert sorted(part.rsplit(" ", 1)[0] for part in shown.split(", ")) == ["standing still", "waving a hand"]
    assert main(args + [str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --candidate_labels {tmp_path / 'missing.txt'} does not exist."]
