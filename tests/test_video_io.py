"""video_io on real video files written by PyAV's encoders: round trips per container, time-based subsampling
(against a brute-force nearest-frame reference), rotation metadata (against OpenCV's own auto-rotation), every
kind of unreadable file, and the writer."""

import inspect
import tracemalloc

import av
import numpy as np
import pytest
from helpers import astronaut_frames, write_astronaut_video, write_rotated_video, write_video

from modeling_skeletonclip.video_io import (
    VIDEO_EXTENSIONS,
    DecodedFrame,
    VideoDecodeError,
    VideoInfo,
    VideoWriter,
    probe_video,
    read_frames,
)

# Mean absolute difference (0-255) between written and decoded frames: the codecs are lossy (mpeg4 at its default
# bit rate most of all); a wrong frame, channel order or orientation is off by far more (tens).
MAX_MEAN_DIFF = {"mpeg4": 8.0}
DEFAULT_MAX_MEAN_DIFF = 4.0
CODEC_OF = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".m4v": "libx264", ".webm": "libvpx-vp9",
            ".avi": "mpeg4"}


def mean_diff(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def assert_one_line_naming(error, path):
    message = str(error.value)
    assert str(path) in message and "\n" not in message, message
    assert not isinstance(error.value, av.FFmpegError)
    return message


# ---------------------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extension", VIDEO_EXTENSIONS)
def test_round_trip_of_each_container(tmp_path, extension):
    path, _ = write_astronaut_video(str(tmp_path / f"astronaut{extension}"), num_frames=12, fps=10)
    written = astronaut_frames(12)
    info = probe_video(path)
    assert info == VideoInfo(path=path, width=320, height=240, fps=10.0, num_frames=12, duration=info.duration,
                             rotation=0)
    assert info.duration == pytest.approx(1.2, abs=0.01)
    frames = list(read_frames(path))
    assert [f.index for f in frames] == list(range(12))
    assert [f.time for f in frames] == pytest.approx([k / 10 for k in range(12)], abs=1e-3)
    bound = MAX_MEAN_DIFF.get(CODEC_OF[extension], DEFAULT_MAX_MEAN_DIFF)
    for frame, original in zip(frames, written):
        assert isinstance(frame, DecodedFrame)
        assert frame.image.dtype == np.uint8 and frame.image.shape == (240, 320, 3)
        assert mean_diff(frame.image, original) < bound
    # frames differ from each other by much more than the codec's error: each decoded frame is its own original
    assert mean_diff(written[0], written[-1]) > 5 * bound
    assert all(mean_diff(frames[k].image, written[k]) < mean_diff(frames[k].image, written[11 - k])
               for k in (0, 3, 8, 11))


def test_read_frames_is_a_lazy_generator(tmp_path):
    """Frames come one at a time: the first ones of a file broken further on arrive before its error."""
    path, _ = write_astronaut_video(str(tmp_path / "a.mkv"), num_frames=30, fps=30)
    data = open(path, "rb").read()
    broken = tmp_path / "cut.mkv"
    broken.write_bytes(data[: len(data) * 3 // 4])
    frames = read_frames(str(broken))
    assert inspect.isgenerator(frames)
    first = next(frames)
    assert first.index == 0 and inspect.getgeneratorstate(frames) == inspect.GEN_SUSPENDED
    with pytest.raises(VideoDecodeError):
        list(frames)


def test_streaming_holds_no_more_than_a_few_frames(tmp_path):
    """Python-side memory (numpy arrays included) while reading a 60-frame video stays under three frames' worth."""
    path, _ = write_astronaut_video(str(tmp_path / "long.mp4"), num_frames=60, fps=30)
    frame_bytes = 240 * 320 * 3
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_frames(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 60
    assert peak < 3 * frame_bytes, peak


def test_max_frames(tmp_path):
    path, _ = write_astronaut_video(str(tmp_path / "a.mp4"), num_frames=12, fps=10)
    assert [f.index for f in read_frames(path, max_frames=5)] == [0, 1, 2, 3, 4]
    assert len(list(read_frames(path, max_frames=100))) == 12
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_frames"):
            read_frames(path, max_frames=bad)
    for bad in (0, -3, float("nan"), "10"):
        with pytest.raises(ValueError, match="target_fps"):
            read_frames(path, target_fps=bad)


# ---------------------------------------------------------------------------------------------------------------
# Subsampling by time
# ---------------------------------------------------------------------------------------------------------------

def nearest_frames_reference(times, target_fps):
    """Brute force: for every grid point t0 + k / target_fps up to the last frame, the index of the nearest frame
    (ties to the earlier one), each frame once."""
    times = np.asarray(times, dtype=np.float64)
    kept, k = [], 0
    while times[0] + k / target_fps <= times[-1] + 1e-9:
        point = times[0] + k / target_fps
        distances = np.abs(times - point)
        best = int(np.flatnonzero(distances <= distances.min() + 1e-9)[0])
        if not kept or kept[-1] != best:
            kept.append(best)
        k += 1
    return kept


def test_30_fps_at_10_fps_keeps_every_third_frame(tmp_path):
    path, _ = write_astronaut_video(str(tmp_path / "a.mp4"), num_frames=30, fps=30)
    written = astronaut_frames(30)
    frames = list(read_frames(path, target_fps=10))
    assert [f.index for f in frames] == list(range(0, 30, 3))
    assert [f.time for f in frames] == pytest.approx([k / 10 for k in range(10)], abs=1e-3)
    for frame in frames:  # the images are those frames' own
        assert mean_diff(frame.image, written[frame.index]) < DEFAULT_MAX_MEAN_DIFF
    assert [f.index for f in read_frames(path, target_fps=10, max_frames=4)] == [0, 3, 6, 9]


@pytest.mark.parametrize("target_fps", [7, 12.5, 29])
def test_subsampling_matches_nearest_frame_reference(tmp_path, target_fps):
    path, _ = write_astronaut_video(str(tmp_path / "a.mkv"), num_frames=30, fps=30)
    all_times = [f.time for f in read_frames(path)]
    frames = list(read_frames(path, target_fps=target_fps))
    assert [f.index for f in frames] == nearest_frames_reference(all_times, target_fps)
    assert all(b.time > a.time for a, b in zip(frames, frames[1:]))


@pytest.mark.parametrize("target_fps", [30, 30.5, 60, 1000])
def test_target_at_or_above_the_source_rate_keeps_every_frame(tmp_path, target_fps):
    path, _ = write_astronaut_video(str(tmp_path / "a.mp4"), num_frames=15, fps=30)
    assert [f.index for f in read_frames(path, target_fps=target_fps)] == list(range(15))


def test_variable_frame_rate_uses_the_frame_timestamps(tmp_path):
    intervals = [0.03, 0.05, 0.02, 0.10, 0.04, 0.04, 0.07, 0.01, 0.03, 0.06, 0.05, 0.02, 0.08, 0.03, 0.12, 0.02]
    times = np.concatenate([[0.0], np.cumsum(intervals)])
    path = write_video(str(tmp_path / "vfr.mkv"), astronaut_frames(len(times)), fps=30, times=times)
    decoded = list(read_frames(path))
    assert [f.time for f in decoded] == pytest.approx(times, abs=1e-3)
    for target_fps in (10, 4):
        kept = [f.index for f in read_frames(path, target_fps=target_fps)]
        assert kept == nearest_frames_reference(times, target_fps)
        # a constant-rate assumption (every k-th frame) would keep other frames
        assert kept != list(range(0, len(times), max(1, round(len(times) / times[-1] / target_fps))))


# ---------------------------------------------------------------------------------------------------------------
# Rotation
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extension,rotation", [(".mp4", 90), (".mp4", 180), (".mp4", 270), (".webm", 90)])
def test_rotated_video_comes_out_upright(tmp_path, extension, rotation):
    upright = astronaut_frames(4)  # 320 x 240
    path = write_rotated_video(str(tmp_path / f"phone{extension}"), upright, rotation)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (320, 240, rotation)
    frames = list(read_frames(path))
    assert len(frames) == 4
    for frame, original in zip(frames, upright):
        assert frame.image.shape == (240, 320, 3) and frame.image.flags["C_CONTIGUOUS"]
        assert mean_diff(frame.image, original) < DEFAULT_MAX_MEAN_DIFF

    # OpenCV applies the same metadata with its own FFmpeg build: an independent reading of the direction
    cv2 = pytest.importorskip("cv2")
    capture = cv2.VideoCapture(path)
    try:
        assert capture.get(cv2.CAP_PROP_ORIENTATION_META) == rotation
        ok, bgr = capture.read()
    finally:
        capture.release()
    assert ok and mean_diff(frames[0].image, bgr[..., ::-1]) < DEFAULT_MAX_MEAN_DIFF


def test_stored_frames_without_rotation_stay_as_stored(tmp_path):
    sideways = [np.ascontiguousarray(np.rot90(f)) for f in astronaut_frames(3)]  # 240 x 320
    path = write_video(str(tmp_path / "plain.mp4"), sideways)
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (240, 320, 0)
    assert mean_diff(next(read_frames(path)).image, sideways[0]) < DEFAULT_MAX_MEAN_DIFF


# ---------------------------------------------------------------------------------------------------------------
# Unreadable files
# ---------------------------------------------------------------------------------------------------------------

def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for _ in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def write_video_stream_without_frames(path):
    """A Matroska file with a video stream that holds no packet (its audio stream keeps the file non-empty)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 32, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in audio.encode(frame) + audio.encode():
            container.mux(packet)
    return str(path)


def unreadable_file(tmp_path, kind):
    if kind == "missing":
        return str(tmp_path / "missing.mp4")
    if kind == "directory":
        (tmp_path / "folder.mp4").mkdir()
        return str(tmp_path / "folder.mp4")
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(50_000))
    elif kind == "text":
        path.write_text("frame_dir,label\nclip0,3\n" * 50)
    elif kind == "truncated mp4":
        write_astronaut_video(str(tmp_path / "whole.mp4"), num_frames=12)
        data = (tmp_path / "whole.mp4").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "audio only":
        return write_audio_only(tmp_path / "audio.m4a")
    elif kind == "no frames":
        return write_video_stream_without_frames(tmp_path / "no_frames.mkv")
    return str(path)


@pytest.mark.parametrize("kind,reason", [
    ("missing", "no such file"),
    ("directory", "is a directory"),
    ("empty", "empty file"),
    ("random bytes", "not a readable video file"),
    ("text", "not a readable video file"),
    ("truncated mp4", "not a readable video file"),
    ("audio only", "no video stream (streams: audio)"),
    ("no frames", "decodes to no frames"),
])
def test_unreadable_files_are_one_line_errors(tmp_path, kind, reason):
    path = unreadable_file(tmp_path, kind)
    for call in (probe_video, lambda p: list(read_frames(p)), lambda p: list(read_frames(p, target_fps=5))):
        with pytest.raises(VideoDecodeError) as error:
            call(path)
        message = assert_one_line_naming(error, path)
        assert reason in message


@pytest.mark.parametrize("extension", [".mkv", ".webm", ".avi"])
def test_truncated_stream_is_an_error_not_a_shorter_video(tmp_path, extension):
    """These containers decode a cut file up to the cut without complaint; the reader compares with what the
    container declares (frame count or duration) and names the frame where the stream ends."""
    path, _ = write_astronaut_video(str(tmp_path / f"whole{extension}"), num_frames=30, fps=30)
    data = open(path, "rb").read()
    cut = tmp_path / f"cut{extension}"
    cut.write_bytes(data[: len(data) // 2])
    decoded = []
    with pytest.raises(VideoDecodeError) as error:
        for frame in read_frames(str(cut)):
            decoded.append(frame.index)
    message = assert_one_line_naming(error, cut)
    assert f"ends at frame {len(decoded)} " in message and "truncated or corrupt" in message
    assert len(decoded) < 30


@pytest.mark.parametrize("extension", [".mp4", ".avi", ".mkv"])
def test_corrupt_middle_names_the_frame(tmp_path, extension):
    path, _ = write_astronaut_video(str(tmp_path / f"whole{extension}"), num_frames=30, fps=30)
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle : middle + 3000] = np.random.default_rng(1).bytes(3000)
    corrupt = tmp_path / f"corrupt{extension}"
    corrupt.write_bytes(bytes(data))
    decoded = []
    with pytest.raises(VideoDecodeError) as error:
        for frame in read_frames(str(corrupt)):
            decoded.append(frame.index)
    message = assert_one_line_naming(error, corrupt)
    assert f"at frame {len(decoded)}" in message, message
    assert 0 < len(decoded) < 30


# ---------------------------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extension", [".mp4", ".mov", ".webm", ".avi"])
def test_writer_round_trip_with_odd_size(tmp_path, extension):
    frames = [f[:239, :317] for f in astronaut_frames(10)]  # 317 x 239
    path = str(tmp_path / f"out{extension}")
    with VideoWriter(path, fps=12.5) as writer:
        for frame in frames:
            writer.write(frame)
    info = probe_video(path)
    padded = CODEC_OF[extension] != "libvpx-vp9"
    assert (info.width, info.height) == ((318, 240) if padded else (317, 239))
    assert info.fps == pytest.approx(12.5) and info.num_frames == 10
    decoded = list(read_frames(path))
    assert [f.time for f in decoded] == pytest.approx([k / 12.5 for k in range(10)], abs=1e-3)
    bound = MAX_MEAN_DIFF.get(CODEC_OF[extension], DEFAULT_MAX_MEAN_DIFF)
    for frame, original in zip(decoded, frames):
        assert mean_diff(frame.image[:239, :317], original) < bound
        if padded:  # the extra row and column repeat the edge
            assert mean_diff(frame.image[239, :317], original[238]) < 2 * bound
            assert mean_diff(frame.image[:239, 317], original[:, 316]) < 2 * bound


def test_writer_with_explicit_size_refuses_other_frames(tmp_path):
    path = str(tmp_path / "out.mp4")
    frames = astronaut_frames(3)
    with VideoWriter(path, fps=10, width=320, height=240) as writer:
        writer.write(frames[0])
        with pytest.raises(ValueError, match=r"out.mp4: frame 1 is 100x240, the video is 320x240"):
            writer.write(frames[1][:, :100])
        with pytest.raises(ValueError, match=r"frame 1 must be RGB uint8 \[H, W, 3\], got float32"):
            writer.write(frames[1].astype(np.float32))
        writer.write(frames[1])
    assert len(list(read_frames(path))) == 2
    with pytest.raises(ValueError, match="closed"):
        writer.write(frames[2])
    writer.close()  # a second close does nothing


def test_writer_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"out.gif: cannot choose a video codec for '.gif'"):
        VideoWriter(str(tmp_path / "out.gif"), fps=10)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        VideoWriter(str(tmp_path / "out.mp4"), fps=0)
    with pytest.raises(ValueError, match="both width and height"):
        VideoWriter(str(tmp_path / "out.mp4"), fps=10, width=64)


def test_decode_error_survives_pickling(tmp_path):
    """Worker processes send their errors to the parent pickled."""
    import pickle

    error = VideoDecodeError(str(tmp_path / "a.mp4"), "empty file (0 bytes)")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is VideoDecodeError and str(copy) == str(error) and copy.path == error.path
    assert copy.reason == "empty file (0 bytes)"
