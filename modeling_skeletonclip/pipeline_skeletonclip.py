"""The `skeleton-action-recognition` pipeline: poses (or a video) in, action classes with their probabilities out.

Inputs are pyskl annotations, keypoint arrays or video files. Each input (or each window of a long input) is
sampled into test-time views exactly as evaluation samples them (`PoseClipTransform` in test mode), every view is
scored against every class, and the class probabilities are the softmax averaged over the views, as
`SkeletonClipTrainer.prediction_step` computes them.

A checkpoint carries this file (see `SkeletonClipPreTrainedModel.save_pretrained`), so that
`pipeline(model=path, trust_remote_code=True)` needs neither a task nor the package. It imports only what the model
code imports plus the transforms; reading poses from videos needs the package's video extra and is imported when a
video comes in.
"""

import math
import numbers
import os
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers.pipelines.base import ChunkPipeline, no_collate_fn
from transformers.pipelines.pt_utils import PipelineChunkIterator, PipelineIterator, PipelinePackIterator
from transformers.utils import logging

from .class_descriptions import class_descriptions_problem
from .pose_errors import MAX_ABS_COORDINATE, PoseDataError
from .pose_transforms import PoseClipTransform


logger = logging.get_logger(__name__)

TASK = "skeleton-action-recognition"
# Frames per clip for checkpoints whose config predates `clip_len` (the published PoseC3D recipe).
DEFAULT_CLIP_LEN = 48
# The auto classes that load each kind of model (names the `transformers` module has, as `custom_pipelines` needs).
AUTO_CLASSES = ("AutoModel", "AutoModelForVideoClassification")
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s\s*$")


def custom_pipelines_entry(auto_class: str | None = None) -> dict:
    """The `custom_pipelines` entry of a checkpoint's config.json: the task, this class, and the auto class that
    loads the checkpoint's model (only that one, so that the pipeline factory never loads a classifier checkpoint
    as the contrastive model or the other way round; None = both)."""
    impl = f"{SkeletonActionRecognitionPipeline.__module__.split('.')[-1]}.{SkeletonActionRecognitionPipeline.__name__}"
    return {TASK: {"impl": impl, "pt": [auto_class] if auto_class in AUTO_CLASSES else list(AUTO_CLASSES)}}


@dataclass(frozen=True)
class _NumberedInput:
    """One input of a list, with its position (for error messages)."""

    index: int
    value: Any


class SkeletonActionRecognitionPipeline(ChunkPipeline):
    """Skeleton-based action recognition with a `SkeletonClipModel` (contrastive: open vocabulary) or a
    `SkeletonClipForActionRecognition` (classifier: its own classes).

    ```python
    >>> from transformers import pipeline
    >>> recognizer = pipeline(model="path/to/checkpoint", trust_remote_code=True)
    >>> recognizer(annotation)  # a pyskl annotation dict
    [{'label': 'jump up', 'score': 0.91}, {'label': 'squat down', 'score': 0.04}, ...]
    >>> recognizer(annotation, candidate_labels=["sit down", "stand up"], num_clips=10, flip=True)
    >>> recognizer("match.mp4", window="2s", stride="1s")  # a timeline of 2-second windows, 1 s apart
    [{'start': 0.0, 'end': 2.0, 'start_frame': 0, 'end_frame': 60, 'predictions': [...]}, ...]
    ```

    The model is put in eval mode. Its tokenizer (contrastive models) is the one the pipeline factory loads from
    the checkpoint, else the one attached to the model (`model.tokenizer`).

    The model may also be an exported graph that returns the class probabilities itself
    (`onnx_runtime.OnnxSkeletonClip`, `returns_probabilities = True`): its classes are the exported ones and it
    needs no tokenizer; the outputs (windows, views, top-k) are computed as for the torch model.
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = None  # contrastive checkpoints carry one, classifiers none

    def __init__(self, *args, **kwargs):
        self._text_embeds = {}  # class texts -> normalised embeddings, for one call
        self._pose_estimators = {}  # estimator name -> estimator, built on the first video
        self._warned_default_clip_len = False
        super().__init__(*args, **kwargs)
        architectures = getattr(self.model.config, "architectures", None) or []
        kinds = {"SkeletonClipModel", "SkeletonClipForActionRecognition"}
        saved_as = [name for name in architectures if name in kinds]
        if saved_as and type(self.model).__name__ in kinds and type(self.model).__name__ not in saved_as:
            # Loading a checkpoint as the other kind of model initialises the parts it lacks at random (a model
            # fine-tuned from the other kind and not yet saved also looks like this, hence a warning).
            auto_class = "AutoModel" if saved_as[0] == "SkeletonClipModel" else "AutoModelForVideoClassification"
            logger.warning(
                f"The model is a {type(self.model).__name__} but its config says it was saved as a {saved_as[0]} "
                f"(config.architectures): if it was loaded from that checkpoint, part of it is untrained; pass "
                f"model={auto_class}.from_pretrained(path) instead."
            )
        self.model.eval()
        if not self.is_contrastive or self.is_exported:
            self.tokenizer = None  # a classifier scores no texts; an exported graph holds its texts' embeddings
        elif self.tokenizer is None:
            self.tokenizer = getattr(self.model, "tokenizer", None)
            if self.tokenizer is None:
                raise ValueError(
                    "The contrastive model scores class texts and needs its tokenizer: pass tokenizer=... (a "
                    "checkpoint saved by save_pretrained carries one)."
                )

    def close(self) -> None:
        """Closes the pose estimators built for video inputs (a later video builds new ones)."""
        estimators, self._pose_estimators = self._pose_estimators, {}
        for estimator in estimators.values():
            estimator.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def is_contrastive(self) -> bool:
        """True for `SkeletonClipModel` (scores clips against class texts), False for the classifier."""
        if self.is_exported:
            return bool(self.model.is_contrastive)
        return callable(getattr(self.model, "score_all_classes", None))

    @property
    def is_exported(self) -> bool:
        """True for a model whose output is already the class probabilities of a fixed label set (an exported
        graph: `onnx_runtime.OnnxSkeletonClip`)."""
        return bool(getattr(self.model, "returns_probabilities", False))

    def __call__(self, inputs, **kwargs):
        """Recognises the actions of one input or of a list of inputs.

        Args:
            inputs: one of, or a list of (batched by `batch_size`):
                - a pyskl annotation dict: `keypoint` `[M, T, V, 2]` (pixels; `[T, V, 2]` for one person),
                  `keypoint_score` `[M, T, V]` (optional: 1 for joints that are not at (0, 0)), `img_shape`
                  `(height, width)`, optional `fps`; or a row of `load_pose_dataset` (`keypoint` `[M*T, V, 2]`
                  with `num_person`);
                - a keypoint array `[M, T, V, 2]` or `[T, V, 2]` (numpy or torch), with `keypoint_scores=` and
                  `img_shape=`;
                - a video file (`str` / `os.PathLike`): poses come from `extract_poses.video_annotation` (needs
                  `pip install 'skeletonclip[video]'`).
            num_clips (`int`, defaults to 1): clips sampled per input (or window), as in evaluation.
            flip (`bool`, defaults to False): also score every clip mirrored (its rendered heatmaps mirrored, as
                pyskl's test-time flip mirrors them). The test protocol is
                `num_clips=10, flip=True` (20 views), the validation protocol the defaults.
            clip_len (`int`, *optional*): frames per clip; default the model's `config.clip_len` (48 for configs
                without it).
            candidate_labels (`list[str]` or `dict[str, list[str]]`, *optional*): contrastive models only: the
                classes to choose from (open vocabulary), or a dict of them with several texts each (their embeddings
                are averaged, CLIP's prompt ensembling); default the model's `id2label` classes in order.
            class_descriptions (`dict[str, list[str]]`, *optional*): contrastive models only: several texts per
                class name, in place of the model's `config.class_descriptions` (those it was trained with, the
                default; `{}`: none); a class without an entry is scored by the text of its name.
            hypothesis_template (`str`, *optional*): contrastive models only: how a label becomes its text, e.g.
                "a person doing {}"; default the model's `config.text_template`. Applies to classes without
                descriptions only.
            top_k (`int`, defaults to 5): the number of classes returned, at most the number of classes.
            window (`int` or `str`, *optional*): score windows of this many frames (`int`) or seconds ("2s",
                "1.5s"; needs the input's `fps` or `fps=`) instead of the whole input, and return a timeline.
            stride (`int` or `str`, *optional*): frames or seconds between window starts; default `window`.
            fps (`float`, *optional*): frame rate of inputs that do not carry one (keypoint arrays, annotations
                without `fps`); a video's own frame rate comes with its poses.
            keypoint_scores / img_shape: the scores `[M, T, V]` and the frame size `(height, width)` of a keypoint
                array (`img_shape` also fills in annotations that lack it).
            pose_estimator (`str` or `PoseEstimator`, defaults to "mediapipe"), target_fps (`float`, *optional*),
                max_persons (`int`, defaults to 2): how poses are read from videos (`video_annotation`).

        Returns:
            Without `window`: `[{"label": str, "score": float}, ...]`, best first (`top_k` entries; scores are the
            view-averaged class probabilities). With `window`: the timeline `[{"start": float | None, "end": float |
            None, "start_frame": int, "end_frame": int, "predictions": [{"label", "score"}, ...]}, ...]`, one entry
            per window in time order (frames `[start_frame, end_frame)`, times in seconds when the frame rate is
            known); the windows cover the whole input, the last one ends with it, and an input shorter than the
            window is one window. A list input gives a list of these.
        """
        self._text_embeds = {}  # texts are encoded once per call: the model may change between calls
        if isinstance(inputs, list):
            if kwargs.get("keypoint_scores") is not None:
                raise ValueError(
                    "keypoint_scores= goes with a single keypoint array; for a list, pass dicts with 'keypoint' and "
                    "'keypoint_score'."
                )
            if not inputs:
                return []
            inputs = [_NumberedInput(i, value) for i, value in enumerate(inputs)]
        return super().__call__(inputs, **kwargs)

    # -- parameters -----------------------------------------------------------------------------------------------

    def _sanitize_parameters(
        self,
        candidate_labels=None,
        hypothesis_template=None,
        class_descriptions=None,
        top_k=None,
        num_clips=None,
        flip=None,
        clip_len=None,
        window=None,
        stride=None,
        fps=None,
        keypoint_scores=None,
        img_shape=None,
        pose_estimator=None,
        target_fps=None,
        max_persons=None,
    ):
        preprocess, forward, postprocess = {}, {}, {}
        for name, value in (("candidate_labels", candidate_labels), ("hypothesis_template", hypothesis_template),
                            ("class_descriptions", class_descriptions)):
            if value is not None and not self.is_contrastive:
                raise ValueError(
                    f"{name} needs a contrastive SkeletonClipModel (it scores class texts); the classifier "
                    f"{type(self.model).__name__} scores its own classes: {reprlib.repr(self._model_classes())}."
                )
        if class_descriptions is not None:
            problem = class_descriptions_problem(class_descriptions)
            if problem is not None:
                raise ValueError(f"class_descriptions {problem}")
            forward["class_descriptions"] = class_descriptions
        if isinstance(candidate_labels, dict):  # labels with their descriptions
            problem = class_descriptions_problem(candidate_labels)
            if problem is not None:
                raise ValueError(f"candidate_labels (a dict of descriptions): {problem}")
            forward["class_descriptions"] = {**forward.get("class_descriptions", {}), **candidate_labels}
            candidate_labels = list(candidate_labels)
        if candidate_labels is not None:
            forward["candidate_labels"] = postprocess["candidate_labels"] = _check_labels(candidate_labels)
        if self.is_exported and "class_descriptions" in forward:
            raise ValueError("An exported model scores the class texts it was exported with: descriptions cannot "
                             "change them (export again from a model whose config has them).")
        if hypothesis_template is not None:
            if not isinstance(hypothesis_template, str) or "{}" not in hypothesis_template:
                raise ValueError(f"hypothesis_template must be a string with '{{}}' where the label goes, got "
                                 f"{reprlib.repr(hypothesis_template)}.")
            forward["hypothesis_template"] = hypothesis_template
        if self.is_exported and (candidate_labels is not None or hypothesis_template is not None):
            self.model.class_order(candidate_labels, hypothesis_template)  # the exported classes only, else an error
        for name, value, params in (("top_k", top_k, postprocess), ("num_clips", num_clips, preprocess),
                                    ("clip_len", clip_len, preprocess), ("max_persons", max_persons, preprocess)):
            if value is not None:
                params[name] = _positive_int(name, value)
        if flip is not None:
            if not isinstance(flip, (bool, np.bool_)):
                raise ValueError(f"flip must be True or False, got {reprlib.repr(flip)}.")
            preprocess["flip"] = bool(flip)
        if window is not None:
            preprocess["window"] = frames_or_seconds("window", window)
        if stride is not None:
            preprocess["stride"] = frames_or_seconds("stride", stride)
        for name, value in (("fps", fps), ("target_fps", target_fps)):
            if value is not None:
                preprocess[name] = _positive_number(name, value, "")
        for name, value in (("keypoint_scores", keypoint_scores), ("img_shape", img_shape),
                            ("pose_estimator", pose_estimator)):
            if value is not None:
                preprocess[name] = value
        return preprocess, forward, postprocess

    def _model_classes(self) -> list[str]:
        if self.is_exported:
            return list(self.model.class_names)
        id2label = self.model.config.id2label or {}
        return [id2label[i] for i in range(len(id2label))]

    def _class_names(self, candidate_labels=None) -> list[str]:
        names = candidate_labels if candidate_labels is not None else self._model_classes()
        if not names:
            raise ValueError("The model's config has no classes (id2label): pass candidate_labels=[...].")
        return list(names)

    def _clip_len(self, clip_len):
        if clip_len is not None:
            return clip_len
        configured = getattr(self.model.config, "clip_len", None)
        if configured is not None:
            return int(configured)
        if not self._warned_default_clip_len:
            logger.warning(
                f"The model's config does not say how many frames per clip it was trained on (clip_len; saved "
                f"before the field existed): sampling {DEFAULT_CLIP_LEN}. Pass clip_len= if it was trained on another "
                "length."
            )
            self._warned_default_clip_len = True
        return DEFAULT_CLIP_LEN

    # -- preprocess -----------------------------------------------------------------------------------------------

    def preprocess(
        self,
        inputs,
        num_clips=1,
        flip=False,
        clip_len=None,
        window=None,
        stride=None,
        fps=None,
        keypoint_scores=None,
        img_shape=None,
        pose_estimator="mediapipe",
        target_fps=None,
        max_persons=2,
    ):
        """Yields one model input per window: `keypoints` `[1, views, M, clip_len, V, 2]`, `keypoint_scores`
        `[1, views, M, clip_len, V]`, `mirrored` `[1, views]` (the flipped views, mirrored after rendering), the
        window's frames and the input's frame rate."""
        index, value = (inputs.index, inputs.value) if isinstance(inputs, _NumberedInput) else (None, inputs)
        where = "Input" if index is None else f"Input {index}"
        if isinstance(value, (str, os.PathLike)):
            value = self._video_annotation(value, where, pose_estimator, target_fps, max_persons)
        keypoints, scores, frame_shape, input_fps = self._pose_arrays(value, where, keypoint_scores, img_shape)
        fps = input_fps if input_fps is not None else fps
        persons, total_frames, joints, _ = keypoints.shape

        timeline = window is not None
        if timeline:
            window_frames = _to_frames(window, fps, "window", where)
            stride_frames = _to_frames(stride, fps, "stride", where) if stride is not None else window_frames
            if stride_frames > window_frames:
                raise ValueError(f"stride ({stride_frames} frames) must not exceed window ({window_frames} frames): "
                                 "the windows would leave frames out.")
            windows = _windows(total_frames, window_frames, stride_frames)
        elif stride is not None:
            raise ValueError("stride= needs window= (the length of each scored window).")
        else:
            windows = [(0, total_frames)]

        heatmap_config = self.model.config.heatmap_config
        transform = PoseClipTransform(
            "test",
            clip_len=self._clip_len(clip_len),
            num_clips=num_clips,
            flip_double=flip,
            eval_size=tuple(heatmap_config.eval_size),
            layout=heatmap_config.layout,
        )
        for k, (start, end) in enumerate(windows):
            frames = end - start
            clip = transform(
                {
                    "keypoint": keypoints[:, start:end].reshape(persons * frames, joints, 2),
                    "keypoint_score": scores[:, start:end].reshape(persons * frames, joints),
                    "num_person": persons,
                    "total_frames": frames,
                    "img_shape": frame_shape,
                    "label": 0,
                }
            )
            views = clip["keypoints"].shape[0]
            mirrored = clip["mirrored"] if flip else np.zeros(views, dtype=bool)
            yield {
                "keypoints": torch.from_numpy(clip["keypoints"])[None],  # [1, views, M, L, V, 2]
                "keypoint_scores": torch.from_numpy(clip["keypoint_scores"])[None],  # [1, views, M, L, V]
                "mirrored": torch.from_numpy(mirrored)[None],  # [1, views]
                "start_frame": start,
                "end_frame": end,
                "fps": fps,
                "timeline": timeline,
                "is_last": k == len(windows) - 1,
            }

    def _pose_arrays(self, value, where, keypoint_scores=None, img_shape=None):
        """`(keypoint [M, T, V, 2] float32, keypoint_score [M, T, V] float32, (h, w), fps or None)` of one input,
        checked. Non-finite joints become missing (coordinates and score 0); scores outside [0, 1] are clipped."""
        if isinstance(value, Mapping):
            if "keypoint" not in value:
                raise PoseDataError(f"{where}: the annotation has no field 'keypoint' [M, T, V, 2]; it has "
                                    f"{reprlib.repr(sorted(map(str, value)))}.")
            keypoint, score, score_field = value["keypoint"], value.get("keypoint_score"), "keypoint_score"
            if score is None:
                score = keypoint_scores
            frame_shape = value.get("img_shape", img_shape)
            fps = value.get("fps")
        elif isinstance(value, (np.ndarray, torch.Tensor)):
            keypoint, score, score_field, frame_shape, fps = value, keypoint_scores, "keypoint_scores", img_shape, None
        else:
            raise PoseDataError(
                f"{where}: expected a pose annotation dict, a keypoint array [M, T, V, 2] or a video path, got "
                f"{type(value).__name__}."
            )
        num_joints = self.model.config.heatmap_config.num_joints
        keypoint = _real_array(keypoint, "keypoint", where)
        if keypoint.ndim == 3 and isinstance(value, Mapping) and value.get("num_person") is not None:
            # A row of `load_pose_dataset`: keypoint [M*T, V, 2] person-major, keypoint_score [M*T, V].
            persons = value["num_person"]
            if isinstance(persons, np.ndarray) and persons.size == 1:
                persons = persons.reshape(()).item()
            if (isinstance(persons, (bool, np.bool_)) or not isinstance(persons, numbers.Integral) or persons < 1
                    or keypoint.shape[0] % persons):
                raise PoseDataError(f"{where}: field 'num_person' must be a positive int dividing the "
                                    f"{keypoint.shape[0]} rows of 'keypoint', got {reprlib.repr(value['num_person'])}.")
            keypoint = keypoint.reshape(int(persons), -1, *keypoint.shape[1:])
            if score is not None:
                score = _real_array(score, score_field, where)
                if score.ndim == 2:
                    score = score.reshape(int(persons), -1, *score.shape[1:])
        elif keypoint.ndim == 3:
            keypoint = keypoint[None]  # one person
        if keypoint.ndim != 4 or keypoint.shape[-1] != 2 or keypoint.shape[2] != num_joints:
            raise PoseDataError(
                f"{where}: field 'keypoint' must be [M, T, {num_joints}, 2] or [T, {num_joints}, 2] (x, y in pixels of "
                f"the model's {num_joints}-joint layout), got shape {tuple(keypoint.shape)}."
            )
        persons, frames, joints, _ = keypoint.shape
        if persons == 0 or frames == 0:
            raise PoseDataError(f"{where}: field 'keypoint' holds no {'person' if persons == 0 else 'frame'} "
                                f"(shape {tuple(keypoint.shape)}).")
        finite = np.isfinite(keypoint).all(axis=-1)  # [M, T, V]
        largest = float(np.max(np.abs(keypoint), where=np.isfinite(keypoint), initial=0.0))
        if largest > MAX_ABS_COORDINATE:
            raise PoseDataError(f"{where}: field 'keypoint' holds a coordinate of magnitude {largest:.4g}; coordinates "
                                f"are pixels within +-{MAX_ABS_COORDINATE:.0e}.")
        if score is None:
            score = np.any(keypoint != 0, axis=-1).astype(np.float32)  # joints at (0, 0) are missing
        else:
            score = _real_array(score, score_field, where)
            if score.shape == (frames, joints) and persons == 1:
                score = score[None]
            if score.shape != (persons, frames, joints):
                raise PoseDataError(f"{where}: field '{score_field}' must be [M, T, V] = {(persons, frames, joints)} "
                                    f"like 'keypoint', got shape {tuple(score.shape)}.")
            score = np.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0)
            if score.size and (score.min() < 0 or score.max() > 1):
                logger.warning(f"{where}: field '{score_field}' holds values from {score.min():.4g} to "
                               f"{score.max():.4g}; clipped to [0, 1].")
                score = np.clip(score, 0.0, 1.0)
        if not finite.all():
            keypoint, score = keypoint.copy(), score.copy()
            keypoint[~finite] = 0.0
            score[~finite] = 0.0
        if frame_shape is None:
            raise PoseDataError(f"{where}: field 'img_shape' is missing: the (height, width) of the frame the "
                                "coordinates are in (pass img_shape= with a keypoint array).")
        frame_shape = _frame_shape(frame_shape, where)
        if fps is not None:
            fps = _positive_number("fps", fps, f"{where}: field ", PoseDataError)
        return np.ascontiguousarray(keypoint), np.ascontiguousarray(score, dtype=np.float32), frame_shape, fps

    def _video_annotation(self, path, where, pose_estimator, target_fps, max_persons) -> dict:
        """The pyskl annotation of a video file (its poses from `pose_estimator`)."""
        try:  # the video extra: absolute imports, so that checkpoints do not carry the video stack
            from modeling_skeletonclip.extract_poses import video_annotation
            from modeling_skeletonclip.pose_estimators import build_pose_estimator
            from modeling_skeletonclip.video_io import VIDEO_EXTENSIONS
        except ImportError as err:
            raise ImportError(
                f"{where}: {os.fspath(path)!r} is read as a video, which needs the video extra: pip install "
                f"'skeletonclip[video]' ({err})."
            ) from None
        if not os.fspath(path).lower().endswith(tuple(VIDEO_EXTENSIONS)):
            raise ValueError(f"{where}: {os.fspath(path)!r} is not a video file ({', '.join(VIDEO_EXTENSIONS)}); "
                             "poses go in as annotation dicts or keypoint arrays.")
        if isinstance(pose_estimator, str):
            if pose_estimator not in self._pose_estimators:
                self._pose_estimators[pose_estimator] = build_pose_estimator(pose_estimator)
            pose_estimator = self._pose_estimators[pose_estimator]
        return video_annotation(path, pose_estimator, target_fps=target_fps, max_persons=max_persons)

    # -- forward --------------------------------------------------------------------------------------------------

    def _forward(self, model_inputs, candidate_labels=None, hypothesis_template=None, class_descriptions=None):
        keypoints = model_inputs.pop("keypoints")  # [B, views, M, L, V, 2]
        keypoint_scores = model_inputs.pop("keypoint_scores")
        mirrored = model_inputs.pop("mirrored")  # [B, views]
        batch_size = keypoints.shape[0]
        if self.is_exported:
            probs = self.model(keypoints, keypoint_scores, mirrored=mirrored, candidate_labels=candidate_labels,
                               hypothesis_template=hypothesis_template)  # [B * views, L]
            probs = torch.from_numpy(probs).view(batch_size, -1, probs.shape[-1]).mean(dim=1)  # [B, L]
            return {"probs": probs, **model_inputs}
        if self.is_contrastive:
            texts = self.model.config.class_text_lists(
                self._class_names(candidate_labels), hypothesis_template, class_descriptions
            )
            # Every objective's evaluation form (PACL weights frames by each class text).
            logits = self.model.score_all_classes(keypoints=keypoints, keypoint_scores=keypoint_scores,
                                                  mirrored=mirrored, class_text_embeds=self._class_text_embeds(texts))
        else:
            logits = self.model(keypoints=keypoints, keypoint_scores=keypoint_scores,
                                mirrored=mirrored).logits  # [B * views, L]
        probs = logits.float().softmax(dim=-1).view(batch_size, -1, logits.shape[-1]).mean(dim=1)  # [B, L]
        return {"probs": probs, **model_inputs}

    def _class_text_embeds(self, texts: list[str] | list[list[str]]) -> torch.Tensor:
        """Normalised class embeddings `[L, D]` of each class's text (or texts, averaged), as
        `SkeletonClipTrainer.encode_class_texts` computes them (`SkeletonClipModel.encode_class_texts`), once per
        call."""
        key = tuple(class_texts if isinstance(class_texts, str) else tuple(class_texts) for class_texts in texts)
        if key not in self._text_embeds:
            self._text_embeds[key] = self.model.encode_class_texts(texts, self.tokenizer)
        return self._text_embeds[key]

    # -- postprocess ----------------------------------------------------------------------------------------------

    def postprocess(self, model_outputs, top_k=5, candidate_labels=None):
        names = self._class_names(candidate_labels)
        top_k = min(top_k, len(names))
        timeline = []
        for output in model_outputs:
            probs = output["probs"][0].tolist()
            order = sorted(range(len(names)), key=lambda j: -probs[j])[:top_k]  # stable: ties keep class order
            fps = output["fps"]
            timeline.append(
                {
                    "start": output["start_frame"] / fps if fps else None,
                    "end": output["end_frame"] / fps if fps else None,
                    "start_frame": int(output["start_frame"]),
                    "end_frame": int(output["end_frame"]),
                    "predictions": [{"label": names[j], "score": probs[j]} for j in order],
                }
            )
        return timeline if model_outputs[0]["timeline"] else timeline[0]["predictions"]

    # -- batching -------------------------------------------------------------------------------------------------

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        """ChunkPipeline's iterator with a collator of its own: clips are padded to the batch's person count with
        missing persons (NaN coordinates, score 0), which render nothing, as `PoseCollator` pads them."""
        if "TOKENIZERS_PARALLELISM" not in os.environ:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        if num_workers > 1:
            logger.warning("The skeleton-action-recognition pipeline reads its inputs in one worker at most.")
            num_workers = 1
        dataset = PipelineChunkIterator(inputs, self.preprocess, preprocess_params)
        collate_fn = no_collate_fn if batch_size == 1 else _collate_windows
        dataloader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate_fn)
        model_iterator = PipelinePackIterator(dataloader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)


def _collate_windows(items: list[dict]) -> dict:
    """Stacks preprocessed windows: tensors along the batch axis (persons padded as missing), the rest as lists."""
    persons = max(item["keypoints"].shape[2] for item in items)
    keypoints, scores = [], []
    for item in items:
        kp, sc = item["keypoints"], item["keypoint_scores"]  # [1, views, M, L, V, 2], [1, views, M, L, V]
        if kp.shape[2] < persons:
            padded_kp = kp.new_full((*kp.shape[:2], persons, *kp.shape[3:]), float("nan"))
            padded_sc = sc.new_zeros((*sc.shape[:2], persons, *sc.shape[3:]))
            padded_kp[:, :, : kp.shape[2]], padded_sc[:, :, : sc.shape[2]] = kp, sc
            kp, sc = padded_kp, padded_sc
        keypoints.append(kp)
        scores.append(sc)
    batch = {"keypoints": torch.cat(keypoints), "keypoint_scores": torch.cat(scores),
             "mirrored": torch.cat([item["mirrored"] for item in items])}
    for key in items[0]:
        if key not in batch:
            batch[key] = [item[key] for item in items]
    return batch


def _windows(total_frames: int, window: int, stride: int) -> list[tuple[int, int]]:
    """`[start, end)` frame ranges `stride` apart covering `total_frames`, the last one ending with the input."""
    if total_frames <= window:
        return [(0, total_frames)]
    starts = list(range(0, total_frames - window, stride)) + [total_frames - window]
    return [(start, start + window) for start in starts]


def _to_frames(length, fps, name, where) -> int:
    """A window length or stride (`("frames", n)` or `("seconds", s)`) in frames."""
    unit, amount = length
    if unit == "frames":
        return amount
    if fps is None:
        raise ValueError(f"{where}: {name}={amount:g}s needs the frame rate: the input has no 'fps'; pass fps=... or "
                         f"give {name} in frames (an int).")
    return max(1, int(round(amount * fps)))


def frames_or_seconds(name, value) -> tuple[str, int | float]:
    """A window length or stride as given: `("frames", n)` for an int, `("seconds", s)` for a string like '2s'."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return "frames", _positive_int(name, value)
    match = _SECONDS.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{name} must be a number of frames (a positive int) or of seconds (a string like '2s' or "
                         f"'1.5s'), got {reprlib.repr(value)}.")
    return "seconds", float(match.group(1))


def _positive_int(name, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {reprlib.repr(value)}.")
    return int(value)


def _positive_number(name, value, prefix, error=ValueError) -> float:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise error(f"{prefix}{name if not prefix else repr(name)} must be a positive number, got "
                    f"{reprlib.repr(value)}.")
    return float(value)


def _check_labels(candidate_labels) -> list[str]:
    labels = list(candidate_labels) if isinstance(candidate_labels, (list, tuple)) else None
    if not labels or not all(isinstance(label, str) and label.strip() for label in labels):
        raise ValueError(f"candidate_labels must be a non-empty list of class names (strings), got "
                         f"{reprlib.repr(candidate_labels)}.")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"candidate_labels repeats {reprlib.repr(repeated)}; each class once.")
    return labels


def _real_array(value, field, where) -> np.ndarray:
    """A float32 array of real numbers; bool, complex, object and string data are refused by field name."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.float().numpy() if value.dtype in (torch.float16, torch.bfloat16) else value.numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise PoseDataError(f"{where}: field '{field}' is not a rectangular array of numbers ({err}).") from None
    if array.dtype.kind not in "fiu":
        raise PoseDataError(f"{where}: field '{field}' must hold real numbers, got dtype {array.dtype}.")
    return array.astype(np.float32, copy=False)


def _frame_shape(value, where) -> tuple[float, float]:
    items = value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else value
    if isinstance(items, (list, tuple)) and len(items) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and 0 < v < math.inf for v in items
    ):
        return float(items[0]), float(items[1])
    raise PoseDataError(f"{where}: field 'img_shape' must be (height, width) > 0, got {reprlib.repr(value)}.")


__all__ = ["SkeletonActionRecognitionPipeline", "custom_pipelines_entry"]
