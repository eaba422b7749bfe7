"""Runs a folder written by `onnx_export.export_onnx` with onnxruntime (CPU): keypoints in, class probabilities out.

    from transformers import pipeline
    from modeling_skeletonclip.onnx_runtime import OnnxSkeletonClip

    model = OnnxSkeletonClip("runs/synthetic_demo_onnx")
    probabilities = model(keypoints, keypoint_scores)  # [N, M, T, V, 2], [N, M, T, V] -> [N, L]
    probabilities = model(keypoints, keypoint_scores, mirrored=mirrored)  # with flip-doubled views ([N] bool)
    recognizer = pipeline("skeleton-action-recognition", model=model)  # the same outputs as the torch model's

Needs `pip install 'skeletonclip[onnx]'`; neither torch's model code nor a tokenizer runs at inference.
"""

import json
import os
import reprlib

import numpy as np
import torch

from .configuration_skeletonclip import SkeletonClipConfig
from .onnx_export import INPUT_NAMES, METADATA_FILE, ONNX_FILE


class OnnxSkeletonClip:
    """An exported SkeletonCLIP graph in an onnxruntime session, usable as the pipeline's model.

    Attributes the pipeline reads: `config` (the exported model's config), `device` (CPU), `class_names` (the
    exported label set, in output order), `is_contrastive`, `hypothesis_template`, and `returns_probabilities`
    (the graph ends in the softmax, so the pipeline averages its output over views without a softmax of its own).
    """

    returns_probabilities = True
    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, folder: str, session_options=None, intra_op_num_threads: int | None = None):
        try:
            import onnxruntime
        except ImportError as err:
            raise ImportError(f"OnnxSkeletonClip needs onnxruntime: pip install 'skeletonclip[onnx]' ({err}).") from None
        folder = os.fspath(folder)
        for name in (ONNX_FILE, METADATA_FILE, "config.json"):
            if not os.path.isfile(os.path.join(folder, name)):
                raise FileNotFoundError(f"{folder}: no {name}; an exported folder holds {ONNX_FILE}, {METADATA_FILE} "
                                        "and config.json (written by `skeletonclip export`).")
        self.folder = folder
        with open(os.path.join(folder, METADATA_FILE)) as f:
            self.metadata = json.load(f)
        self.config = SkeletonClipConfig.from_pretrained(folder)
        self.class_names = list(self.metadata["class_names"])
        self.is_contrastive = self.metadata["objective"] != "classifier"
        self.hypothesis_template = self.metadata.get("hypothesis_template")
        self.clip_len = int(self.metadata["clip_len"])
        self.num_joints = int(self.metadata["num_joints"])
        if session_options is None:
            session_options = onnxruntime.SessionOptions()
            session_options.intra_op_num_threads = intra_op_num_threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(
            os.path.join(folder, ONNX_FILE), sess_options=session_options, providers=["CPUExecutionProvider"]
        )
        # Graphs that take no `mirrored` input render every view unmirrored: they score unflipped views only.
        self.takes_mirrored = "mirrored" in {graph_input.name for graph_input in self.session.get_inputs()}

    def eval(self):
        """The graph has no training mode (the pipeline calls this)."""
        return self

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise ValueError(f"OnnxSkeletonClip runs on the CPU, not on {device}.")
        return self

    def class_order(self, candidate_labels=None, hypothesis_template=None) -> list[int]:
        """Output columns of `candidate_labels` (the exported classes, in any order; default all, as exported).
        Labels or a template other than the exported ones are an error naming the exported set: their texts
        were encoded at export time."""
        if hypothesis_template is not None and hypothesis_template != self.hypothesis_template:
            what = "classifier scores no texts" if not self.is_contrastive else (
                f"class texts were encoded at export time with {self.hypothesis_template!r}")
            raise ValueError(f"hypothesis_template={hypothesis_template!r}: the exported model in {self.folder} "
                             f"cannot change it (its {what}); export again with --hypothesis_template.")
        if candidate_labels is None:
            return list(range(len(self.class_names)))
        labels = list(candidate_labels)
        if sorted(labels) != sorted(self.class_names):
            raise ValueError(f"candidate_labels {reprlib.repr(labels)} are not the exported classes of {self.folder}: "
                             f"{self.class_names!r} (in any order); export again with --candidate_labels for "
                             "other classes.")
        return [self.class_names.index(label) for label in labels]

    def __call__(self, keypoints, keypoint_scores, candidate_labels=None, hypothesis_template=None,
                 mirrored=None) -> np.ndarray:
        """Class probabilities `[N, L]` float32 of `keypoints [N, M, T, V, 2]` and `keypoint_scores [N, M, T, V]`
        (numpy or torch; `[B, views, ...]` are folded into N = B * views, as the torch model folds them), in the
        order of `candidate_labels` (default the exported order). `mirrored` (bool `[N]` or `[B, views]`, default
        none): the views whose rendered heatmaps are mirrored, as for the torch model."""
        order = self.class_order(candidate_labels, hypothesis_template)
        keypoints = _as_float32(keypoints, "keypoints")
        keypoint_scores = _as_float32(keypoint_scores, "keypoint_scores")
        if mirrored is None:
            mirrored = np.zeros(keypoints.shape[:-4], dtype=bool)
        mirrored = mirrored.detach().cpu().numpy() if isinstance(mirrored, torch.Tensor) else np.asarray(mirrored)
        if mirrored.dtype != np.bool_ or mirrored.shape != keypoints.shape[:-4]:
            raise ValueError(f"`mirrored` must be bool {list(keypoints.shape[:-4])} (one flag per view of `keypoints` "
                             f"{list(keypoints.shape)}), got dtype {mirrored.dtype} and shape {list(mirrored.shape)}.")
        if keypoints.ndim == 6:
            keypoints = keypoints.reshape(-1, *keypoints.shape[2:])
            keypoint_scores = keypoint_scores.reshape(-1, *keypoint_scores.shape[2:])
            mirrored = mirrored.reshape(-1)
        expected = f"[N, M, {self.clip_len}, {self.num_joints}, 2]"
        if keypoints.ndim != 5 or keypoints.shape[2:] != (self.clip_len, self.num_joints, 2):
            raise ValueError(f"`keypoints` must have shape {expected} (the exported clip_len and joints; "
                             f"[B, views, ...] also), got {list(keypoints.shape)}.")
        if keypoint_scores.shape != keypoints.shape[:-1]:
            raise ValueError(f"`keypoint_scores` must have shape {list(keypoints.shape[:-1])} (keypoints without the "
                             f"last axis), got {list(keypoint_scores.shape)}.")
        if keypoints.shape[0] == 0 or keypoints.shape[1] == 0:
            raise ValueError(f"`keypoints` holds no clips or no persons (shape {list(keypoints.shape)}).")
        inputs = dict(zip(INPUT_NAMES, (keypoints, keypoint_scores, np.ascontiguousarray(mirrored))))
        if not self.takes_mirrored:
            if mirrored.any():
                raise ValueError(f"The graph in {self.folder} takes no `mirrored` input (it renders every view "
                                 "unmirrored); export the model again to score flip-doubled views.")
            del inputs["mirrored"]
        (probabilities,) = self.session.run(None, inputs)  # [N, L]
        return probabilities[:, order]


def _as_float32(value, name) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy array or a torch.Tensor, got {type(value).__name__}.")
    return np.ascontiguousarray(value, dtype=np.float32)


__all__ = ["OnnxSkeletonClip"]
