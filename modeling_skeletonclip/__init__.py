"""SkeletonCLIP: skeleton-based action recognition with language supervision, HuggingFace-native."""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_skeletonclip import SkeletonClipConfig, SkeletonClipHeatmapConfig, SkeletonClipVideoConfig
from .heatmaps import render_heatmaps
from .modeling_skeletonclip import (
    SkeletonClipActionRecognitionOutput,
    SkeletonClipForActionRecognition,
    SkeletonClipModel,
    SkeletonClipOutput,
    SkeletonClipPreTrainedModel,
)
from .pipeline_skeletonclip import SkeletonActionRecognitionPipeline
from .pose_dataset import PoseDataError, UnsafePickleError, load_pose_dataset, safe_load_pickle
from .pose_layouts import COCO17, JointLayout
from .pose_transforms import PoseClipTransform, PoseCollator
from .text_encoders import load_pretrained_text_encoder


__version__ = "0.1.0"

# In-process Auto classes; `register_for_auto_class` makes saved checkpoints carry `auto_map` and their code.
AutoConfig.register(SkeletonClipConfig.model_type, SkeletonClipConfig, exist_ok=True)
AutoModel.register(SkeletonClipConfig, SkeletonClipModel, exist_ok=True)
AutoModelForVideoClassification.register(SkeletonClipConfig, SkeletonClipForActionRecognition, exist_ok=True)
SkeletonClipConfig.register_for_auto_class()
SkeletonClipModel.register_for_auto_class("AutoModel")
SkeletonClipForActionRecognition.register_for_auto_class("AutoModelForVideoClassification")
# `pipeline("skeleton-action-recognition", model=...)` in process; saved checkpoints name it in `custom_pipelines`.
PIPELINE_REGISTRY.register_pipeline(
    "skeleton-action-recognition",
    pipeline_class=SkeletonActionRecognitionPipeline,
    pt_model=(AutoModel, AutoModelForVideoClassification),
)


def __getattr__(name):
    # The trainer pulls in accelerate and the Trainer machinery: import it only when asked for.
    if name in ("SkeletonClipTrainer", "SkeletonClipTrainingArguments"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COCO17",
    "JointLayout",
    "PoseClipTransform",
    "PoseCollator",
    "PoseDataError",
    "SkeletonActionRecognitionPipeline",
    "SkeletonClipActionRecognitionOutput",
    "SkeletonClipConfig",
    "SkeletonClipForActionRecognition",
    "SkeletonClipHeatmapConfig",
    "SkeletonClipModel",
    "SkeletonClipOutput",
    "SkeletonClipPreTrainedModel",
    "SkeletonClipTrainer",
    "SkeletonClipTrainingArguments",
    "SkeletonClipVideoConfig",
    "UnsafePickleError",
    "load_pose_dataset",
    "load_pretrained_text_encoder",
    "render_heatmaps",
    "safe_load_pickle",
]
