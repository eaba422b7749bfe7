"""`skeletonclip visualize`: what the model sees of one clip, as images a person can look at.

    skeletonclip visualize --train_file poses.pkl --label_map labels.txt --split val --index 3 --output_dir vis
    skeletonclip visualize --train_file poses.pkl --frame_dir S001C001P001R001A001 --output_dir vis
    skeletonclip visualize --video clip.mp4 --model_name_or_path runs/synthetic_demo --output_dir vis

Files written into `--output_dir`:

- `keypoints.png`: a grid of `--num_frames` evenly spaced frames of the clip with its skeletons drawn (the video's
  own frames, or a blank canvas of the clip's `img_shape` for a pose pickle), one colour per person, missing joints
  (score below the renderer's threshold) left out; `keypoints.gif`: the same drawing over up to `--gif_frames`
  evenly spaced frames.
- for each view the model receives, `heatmaps_<view>.npy` (the volume `[C, T, H, W]`, float32, exactly what the
  model's `prepare_heatmaps` renders from that view), `heatmaps_<view>.png` (its frames in row-major order, each
  the sum over channels in one colour map), `heatmaps_<view>_channels.png` (every channel of the middle frame) and
  `heatmaps_<view>.gif` (the frames over time). Views: "train" (the training command's augmentation of this clip
  with `--seed` in epoch `--epoch`, at the train size), "test" (the first test-mode clip, at the eval size) and
  "test_flip" (its mirrored view).
- for PACL models (`objective == "pacl"`), `frame_weights.png` and `frame_weights.json`: the weight each class text
  gives each temporal step of the clip (the view the pipeline scores), for the `--top_k` best classes or the
  `--candidate_labels`.

The heatmaps follow the model's heatmap config (size, sigma, joints or limbs) from `--model_name_or_path`, or
from `--preset` without a model.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import os
import reprlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .heatmaps import render_heatmaps
from .pose_errors import PoseDataError
from .pose_transforms import PoseClipTransform, uniform_sample_frames


logger = logging.getLogger(__name__)

VIEWS = ("train", "test", "test_flip")
COCO17_JOINT_NAMES = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist",
    "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
# RGB colour of person m (cycled): distinct on white canvases and on video frames.
PERSON_COLORS = ((230, 25, 75), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180), (70, 240, 240))
CANVAS_COLOR = 255  # the blank canvas of a pose pickle's clip: white
# Points below this score are not rendered by the heatmap renderer (pyskl's eps); the skeleton images leave them
# out too.
RENDER_THRESHOLD = 1e-3
HEATMAP_COLORMAP = "viridis"
MIN_HEATMAP_TILE = 96  # heatmap tiles are enlarged (nearest neighbour, whole pixels) to at least this side
CAPTION_HEIGHT = 16  # the caption strip above GIF frames and channel tiles
GRID_GAP = 2  # pixels between the tiles of a grid
DEFAULT_CLIP_LEN = 48  # what the pipeline samples for a model whose config has no clip_len


@dataclass
class Clip:
    """One clip: its poses in the pixels of its frames and where it came from.

    keypoint `[M, T, V, 2]`, keypoint_score `[M, T, V]`, img_shape `(h, w)`. `index` is its position in its split
    (the training command seeds a clip's augmentation by it); `video` the file its frames come from, if any.
    """

    name: str
    keypoint: np.ndarray
    keypoint_score: np.ndarray
    img_shape: tuple[int, int]
    label: Optional[int] = None
    label_name: Optional[str] = None
    index: int = 0
    video: Optional[str] = None
    target_fps: Optional[float] = None
    fps: Optional[float] = None

    @property
    def num_frames(self) -> int:
        return self.keypoint.shape[1]

    def row(self) -> dict:
        """The clip as a row of `load_pose_dataset`, the input of `PoseClipTransform` and of the pipeline."""
        persons, frames, joints, _ = self.keypoint.shape
        return {
            "frame_dir": self.name,
            "label": int(self.label) if self.label is not None and self.label >= 0 else 0,
            "img_shape": tuple(self.img_shape),
            "total_frames": frames,
            "num_person": persons,
            "keypoint": self.keypoint.reshape(persons * frames, joints, 2),
            "keypoint_score": self.keypoint_score.reshape(persons * frames, joints),
        }


# ---------------------------------------------------------------------------------------------------------------
# Choosing the clip
# ---------------------------------------------------------------------------------------------------------------
def _argument_error(message: str):
    from .run_training import ArgumentError

    return ArgumentError(message)


def clip_from_pose_file(path, split=None, index=None, frame_dir=None, label_map=None, label_offset=0,
                        cache_dir=None) -> Clip:
    """The clip `index` of `split`, or the clip named `frame_dir` (in `split`, else in any split), of a pose pickle
    read by `load_pose_dataset`. Errors name the split and its size, or the closest frame_dir."""
    from .pose_dataset import load_pose_dataset

    path = os.fspath(path)
    if os.path.isdir(path):
        raise _argument_error(f"--train_file {path} is a folder, not a pose pickle file.")
    if not os.path.isfile(path):
        raise _argument_error(f"--train_file {path} does not exist.")
    if (index is None) == (frame_dir is None):
        raise _argument_error("Choose the clip with --split NAME --index I, or with --frame_dir NAME.")
    if index is not None and split is None:
        raise _argument_error("--index needs --split (the split the index counts in).")
    if label_map is not None and isinstance(label_map, (str, os.PathLike)):
        from .run_training import existing_data_file

        label_map = existing_data_file(os.fspath(label_map), "--label_map")
    dataset = load_pose_dataset(path, label_map=label_map, splits=[split] if split is not None else None,
                                label_offset=label_offset, cache_dir=cache_dir)
    if index is not None:
        rows = dataset[split]
        if not 0 <= index < len(rows):
            last = f" (indices 0..{len(rows) - 1})" if len(rows) else ""
            raise _argument_error(f"--index {index} is out of range: split {split!r} of {path} has {len(rows)} "
                                  f"clips{last}.")
        found_split, found_index = split, int(index)
    else:
        found_split = found_index = None
        names_by_split = {name: list(rows["frame_dir"]) for name, rows in dataset.items()}
        for name, names in names_by_split.items():
            if frame_dir in names:
                found_split, found_index = name, names.index(frame_dir)
                break
        if found_split is None:
            every = [n for names in names_by_split.values() for n in names]
            close = difflib.get_close_matches(frame_dir, every, n=1, cutoff=0.6)
            where = f"split {split!r}" if split is not None else f"any split ({', '.join(names_by_split)})"
            hint = f"; the closest is {close[0]!r}" if close else ""
            raise _argument_error(f"--frame_dir {reprlib.repr(frame_dir)} is not in {where} of {path}{hint}.")
    rows = dataset[found_split]
    row = rows.with_format("numpy")[found_index]
    names = rows.features["label"].names
    persons = int(row["num_person"])
    keypoint = np.asarray(row["keypoint"], dtype=np.float32)
    keypoint = keypoint.reshape(persons, -1, *keypoint.shape[1:])  # [M, T, V, 2]
    score = np.asarray(row["keypoint_score"], dtype=np.float32).reshape(keypoint.shape[:-1])  # [M, T, V]
    label = int(row["label"])
    h, w = (float(v) for v in row["img_shape"])
    return Clip(name=str(row["frame_dir"]), keypoint=keypoint, keypoint_score=score, img_shape=(h, w), label=label,
                label_name=names[label] if 0 <= label < len(names) else None, index=found_index)


def _real_array(value, field: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            raise TypeError
        return array.astype(np.float32)
    except (TypeError, ValueError):
        raise PoseDataError(f"{where}: field {field!r} must hold real numbers, got {reprlib.repr(value)}.") from None


def clip_from_annotation(annotation: dict, name: Optional[str] = None) -> Clip:
    """A pyskl annotation as the pipeline takes it: `keypoint` `[M, T, V, 2]` (or `[T, V, 2]`; or a row of
    `load_pose_dataset`, `[M*T, V, 2]` with `num_person`), optional `keypoint_score` `[M, T, V]` (default 1 for
    joints not at (0, 0)), `img_shape` `(h, w)`, optional `fps`. Non-finite joints become missing (score 0);
    scores outside [0, 1] are clipped, with a warning."""
    where = f"Annotation {reprlib.repr(name or annotation.get('frame_dir', ''))}"
    for field in ("keypoint", "img_shape"):
        if field not in annotation:
            raise PoseDataError(f"{where}: no field {field!r}; it has {reprlib.repr(sorted(map(str, annotation)))}.")
    keypoint = _real_array(annotation["keypoint"], "keypoint", where)
    persons = annotation.get("num_person")
    if keypoint.ndim == 3 and persons is not None:
        if int(persons) < 1 or keypoint.shape[0] % int(persons):
            raise PoseDataError(f"{where}: field 'num_person' ({persons}) must divide the {keypoint.shape[0]} rows "
                                "of 'keypoint'.")
        keypoint = keypoint.reshape(int(persons), -1, *keypoint.shape[1:])
    elif keypoint.ndim == 3:
        keypoint = keypoint[None]
    if keypoint.ndim != 4 or keypoint.shape[-1] != 2 or 0 in keypoint.shape:
        raise PoseDataError(f"{where}: field 'keypoint' must be [M, T, V, 2] with M, T, V > 0, got shape "
                            f"{keypoint.shape}.")
    score = annotation.get("keypoint_score")
    if score is None:
        score = np.any(keypoint != 0, axis=-1)  # joints at (0, 0) are missing
    score = _real_array(score, "keypoint_score", where)
    if score.size == np.prod(keypoint.shape[:-1]) and score.ndim in (2, 3):
        score = score.reshape(keypoint.shape[:-1])
    if score.shape != keypoint.shape[:-1]:
        raise PoseDataError(f"{where}: field 'keypoint_score' must be [M, T, V] = {keypoint.shape[:-1]} like "
                            f"'keypoint', got shape {score.shape}.")
    finite = np.isfinite(keypoint).all(axis=-1) & np.isfinite(score)
    if finite.any() and (score[finite].min() < 0 or score[finite].max() > 1):
        logger.warning(f"{where}: field 'keypoint_score' holds values from {score[finite].min():.4g} to "
                       f"{score[finite].max():.4g}; clipped to [0, 1].")
    keypoint = np.where(finite[..., None], keypoint, 0.0).astype(np.float32)
    score = np.where(finite, np.clip(score, 0.0, 1.0), 0.0).astype(np.float32)
    try:
        h, w = (float(v) for v in annotation["img_shape"])
    except (TypeError, ValueError):
        h = w = math.nan
    if not (0 < h < math.inf and 0 < w < math.inf):
        raise PoseDataError(f"{where}: field 'img_shape' must be (h, w) > 0, got "
                            f"{reprlib.repr(annotation['img_shape'])}.")
    label = annotation.get("label")
    return Clip(name=str(name or annotation.get("frame_dir") or "clip"), keypoint=keypoint, keypoint_score=score,
                img_shape=(h, w), label=int(label) if label is not None and int(label) >= 0 else None,
                fps=annotation.get("fps"))


def clip_from_video(path, estimator="mediapipe", target_fps=None, max_persons=2) -> Clip:
    """The poses of a video file (`extract_poses.video_annotation`, the default estimator: MediaPipe), with the
    video remembered so that the skeletons are drawn on its frames."""
    from .extract_poses import NoPersonError, video_annotation
    from .video_io import VideoDecodeError, probe_video

    path = os.fspath(path)
    if os.path.isdir(path):
        raise _argument_error(f"--video {path} is a folder; visualize takes one video file.")
    if not os.path.isfile(path):
        raise _argument_error(f"--video {path} does not exist.")
    try:
        probe_video(path)  # an unreadable file fails here, before the estimator is built
        annotation = video_annotation(path, estimator, target_fps=target_fps, max_persons=max_persons)
    except (VideoDecodeError, NoPersonError) as err:  # their messages name the file
        raise _argument_error(str(err)) from None
    clip = clip_from_annotation(annotation)
    clip.video, clip.target_fps = path, target_fps
    return clip


# ---------------------------------------------------------------------------------------------------------------
# Keypoints over the frames
# ---------------------------------------------------------------------------------------------------------------
def evenly_spaced(total: int, count: int) -> np.ndarray:
    """`count` frame indices spread evenly over `[0, total)` from the first to the last frame (every frame when the
    clip has no more than `count`)."""
    if count >= total:
        return np.arange(total)
    return np.round(np.linspace(0, total - 1, count)).astype(np.int64)


def read_video_frames(path, indices: Sequence[int], target_fps=None) -> dict:
    """`{index: RGB frame}` of the frames at `indices` of the video, decoded as `video_annotation` decoded them
    (the same `target_fps`), so that index t is the frame of pose t."""
    from .video_io import read_frames

    wanted = set(int(i) for i in indices)
    frames = {}
    reader = read_frames(path, target_fps=target_fps)
    try:
        for t, frame in enumerate(reader):
            if t in wanted:
                frames[t] = frame.image
            if len(frames) == len(wanted):
                break
    finally:
        reader.close()
    return frames


def tile_shape(img_shape, tile_size: int) -> tuple[int, int, float]:
    """`(h, w, scale)` of a drawing of a frame of `img_shape` whose longer side is `tile_size` pixels."""
    h, w = float(img_shape[0]), float(img_shape[1])
    scale = tile_size / max(h, w)
    return max(1, int(round(h * scale))), max(1, int(round(w * scale))), scale


def keypoint_images(clip: Clip, indices: Sequence[int], tile_size: int = 256, frames: Optional[dict] = None,
                    score_threshold: float = RENDER_THRESHOLD, layout="coco17", caption: bool = True) -> list:
    """RGB uint8 drawings `[h, w, 3]` of the clip's frames at `indices`: the video frame (from `frames`, resized)
    or a blank canvas, with every person's skeleton in its own colour and the frame number in the corner."""
    import cv2

    from .pose_drawing import draw_label_panel, draw_skeletons

    h, w, scale = tile_shape(clip.img_shape, tile_size)
    images = []
    for t in indices:
        t = int(t)
        if frames is not None and t in frames:
            image = cv2.resize(frames[t], (w, h), interpolation=cv2.INTER_AREA)
        else:
            image = np.full((h, w, 3), CANVAS_COLOR, dtype=np.uint8)
        for m in range(clip.keypoint.shape[0]):
            draw_skeletons(image, clip.keypoint[m : m + 1, t] * scale, clip.keypoint_score[m : m + 1, t], layout,
                           score_threshold, color=PERSON_COLORS[m % len(PERSON_COLORS)])
        if caption:
            draw_label_panel(image, [f"frame {t}"])
        images.append(image)
    return images


def grid_size(count: int, tile_hw, columns: int, gap: int = GRID_GAP) -> tuple[int, int]:
    """`(height, width)` of `image_grid` of `count` tiles of `tile_hw`, `columns` a row, `gap` pixels apart."""
    columns = max(1, min(int(columns), count))
    rows = -(-count // columns)
    return rows * tile_hw[0] + (rows - 1) * gap, columns * tile_hw[1] + (columns - 1) * gap


def image_grid(tiles: Sequence[np.ndarray], columns: int, fill=0, gap: int = GRID_GAP) -> np.ndarray:
    """Tiles of one shape `[h, w, ...]` laid out row-major, `columns` a row, `gap` pixels apart (see `grid_size`);
    the gaps and the cells after the last tile hold `fill`."""
    tiles = np.stack(tiles)  # [N, h, w, ...]
    count, h, w = tiles.shape[:3]
    columns = max(1, min(int(columns), count))
    grid = np.full((*grid_size(count, (h, w), columns, gap), *tiles.shape[3:]), fill, dtype=tiles.dtype)
    for k in range(count):
        r, c = divmod(k, columns)
        top, left = r * (h + gap), c * (w + gap)
        grid[top : top + h, left : left + w] = tiles[k]
    return grid


def save_png(image: np.ndarray, path: str) -> str:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


def save_gif(images: Sequence[np.ndarray], path: str, fps: float = 10.0) -> str:
    """An animated GIF (looping) of RGB uint8 frames at `fps` frames a second."""
    from PIL import Image

    frames = [Image.fromarray(image) for image in images]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=max(20, int(round(1000 / fps))), loop=0)
    return path


# ---------------------------------------------------------------------------------------------------------------
# The heatmap volumes the model receives
# ---------------------------------------------------------------------------------------------------------------
def model_views(clip: Clip, heatmap_config, clip_len: int, seed: int = 42, epoch: int = 0) -> dict:
    """`{view: (keypoints [M, L, V, 2], keypoint_scores [M, L, V], (H, W), mirrored)}` of the clip as the model
    receives it, for the views of `VIEWS`: "train" is the augmentation `PoseClipDataset(split,
    PoseClipTransform("train", seed=seed), seed=seed)` draws for this clip (its split index) in `epoch`, as in the
    training command; "test" and "test_flip" are the first test-mode clip and its mirror, as the pipeline and the
    test protocol sample them (the mirror: the unflipped keypoints, whose rendered volume is mirrored)."""
    from .clip_dataset import seeded_transform

    kwargs = dict(clip_len=clip_len, train_size=tuple(heatmap_config.train_size),
                  eval_size=tuple(heatmap_config.eval_size), layout=heatmap_config.layout)
    row = clip.row()
    train = seeded_transform(PoseClipTransform("train", seed=seed, **kwargs), row, seed, epoch, clip.index)
    test = PoseClipTransform("test", num_clips=1, flip_double=True, **kwargs)(row)
    train_size, eval_size = tuple(heatmap_config.train_size), tuple(heatmap_config.eval_size)
    return {
        "train": (train["keypoints"][0], train["keypoint_scores"][0], train_size, False),
        "test": (test["keypoints"][0], test["keypoint_scores"][0], eval_size, bool(test["mirrored"][0])),
        "test_flip": (test["keypoints"][1], test["keypoint_scores"][1], eval_size, bool(test["mirrored"][1])),
    }


def render_view(keypoints: np.ndarray, keypoint_scores: np.ndarray, heatmap_config, size,
                mirrored: bool = False) -> np.ndarray:
    """The heatmap volume `[C, L, H, W]` (float32) of one view, rendered as the model renders its input: its
    heatmap config's sigma, joints and/or limbs, layout and scores, at `size`, mirrored after rendering for a
    flipped test view."""
    volume = render_heatmaps(
        torch.from_numpy(np.ascontiguousarray(keypoints))[None],
        torch.from_numpy(np.ascontiguousarray(keypoint_scores))[None],
        size=tuple(int(s) for s in size),
        dtype=torch.float32,
        mirrored=torch.tensor([bool(mirrored)]),
        **heatmap_config.render_kwargs(),
    )  # [1, C, L, H, W]
    return volume[0].numpy()


def channel_names(heatmap_config) -> list[str]:
    """Names of the volume's channels: joints first, then limbs ("l_shoulder-l_elbow")."""
    layout = heatmap_config.joint_layout
    joints = list(COCO17_JOINT_NAMES) if layout.name == "coco17" and layout.num_joints == 17 else [
        f"joint {j}" for j in range(layout.num_joints)]
    names = list(joints) if heatmap_config.with_joints else []
    if heatmap_config.with_limbs:
        names += [f"{joints[a]}-{joints[b]}" for a, b in layout.limbs]
    return names


def colorize(values: np.ndarray, vmax: float, cmap: str = HEATMAP_COLORMAP) -> np.ndarray:
    """RGB uint8 of `values` (any shape) through the colour map, 0 -> its first colour, `vmax` -> its last; NaN
    (the gaps of a grid) -> white."""
    import matplotlib

    scaled = np.clip(np.nan_to_num(values) / (vmax if vmax > 0 else 1.0), 0.0, 1.0)
    rgb = (matplotlib.colormaps[cmap](scaled)[..., :3] * 255 + 0.5).astype(np.uint8)
    rgb[np.isnan(values)] = 255
    return rgb


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Every pixel as a `factor` x `factor` block (nearest neighbour: the values stay the volume's)."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def heatmap_scale(size) -> int:
    """The whole-pixel enlargement that makes a heatmap tile at least `MIN_HEATMAP_TILE` pixels on its long side."""
    return max(1, -(-MIN_HEATMAP_TILE // max(int(s) for s in size)))


def heatmap_frame_sums(volume: np.ndarray) -> np.ndarray:
    """The sum over channels of every frame `[L, H, W]`: what `heatmaps_<view>.png` shows, before colour mapping."""
    return volume.sum(axis=0)


def heatmap_grid_values(volume: np.ndarray, columns: int = 8) -> np.ndarray:
    """The values `heatmaps_<view>.png` colours: the channel sums of the frames, row-major, `columns` a row, each
    pixel enlarged `heatmap_scale` times, NaN between the tiles (see `grid_size`)."""
    factor = heatmap_scale(volume.shape[-2:])
    return image_grid([enlarge(frame, factor) for frame in heatmap_frame_sums(volume)], columns, fill=np.nan)


def captioned(image: np.ndarray, text: str) -> np.ndarray:
    """`image` below a black strip with `text` in white."""
    import cv2

    strip = np.zeros((CAPTION_HEIGHT, image.shape[1], 3), dtype=np.uint8)
    cv2.putText(strip, text, (2, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


def write_heatmap_view(volume: np.ndarray, names: Sequence[str], output_dir: str, view: str, columns: int = 8,
                       fps: float = 10.0, channel_frame: Optional[int] = None) -> list[str]:
    """Writes `heatmaps_<view>.npy`, `.png` (channel sums, one colour scale from 0 to max(1, largest sum)),
    `_channels.png` (every channel of `channel_frame`, default the middle frame, scale 0..1) and `.gif`; returns
    the paths."""
    base = os.path.join(output_dir, f"heatmaps_{view}")
    np.save(f"{base}.npy", volume)
    sums = heatmap_frame_sums(volume)  # [L, H, W]
    vmax = max(1.0, float(sums.max()))
    factor = heatmap_scale(volume.shape[-2:])
    grid = save_png(colorize(heatmap_grid_values(volume, columns), vmax), f"{base}.png")
    frame = volume.shape[1] // 2 if channel_frame is None else int(channel_frame)
    tiles = [captioned(enlarge(colorize(volume[c, frame], 1.0), factor), names[c]) for c in range(volume.shape[0])]
    channels = save_png(image_grid(tiles, min(len(tiles), 6), fill=255), f"{base}_channels.png")
    frames = [captioned(enlarge(colorize(s, vmax), factor), f"{view} frame {t}") for t, s in enumerate(sums)]
    gif = save_gif(frames, f"{base}.gif", fps)
    return [f"{base}.npy", grid, channels, gif]


# ---------------------------------------------------------------------------------------------------------------
# PACL frame weights
# ---------------------------------------------------------------------------------------------------------------
def pacl_frame_weights(recognizer, annotation: dict, class_texts: list[str] | list[list[str]],
                       clip_len: Optional[int] = None):
    """PACL frame weights `[L, T']` of the clip the pipeline scores without a window (its first test-mode clip):
    how much each class text weights each temporal step of the encoder's output, averaged over the views.
    `class_texts`: a text per class, or each class's texts (averaged, as `config.class_text_lists` gives them)."""
    inputs = next(iter(recognizer.preprocess(annotation, clip_len=clip_len)))
    embeds = recognizer._class_text_embeds(class_texts)  # [L, D], as the pipeline encodes them
    with torch.no_grad():
        _, weights = recognizer.model.score_all_classes(
            keypoints=inputs["keypoints"].to(recognizer.device),
            keypoint_scores=inputs["keypoint_scores"].to(recognizer.device),
            mirrored=inputs["mirrored"].to(recognizer.device) if "mirrored" in inputs else None,
            class_text_embeds=embeds, output_frame_weights=True,
        )  # [N, L, T']
    return weights.float().mean(dim=0).cpu().numpy()  # [L, T'] averaged over the views


def frame_weights_figure(weights: np.ndarray, names: list[str], classes: list[str], step_labels=None, xlabel=None,
                         title=None):
    """The frame weights of `classes` (rows of `weights` `[L, T']`, in the order of `names`) over the clip's temporal
    steps, one line per class; `step_labels` name the steps on the x axis (default 0..T'-1). A matplotlib Figure
    (no pyplot window)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2), dpi=100)
    axes = figure.add_subplot()
    steps = np.arange(weights.shape[1])
    for name in classes:
        axes.plot(steps, weights[names.index(name)], marker="o", label=name)
    axes.set_xticks(steps, labels=step_labels)
    axes.set_xlabel(xlabel or "temporal step of the clip (its frames sampled evenly over the video)")
    if title:
        axes.set_title(title, fontsize=9)
    axes.set_ylabel("frame weight")
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def is_pacl(recognizer) -> bool:
    return recognizer.is_contrastive and getattr(recognizer.model.config, "objective", None) == "pacl"


def write_frame_weights(recognizer, clip: Clip, output_dir: str, clip_len: int, candidate_labels=None,
                        top_k: int = 5) -> list[str]:
    """Writes `frame_weights.png` and `frame_weights.json` (`labels`, their `scores`, `weights` `[labels, T']`,
    `source_frames`: the video frames at each temporal step, `clip_len / T'` sampled frames a step) of a PACL
    model; the classes are the `top_k` best of the model's classes, or every one of `candidate_labels`, best
    first."""
    names = list(candidate_labels) if candidate_labels else [
        recognizer.model.config.id2label[i] for i in sorted(recognizer.model.config.id2label)]
    row = clip.row()
    labels = {"candidate_labels": names} if candidate_labels else {}
    ranked = recognizer(row, top_k=len(names) if candidate_labels else min(top_k, len(names)), clip_len=clip_len,
                        **labels)
    shown = [p["label"] for p in ranked]
    # each class's texts as the pipeline scores them: its descriptions, or the template text of its name
    weights = pacl_frame_weights(recognizer, row, recognizer.model.config.class_text_lists(shown), clip_len)  # [L, T']
    # The video frames at each temporal step of the encoder's output (test-mode sampling, as the pipeline samples).
    inds = uniform_sample_frames(clip.num_frames, clip_len, 1, test_mode=True)
    steps = weights.shape[1]
    source = [inds[s * clip_len // steps : (s + 1) * clip_len // steps].tolist() for s in range(steps)]
    step_labels = [f"{frames[0]}-{frames[-1]}" if len(set(frames)) > 1 else str(frames[0])
                   for frames in source] if steps <= 16 else None  # more steps: too many to label
    figure = frame_weights_figure(
        weights, shown, shown, step_labels=step_labels,
        xlabel="video frames at each temporal step of the encoder's output" if step_labels else None,
        title=f"PACL frame weights of {clip.name} per class text (best first)",
    )
    png = os.path.join(output_dir, "frame_weights.png")
    figure.savefig(png)
    data = {"clip": clip.name, "labels": shown, "scores": [p["score"] for p in ranked],
            "weights": weights.tolist(), "source_frames": source,
            "weighting": recognizer.model.config.pacl_weighting}
    path = os.path.join(output_dir, "frame_weights.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    return [png, path]


# ---------------------------------------------------------------------------------------------------------------
# The model or preset
# ---------------------------------------------------------------------------------------------------------------
def saved_model_config(model_name_or_path: str):
    """The config of a saved model folder; an error naming the folder when it is none."""
    from .configuration_skeletonclip import SkeletonClipConfig

    if not os.path.isdir(model_name_or_path):
        raise _argument_error(f"--model_name_or_path {model_name_or_path} is not a folder.")
    if not os.path.isfile(os.path.join(model_name_or_path, "config.json")):
        raise _argument_error(f"--model_name_or_path {model_name_or_path}: no config.json; a folder saved by "
                              "`skeletonclip train` (or save_pretrained) goes here.")
    from .run_training import read_json

    saved = read_json(os.path.join(model_name_or_path, "config.json"), "--model_name_or_path")
    model_type = saved.get("model_type") if isinstance(saved, dict) else None
    if model_type != SkeletonClipConfig.model_type:
        raise _argument_error(f"--model_name_or_path {model_name_or_path}: config.json describes a {model_type!r} "
                              f"model, not a SkeletonCLIP one ({SkeletonClipConfig.model_type!r}).")
    return SkeletonClipConfig.from_pretrained(model_name_or_path)


def is_classifier(config) -> bool:
    return "SkeletonClipForActionRecognition" in (getattr(config, "architectures", None) or [])


def check_frame_weights_model(config) -> None:
    """Frame weights exist for PACL models only: an error naming what `config` (None: no model) is instead."""
    if config is not None and not is_classifier(config) and getattr(config, "objective", None) == "pacl":
        return
    what = "no model (--model_name_or_path)" if config is None else (
        "a classifier" if is_classifier(config) else f"a model with objective {config.objective!r}")
    raise _argument_error(f"Frame weights (--frame_weights, --candidate_labels) need a PACL model (objective "
                          f"'pacl'); this is {what}.")


def load_recognizer(model_name_or_path: str):
    """The "skeleton-action-recognition" pipeline of a saved model folder (contrastive or classifier)."""
    from transformers import pipeline

    from .modeling_skeletonclip import SkeletonClipForActionRecognition, SkeletonClipModel

    config = saved_model_config(model_name_or_path)
    classifier = is_classifier(config)
    model_class = SkeletonClipForActionRecognition if classifier else SkeletonClipModel
    model = model_class.from_pretrained(model_name_or_path).eval()
    tokenizer = {} if classifier else {"tokenizer": getattr(model, "tokenizer", None)}
    return pipeline("skeleton-action-recognition", model=model, **tokenizer)


def preset_model_config(preset: str):
    """`(config, clip_len)` of a fresh model of `preset` ("small", "full" or "auto")."""
    from .configuration_skeletonclip import SkeletonClipConfig
    from .presets import preset_config

    try:
        kwargs, clip_len = preset_config(preset)
    except ValueError as err:
        raise _argument_error(str(err)) from None
    return SkeletonClipConfig(**kwargs), clip_len


# ---------------------------------------------------------------------------------------------------------------
# Everything for one clip
# ---------------------------------------------------------------------------------------------------------------
def visualize_clip(clip: Clip, output_dir: str, heatmap_config, clip_len: int, recognizer=None, seed: int = 42,
                   epoch: int = 0, num_frames: int = 8, gif_frames: int = 48, columns: int = 4,
                   tile_size: int = 256, fps: Optional[float] = None, score_threshold: float = RENDER_THRESHOLD,
                   frame_weights: Optional[bool] = None, candidate_labels=None, top_k: int = 5) -> list[str]:
    """Writes the keypoint drawings, the heatmap volumes of every view and (PACL models; `frame_weights=None`
    means "when the model is PACL") the frame weights of `clip` into `output_dir`; returns the paths written."""
    if frame_weights:
        check_frame_weights_model(recognizer.model.config if recognizer is not None else None)
    os.makedirs(output_dir, exist_ok=True)
    written = []
    fps = float(fps or clip.fps or clip.target_fps or 10.0)

    grid_indices = evenly_spaced(clip.num_frames, num_frames)
    gif_indices = evenly_spaced(clip.num_frames, gif_frames)
    frames = None
    if clip.video is not None:
        frames = read_video_frames(clip.video, np.union1d(grid_indices, gif_indices), clip.target_fps)
    layout = heatmap_config.layout
    tiles = keypoint_images(clip, grid_indices, tile_size, frames, score_threshold, layout)
    written.append(save_png(image_grid(tiles, columns, fill=CANVAS_COLOR), os.path.join(output_dir,
                                                                                         "keypoints.png")))
    animation = keypoint_images(clip, gif_indices, tile_size, frames, score_threshold, layout)
    gif_fps = fps * len(gif_indices) / clip.num_frames  # the clip's duration, whatever frames are kept
    written.append(save_gif(animation, os.path.join(output_dir, "keypoints.gif"), gif_fps))

    names = channel_names(heatmap_config)
    for view, (keypoints, scores, size, mirrored) in model_views(clip, heatmap_config, clip_len, seed, epoch).items():
        volume = render_view(keypoints, scores, heatmap_config, size, mirrored)
        # The clip's L sampled frames span the whole clip: played over its duration.
        written += write_heatmap_view(volume, names, output_dir, view, columns=8,
                                      fps=fps * volume.shape[1] / clip.num_frames)

    if recognizer is not None and (frame_weights or (frame_weights is None and is_pacl(recognizer))):
        written += write_frame_weights(recognizer, clip, output_dir, clip_len, candidate_labels, top_k)
    return written


def parse_args(argv, prog):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="What the model sees of one clip: its skeletons over the frames, the heatmap volumes the model "
                    "receives (train augmentation, test view and its mirror) and, for PACL models, the frame weights "
                    "of the class texts, as PNG/GIF images (and the volumes as .npy) in --output_dir.",
    )
    source = parser.add_argument_group("the clip (one of --train_file or --video)")
    source.add_argument("--train_file", help="a pose pickle (pyskl format)")
    source.add_argument("--split", help="the split of --train_file the clip is in (with --index; optional with "
                                        "--frame_dir)")
    source.add_argument("--index", type=int, help="the clip's position in --split, from 0")
    source.add_argument("--frame_dir", help="the clip's frame_dir (name) in --train_file")
    source.add_argument("--label_map", help="class names, one per line (as for `skeletonclip train`)")
    source.add_argument("--label_offset", type=int, default=0, help="added to every label (-1 for 1-based pickles)")
    source.add_argument("--dataset_cache_dir", help="where the Arrow cache of the pickle lives")
    source.add_argument("--video", help="a video file: poses by MediaPipe (the default estimator)")
    source.add_argument("--target_fps", type=float, help="--video: frames a second kept (default: every frame)")
    source.add_argument("--max_persons", type=int, default=2, help="--video: persons tracked (default 2)")
    model = parser.add_argument_group("the model")
    model.add_argument("--model_name_or_path", help="a folder saved by `skeletonclip train`; without it the heatmaps "
                                                    "follow --preset")
    model.add_argument("--preset", default="auto", help="small, full or auto (the training command's presets; "
                                                        "without --model_name_or_path)")
    model.add_argument("--clip_len", type=int, help="frames per clip (default: the model's clip_len, else the "
                                                    "preset's)")
    model.add_argument("--seed", type=int, default=42, help="the training seed whose augmentation the train view "
                                                            "shows (default 42, the training command's)")
    model.add_argument("--epoch", type=int, default=0, help="the training epoch whose augmentation the train view "
                                                            "shows (default 0)")
    model.add_argument("--frame_weights", action="store_true",
                       help="plot PACL frame weights (default: whenever the model is PACL)")
    model.add_argument("--candidate_labels", help="PACL: a text file of class names, one a line, to plot (default: "
                                                  "the --top_k best of the model's classes)")
    model.add_argument("--top_k", type=int, default=5, help="PACL: the best classes plotted (default 5)")
    images = parser.add_argument_group("the images")
    images.add_argument("--output_dir", required=True)
    images.add_argument("--num_frames", type=int, default=8, help="frames in keypoints.png (default 8)")
    images.add_argument("--gif_frames", type=int, default=48, help="most frames in keypoints.gif (default 48)")
    images.add_argument("--columns", type=int, default=4, help="tiles a row of keypoints.png (default 4)")
    images.add_argument("--tile_size", type=int, default=256, help="long side of a keypoints tile (default 256)")
    images.add_argument("--fps", type=float, help="GIF frame rate (default: the video's, else 10)")
    images.add_argument("--score_threshold", type=float, default=RENDER_THRESHOLD,
                        help=f"joints scoring less are left out of the images (default "
                             f"{RENDER_THRESHOLD:g}: what the renderer skips)")
    args = parser.parse_args(argv)
    for name in ("num_frames", "gif_frames", "columns", "tile_size", "top_k", "max_persons", "clip_len"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise _argument_error(f"--{name} must be at least 1, got {value}.")
    if (args.train_file is None) == (args.video is None):
        raise _argument_error("Give the clip as --train_file PKL (with --split/--index or --frame_dir) or as "
                              "--video FILE, not both.")
    if args.video is not None and any(v is not None for v in (args.split, args.index, args.frame_dir)):
        raise _argument_error("--split, --index and --frame_dir choose a clip of --train_file; --video is one clip.")
    return args


def main(argv=None, prog="skeletonclip visualize"):
    args = parse_args(argv, prog)
    from .run_training import read_candidate_labels

    candidate_labels = read_candidate_labels(args.candidate_labels) if args.candidate_labels else None
    if args.frame_weights or candidate_labels:  # checked before any weights or data are read
        check_frame_weights_model(saved_model_config(args.model_name_or_path) if args.model_name_or_path else None)
    recognizer = load_recognizer(args.model_name_or_path) if args.model_name_or_path else None
    if recognizer is not None:
        heatmap_config = recognizer.model.config.heatmap_config
        clip_len = args.clip_len or getattr(recognizer.model.config, "clip_len", None) or DEFAULT_CLIP_LEN
    else:
        config, preset_clip_len = preset_model_config(args.preset)
        heatmap_config, clip_len = config.heatmap_config, args.clip_len or preset_clip_len
    if args.video is not None:
        clip = clip_from_video(args.video, target_fps=args.target_fps, max_persons=args.max_persons)
    else:
        clip = clip_from_pose_file(args.train_file, split=args.split, index=args.index, frame_dir=args.frame_dir,
                                   label_map=args.label_map, label_offset=args.label_offset,
                                   cache_dir=args.dataset_cache_dir)
    written = visualize_clip(
        clip, args.output_dir, heatmap_config, clip_len, recognizer=recognizer, seed=args.seed, epoch=args.epoch,
        num_frames=args.num_frames, gif_frames=args.gif_frames, columns=args.columns, tile_size=args.tile_size,
        fps=args.fps, score_threshold=args.score_threshold,
        frame_weights=True if (args.frame_weights or candidate_labels) else None, candidate_labels=candidate_labels,
        top_k=args.top_k,
    )
    label = f", label {clip.label} ({clip.label_name})" if clip.label is not None else ""
    print(f"Clip {clip.name}{label}: {clip.keypoint.shape[0]} person(s), {clip.num_frames} frames")
    for path in written:
        print(f"Wrote {path}")
