"""A small real video to try the video commands and the demo on without a camera: scikit-image's astronaut photo
(public domain, shipped inside scikit-image) drifting and growing over a grey canvas. MediaPipe finds the person in
it; the motion is a camera move, not an action, so the predictions on it only show that everything runs.

Needs scikit-image and Pillow (`pip install 'skeletonclip[demo]'`) and PyAV for writing.
"""

import os

import numpy as np


def astronaut_frame_placements(num_frames: int, width: int = 320, height: int = 240) -> list[tuple[float, int, int]]:
    """Where the photo lies in each frame: `(scale, x_offset, y_offset)` per frame, so that a photo pixel (u, v) is
    at frame pixel (x_offset + scale * u, y_offset + scale * v). The photo drifts right and grows over time."""
    placements = []
    for t in range(num_frames):
        f = t / max(num_frames - 1, 1)
        scale = 0.40 + 0.06 * f
        placements.append((scale, int(round(20 + 60 * f)), int(round(10 + 4 * f))))
    return placements


def astronaut_frames(num_frames: int, width: int = 320, height: int = 240) -> list[np.ndarray]:
    """RGB uint8 frames `[H, W, 3]`: the astronaut photo (512 x 512) pasted at `astronaut_frame_placements` on a
    grey canvas."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    frames = []
    for scale, x0, y0 in astronaut_frame_placements(num_frames, width, height):
        size = int(round(512 * scale))
        canvas = np.full((height, width, 3), 90, np.uint8)
        patch = np.asarray(photo.resize((size, size), Image.BILINEAR))
        h, w = min(size, height - y0), min(size, width - x0)
        canvas[y0 : y0 + h, x0 : x0 + w] = patch[:h, :w]
        frames.append(canvas)
    return frames


def write_sample_video(path: str, num_frames: int = 30, fps: float = 10, width: int = 320, height: int = 240) -> str:
    """Writes the astronaut video to `path` (codec by extension, see `video_io.VideoWriter`) unless it is there
    already; returns `path`. Written to a temporary name first, so that a half-written file is never taken."""
    from .video_io import VideoWriter

    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stem, extension = os.path.splitext(path)
    partial = f"{stem}.partial-{os.getpid()}{extension}"
    with VideoWriter(partial, fps=fps, width=width, height=height) as writer:
        for frame in astronaut_frames(num_frames, width, height):
            writer.write(frame)
    os.replace(partial, path)
    return path
