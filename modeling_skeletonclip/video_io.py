"""Reading and writing video files with PyAV (FFmpeg).

`read_frames` streams the frames of a video as upright RGB arrays with their times; `probe_video` tells a video's
upright size, frame rate, length and rotation without decoding more than its first frame; `VideoWriter` encodes RGB
frames to a file (the codec by extension). Every failure to read a file is a `VideoDecodeError`: one line naming the
file and the reason, never a raw PyAV exception.

Rotation: phones store portrait video as landscape frames plus a display matrix that says how to turn them. FFmpeg
hands that matrix to every decoded frame (`VideoFrame.rotation`, counter-clockwise degrees); the frames here come
out turned by it, and `VideoInfo.rotation` is the clockwise angle by which the stored frames are turned for display
(the `rotate` tag of older files: 90 for a phone held upright).

Completeness: a truncated or corrupt file often decodes without an error up to where it breaks and then simply
ends. `read_frames` compares what it decoded with what the container declares (its frame count, or else the
stream's duration) and raises instead of returning a silently shortened video.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, NamedTuple

import numpy as np

__all__ = [
    "VIDEO_EXTENSIONS",
    "DecodedFrame",
    "VideoDecodeError",
    "VideoInfo",
    "VideoWriter",
    "probe_video",
    "read_frames",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v")

# Encoder by file extension, all writing yuv420p.
WRITER_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264",
                 ".webm": "libvpx-vp9", ".avi": "mpeg4"}
# libx264 needs even sides in yuv420p (mpeg4 too); libvpx-vp9 takes any size.
EVEN_SIZE_CODECS = {"libx264", "mpeg4"}


class VideoDecodeError(ValueError):
    """A video file that cannot be read, or not completely: the message names the file and the reason."""

    def __init__(self, path, reason):
        self.path, self.reason = str(path), _one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # rebuilt from (path, reason) when it crosses a process boundary
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` tells about a video stream; width and height are the upright (displayed) size."""

    path: str
    width: int
    height: int
    fps: float  # average frame rate of the stream
    num_frames: int  # declared by the container, else counted from its packets
    duration: float  # seconds
    rotation: int  # clockwise degrees, in {0, 90, 180, 270}, by which the stored frames are turned for display


class DecodedFrame(NamedTuple):
    index: int  # index of the frame in the source video (0-based, decoding order of presentation)
    time: float  # seconds from the start of the stream
    image: np.ndarray  # RGB uint8 [H, W, 3], upright


def _one_line(text) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def _av():
    try:
        import av
    except ImportError as e:
        raise ImportError("reading and writing video needs PyAV: pip install 'skeletonclip[video]' (or av)") from e
    return av


def _ffmpeg_reason(error) -> str:
    """The reason of a PyAV/FFmpeg error without the errno and the path PyAV appends."""
    strerror = getattr(error, "strerror", None)
    return _one_line(strerror or error) or type(error).__name__


def _open_video(path):
    """`(container, video stream)` of `path`, or a VideoDecodeError saying why not."""
    av = _av()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "no such file")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    try:
        container = av.open(path, mode="r")
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"not a readable video file ({_ffmpeg_reason(e)})") from None
    except OSError as e:
        raise VideoDecodeError(path, f"cannot be opened ({_ffmpeg_reason(e)})") from None
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams})
        container.close()
        raise VideoDecodeError(path, f"no video stream (streams: {', '.join(kinds) or 'none'})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        container.close()
        raise VideoDecodeError(path, f"no decoder for its video codec ({stream.codec_tag or 'unknown'})")
    return container, stream


def _stream_fps(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _is_data_packet(packet) -> bool:
    """A packet of the stream, not the empty packet PyAV's demuxer appends to flush the decoder (a container's own
    empty packets, such as AVI's dropped frames, carry a timestamp and count)."""
    return bool(packet.size) or packet.dts is not None


def _declared_duration(container, stream) -> float | None:
    """Seconds from the video stream's first timestamp to its end, as the container declares them: the stream's own
    duration, its DURATION tag (Matroska), or the file's end when the video is its only audio/video stream."""
    time_base = stream.time_base
    start = float(stream.start_time * time_base) if stream.start_time is not None and time_base else 0.0
    if stream.duration is not None and time_base is not None and stream.duration > 0:
        return float(stream.duration * time_base)
    tag = (stream.metadata or {}).get("DURATION")
    match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", tag or "")
    if match:
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds) - start  # the tag holds the track's end
    others = [s for s in container.streams if s.type in ("audio", "video") and s.index != stream.index]
    if not others and container.duration is not None and container.duration > 0:
        container_start = (container.start_time or 0) / 1_000_000
        return container.duration / 1_000_000 + container_start - start
    return None


def _upright(image: np.ndarray, counter_clockwise: int) -> np.ndarray:
    """The frame turned by its display rotation (counter-clockwise degrees, as `VideoFrame.rotation`)."""
    quarter_turns = round(counter_clockwise / 90) % 4
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def _decoded_frames(path, container, stream, counts):
    """Yields the stream's `av.VideoFrame`s in presentation order, raising a VideoDecodeError (with the index of
    the frame that failed) on a demuxing or decoding error; `counts["packets"]` counts the stream's packets.""" 
    av = _av()
    index = 0
    try:
        for packet in container.demux(stream):
            if _is_data_packet(packet):
                counts["packets"] += 1
            for frame in packet.decode():
                yield frame
                index += 1
    except av.FFmpegError as e:
        raise VideoDecodeError(path, f"decoding failed at frame {index} ({_ffmpeg_reason(e)})") from None


def _check_complete(path, container, stream, num_decoded, packets, last_time, fps):
    """Raises a VideoDecodeError when the stream ended before what the container declares."""
    if num_decoded == 0:
        raise VideoDecodeError(path, "the video stream decodes to no frames")
    declared = stream.frames or 0
    if declared > 0:
        if packets < declared:
            raise VideoDecodeError(
                path, f"the video stream ends at frame {num_decoded} of the {declared} the file declares "
                      f"(truncated or corrupt)")
        return
    duration = _declared_duration(container, stream)
    if duration is None or last_time is None:
        return
    interval = 1 / float(fps) if fps else 0.0
    end = last_time + interval
    if end < duration - max(2 * interval, 0.1):
        raise VideoDecodeError(
            path, f"the video stream ends at frame {num_decoded} ({end:.2f} s) of a {duration:.2f} s video "
                  f"(truncated or corrupt)")


def probe_video(path) -> VideoInfo:
    """The upright size, frame rate, frame count, duration and rotation of the first video stream of `path`.

    Decodes the first frame (the rotation travels with decoded frames); the frame count is the container's, or
    else the number of the stream's packets (read, not decoded). Raises VideoDecodeError.
    """
    path = os.fspath(path)
    container, stream = _open_video(path)
    av = _av()
    with container:
        declared = stream.frames or 0
        first, packets = None, 0
        try:
            for packet in container.demux(stream):  # one pass: the first frame, and the packets if not declared
                packets += _is_data_packet(packet)
                if first is None:
                    first = next(iter(packet.decode()), None)
                elif declared > 0:
                    break
        except av.FFmpegError as e:
            where = "at frame 0" if first is None else "reading the video stream"
            raise VideoDecodeError(path, f"decoding failed {where} ({_ffmpeg_reason(e)})") from None
        if first is None:
            raise VideoDecodeError(path, "the video stream decodes to no frames")
        counter_clockwise = round(first.rotation / 90) % 4 * 90
        width, height = first.width, first.height
        if counter_clockwise in (90, 270):
            width, height = height, width
        fps = _stream_fps(stream)
        num_frames = declared if declared > 0 else packets
        duration = _declared_duration(container, stream)
        if duration is None:
            duration = num_frames / float(fps) if fps else 0.0
    return VideoInfo(path=path, width=width, height=height, fps=float(fps) if fps else 0.0, num_frames=num_frames,
                     duration=duration, rotation=(360 - counter_clockwise) % 360)


def read_frames(path, target_fps: float | None = None, max_frames: int | None = None) -> Iterator[DecodedFrame]:
    """Streams the frames of the first video stream of `path` as `DecodedFrame`s (RGB uint8 [H, W, 3], upright).

    A generator: it decodes one frame at a time and holds at most two, so memory does not grow with the video's
    length; it opens the file at the first `next()` (errors surface there) and closes it when exhausted or closed.

    `target_fps` subsamples by time: of the frames, it keeps the one nearest to each point of the grid
    `t0, t0 + 1/target_fps, ...` that lies within the video (t0 = the first frame's time; a tie goes to the earlier
    frame), using the frames' own timestamps, so variable frame rates are handled. It never upsamples: a
    `target_fps` at or above the stream's average frame rate keeps every frame. `max_frames` stops after that many
    kept frames.

    Raises VideoDecodeError for a file that cannot be opened, has no video stream, decodes to no frames, fails to
    decode part-way (naming the frame), or ends before what its container declares (truncated or corrupt).
    """
    if target_fps is not None and not (isinstance(target_fps, (int, float)) and math.isfinite(target_fps)
                                       and target_fps > 0):
        raise ValueError(f"target_fps must be a positive number or None, got {target_fps!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be a positive integer or None, got {max_frames!r}")
    return _read_frames(os.fspath(path), target_fps, max_frames)


def _read_frames(path, target_fps, max_frames):
    container, stream = _open_video(path)
    with container:
        fps = _stream_fps(stream)
        step = None  # grid step in seconds; None keeps every frame
        if target_fps is not None and (fps is None or Fraction(target_fps) < fps):
            step = 1 / Fraction(target_fps)
        time_base = stream.time_base
        start_pts = stream.start_time
        kept = 0
        num_decoded = 0
        last_exact = last_time = None
        previous = None  # (index, exact time, frame) of the frame before the current one
        grid_k, t0 = 0, None
        last_kept_index = -1

        def emit(index, exact_time, frame):
            image = _upright(frame.to_ndarray(format="rgb24"), frame.rotation)
            return DecodedFrame(index, float(exact_time), image)

        counts = {"packets": 0}
        frames = _decoded_frames(path, container, stream, counts)
        for frame in frames:
            index = num_decoded
            num_decoded += 1
            if frame.pts is not None and time_base is not None:
                if start_pts is None:
                    start_pts = frame.pts
                exact_time = (frame.pts - start_pts) * time_base
            elif last_exact is not None and fps:
                exact_time = last_exact + 1 / fps
            else:
                exact_time = Fraction(index) / fps if fps else Fraction(0)
            if last_exact is not None and exact_time < last_exact:
                exact_time = last_exact  # a timestamp out of order (broken file): times stay monotone
            last_exact, last_time = exact_time, float(exact_time)

            if step is None:
                yield emit(index, exact_time, frame)
                kept += 1
            else:
                if t0 is None:
                    t0 = exact_time
                # every grid point up to this frame's time is decided: by this frame or the one before
                while t0 + grid_k * step <= exact_time:
                    point = t0 + grid_k * step
                    grid_k += 1
                    if previous is not None and point - previous[1] <= exact_time - point:
                        chosen = previous
                    else:
                        chosen = (index, exact_time, frame)
                    if chosen[0] == last_kept_index:
                        continue
                    last_kept_index = chosen[0]
                    yield emit(*chosen)
                    kept += 1
                    if kept == max_frames:
                        break
                previous = (index, exact_time, frame)
            if max_frames is not None and kept >= max_frames:
                frames.close()
                return
        _check_complete(path, container, stream, num_decoded, counts["packets"], last_time, fps)


class VideoWriter:
    """Encodes RGB uint8 frames [H, W, 3] to a video file; the codec follows the extension (.mp4/.m4v/.mov/.mkv
    libx264, .webm libvpx-vp9, .avi mpeg4), all in yuv420p.

    The frame size is `width` x `height`, or the first frame's. libx264 and mpeg4 need even sides in yuv420p: an odd
    size is padded by one row/column repeating the edge, so the file is that much larger than the frames.
    `crf` sets the quality of libx264/libvpx-vp9 (lower is better; defaults 23 and 32), `bit_rate` mpeg4's (bits
    per second; default about 0.3 bits a pixel). A context manager: closing flushes the encoder and the file.
    """

    def __init__(self, path, fps: float, width: int | None = None, height: int | None = None, *,
                 crf: int | None = None, bit_rate: int | None = None):
        self.path = os.fspath(path)
        extension = os.path.splitext(self.path)[1].lower()
        if extension not in WRITER_CODECS:
            raise ValueError(f"{self.path}: cannot choose a video codec for {extension or 'no extension'!r}; "
                             f"use one of {', '.join(sorted(WRITER_CODECS))}")
        if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction)) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"{self.path}: fps must be a positive number, got {fps!r}")
        for name, side in (("width", width), ("height", height)):
            if side is not None and (isinstance(side, bool) or not isinstance(side, int) or side < 1):
                raise ValueError(f"{self.path}: {name} must be a positive integer or None, got {side!r}")
        if (width is None) != (height is None):
            raise ValueError(f"{self.path}: give both width and height, or neither (the first frame's size)")
        self.codec = WRITER_CODECS[extension]
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self.width, self.height = width, height
        self.crf, self.bit_rate = crf, bit_rate
        self.frames_written = 0
        self._container = _av().open(self.path, mode="w")
        self._stream = None
        if width is not None:
            self._add_stream()

    def _add_stream(self):
        pad = self.codec in EVEN_SIZE_CODECS
        coded_width = self.width + (self.width % 2 if pad else 0)
        coded_height = self.height + (self.height % 2 if pad else 0)
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = coded_width, coded_height, "yuv420p"
        if self.codec == "libx264":
            stream.options = {"crf": str(23 if self.crf is None else self.crf)}
        elif self.codec == "libvpx-vp9":
            stream.bit_rate = 0  # constant quality
            stream.options = {"crf": str(32 if self.crf is None else self.crf), "row-mt": "1"}
        else:
            stream.bit_rate = self.bit_rate or max(200_000, int(0.3 * coded_width * coded_height * float(self.fps)))
        self._stream = stream
        self._pad = (coded_height - self.height, coded_width - self.width)

    def write(self, image: np.ndarray) -> None:
        """Encodes one RGB uint8 frame [H, W, 3] of the writer's size."""
        if self._container is None:
            raise ValueError(f"{self.path}: the writer is closed")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{self.path}: frame {self.frames_written} must be RGB uint8 [H, W, 3], got "
                             f"{image.dtype} {list(image.shape)}")
        if self._stream is None:
            self.height, self.width = image.shape[:2]
            self._add_stream()
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"{self.path}: frame {self.frames_written} is {image.shape[1]}x{image.shape[0]}, the "
                             f"video is {self.width}x{self.height}")
        if any(self._pad):
            image = np.pad(image, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        av = _av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self.fps
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flushes the encoder and closes the file (a second call does nothing)."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    container.mux(packet)
        finally:
            container.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
