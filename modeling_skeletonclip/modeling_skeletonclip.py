"""PyTorch SkeletonCLIP: a PoseC3D SlowOnly heatmap encoder and a BERT text encoder trained contrastively."""

import difflib
import inspect
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput, logging
from transformers.utils.generic import can_return_tuple

from .configuration_skeletonclip import SkeletonClipConfig, SkeletonClipVideoConfig
from .fast_slowonly import SkeletonClipBatchNorm3d, compute_dtype, fast_path_applies, fast_video_encoder_forward
from .heatmaps import render_heatmaps
from .objectives import (
    OBJECTIVES,
    ObjectiveInputs,
    check_text_groups,
    ensemble_text_embeds,
    flatten_class_texts,
    label_aware_contrastive_loss,
)


logger = logging.get_logger(__name__)

# What transformers' Trainer adds to a forward's inputs when it scales the loss by token counts
# (`model_accepts_loss_kwargs`); the losses here are means over the batch (`accepts_loss_kwargs = False`), so it is
# accepted and ignored.
TRAINER_LOSS_KWARGS = ("num_items_in_batch",)


def reject_unknown_arguments(method, kwargs: dict, ignored: tuple[str, ...] = ()):
    """Raises a TypeError naming the first keyword argument that `method` does not take (with the closest name it
    does take), so that a misspelt input (`keypoint_score=`) is an error, not silently dropped."""
    unknown = [name for name in kwargs if name not in ignored]
    if not unknown:
        return
    parameters = inspect.signature(method).parameters.values()
    known = [p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    close = difflib.get_close_matches(unknown[0], known, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else f" It takes: {', '.join(known)}."
    raise TypeError(f"{method.__qualname__}() got an unexpected keyword argument `{unknown[0]}`.{hint}")


@dataclass
class SkeletonClipOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `return_loss` is True and labels are given):
        Label-aware symmetric contrastive loss (SPEC §4).
    logits_per_video (`torch.FloatTensor` of shape `[B * views, N_text]`):
        Scaled cosine similarities of every clip view to every text.
    logits_per_text (`torch.FloatTensor` of shape `[N_text, B * views]`):
        The transpose of `logits_per_video`.
    video_embeds (`torch.FloatTensor` of shape `[B * views, projection_dim]`): normalised clip embeddings.
    text_embeds (`torch.FloatTensor` of shape `[N_text, projection_dim]`): normalised text embeddings (with
        `text_groups`, one ensemble per group).
    video_model_output (`BaseModelOutputWithPooling`): frame features `[B * views, T', frame_embed_dim]`.
    text_model_output (`BaseModelOutputWithPooling`): the text encoder's output (of every text given).
    loss_itc (`torch.FloatTensor` of shape `()`, *optional*): the contrastive part of `loss` (with momentum
        distillation for "itc_momentum"; the PACL loss for "pacl").
    loss_itm (`torch.FloatTensor` of shape `()`, *optional*): the matching part of `loss` ("itc_itm").
    itm_logits (`torch.FloatTensor` of shape `[K, 2]`, *optional*): matching scores of the positive and negative
        pairs of an "itc_itm" training step (positives first).
    frame_weights (`torch.FloatTensor` of shape `[B * views, N_text, T']`, *optional*): PACL's weight of every frame
        of every clip for every text (with `output_frame_weights=True`).
    """

    loss: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    video_model_output: BaseModelOutputWithPooling | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    loss_itc: torch.FloatTensor | None = None
    loss_itm: torch.FloatTensor | None = None
    itm_logits: torch.FloatTensor | None = None
    frame_weights: torch.FloatTensor | None = None

    def to_tuple(self):
        return tuple(
            self[k] if k not in ("video_model_output", "text_model_output") else getattr(self, k).to_tuple()
            for k in self.keys()
        )


@dataclass
class SkeletonClipActionRecognitionOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*): by `config.problem_type`: cross-entropy over classes
        ("single_label_classification"), binary cross-entropy per class ("multi_label_classification") or the mean
        squared error ("regression").
    logits (`torch.FloatTensor` of shape `[B * views, num_labels]`): class scores of every view.
    pooled_features (`torch.FloatTensor` of shape `[B * views, 512]`): globally pooled encoder features.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, with `output_hidden_states=True`): the encoder's stem
        (after the max-pool) and stage outputs, `[B * views, C_i, T_i, H_i, W_i]` each.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------
# Video encoder: ResNet3dSlowOnly as in PoseC3D. Module names follow pyskl so checkpoints map by prefix alone.
# ----------------------------------------------------------------------------------------------------------------


class SkeletonClipConvModule(nn.Module):
    """Conv3d (no bias) + BatchNorm3d + optional ReLU; named `conv`/`bn` like pyskl's ConvModule."""

    def __init__(self, config, in_channels, out_channels, kernel_size, stride=(1, 1, 1), padding=(0, 0, 0), act=True):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = SkeletonClipBatchNorm3d(out_channels, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(hidden_states)))


class SkeletonClipBottleneck(GradientCheckpointingLayer):
    """Bottleneck3d: conv1 (1x1x1, or 3x1x1 when inflated) -> conv2 1x3x3 with the stride -> conv3 1x1x1, + residual."""

    expansion = 4

    def __init__(self, config: SkeletonClipVideoConfig, in_channels, planes, spatial_stride=1, temporal_stride=1,
                 inflate=False):
        super().__init__()
        out_channels = planes * config.expansion
        conv1_kernel, conv1_padding = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        stride = (temporal_stride, spatial_stride, spatial_stride)
        self.conv1 = SkeletonClipConvModule(config, in_channels, planes, conv1_kernel, padding=conv1_padding)
        self.conv2 = SkeletonClipConvModule(config, planes, planes, (1, 3, 3), stride=stride, padding=(0, 1, 1))
        self.conv3 = SkeletonClipConvModule(config, planes, out_channels, (1, 1, 1), act=False)
        self.conv3.bn.zero_init = config.zero_init_residual
        self.downsample = None
        if stride != (1, 1, 1) or in_channels != out_channels:
            self.downsample = SkeletonClipConvModule(config, in_channels, out_channels, (1, 1, 1), stride=stride,
                                                     act=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        identity = hidden_states if self.downsample is None else self.downsample(hidden_states)
        hidden_states = self.conv3(self.conv2(self.conv1(hidden_states)))
        return self.relu(hidden_states + identity)


class SkeletonClipVideoEncoder(nn.Module):
    """ResNet3dSlowOnly (SPEC §3): `[B, C, T, H, W]` heatmaps -> `[B, 512, T/2, H/8, W/8]` features."""

    def __init__(self, config: SkeletonClipVideoConfig):
        super().__init__()
        self.config = config
        stem_padding = tuple(k // 2 for k in config.stem_kernel)
        self.conv1 = SkeletonClipConvModule(
            config, config.in_channels, config.base_channels, tuple(config.stem_kernel), padding=stem_padding
        )
        # A 1x3x3 max-pool with stride 1: smooths without downsampling, as in PoseC3D.
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=1, padding=(0, 1, 1))
        in_channels = config.base_channels
        for i, (blocks, planes) in enumerate(zip(config.stage_blocks, config.stage_planes)):
            layer = []
            for j in range(blocks):
                layer.append(
                    SkeletonClipBottleneck(
                        config,
                        in_channels,
                        planes,
                        spatial_stride=config.spatial_strides[i] if j == 0 else 1,
                        temporal_stride=config.temporal_strides[i] if j == 0 else 1,
                        inflate=bool(config.inflate[i]),
                    )
                )
                in_channels = planes * config.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
        self.num_stages = len(config.stage_blocks)

    def forward(self, heatmaps: torch.Tensor, output_hidden_states: bool = False):
        """`[B, 512, T', H', W']` features; with `output_hidden_states`, `(features, hidden_states)`: the outputs of
        the stem (after the max-pool) and of every stage, `[B, C_i, T_i, H_i, W_i]` each (the last is `features`)."""
        if self.config.conv_impl == "fast" and fast_path_applies(self, heatmaps):
            # The same parameters as 2D convolutions over frames, channels-last (see fast_slowonly.py); offloaded or
            # dispatched encoders (accelerate hooks) run the modules' own forwards below.
            return fast_video_encoder_forward(self, heatmaps, output_hidden_states=output_hidden_states)
        hidden_states = self.maxpool(self.conv1(heatmaps))  # [B, 32, T, H, W]
        all_hidden_states = (hidden_states,)
        for i in range(self.num_stages):
            hidden_states = getattr(self, f"layer{i + 1}")(hidden_states)
            all_hidden_states += (hidden_states,)
        if output_hidden_states:
            return hidden_states, all_hidden_states
        return hidden_states  # [B, 512, T', H', W']


class SkeletonClipResidualEmbedder(nn.Module):
    """`Linear(in, out) - GELU - Linear(out, out)` plus a residual `Linear(in, out)` (the PACL embedder)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, out_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(out_features, out_features)
        self.residual = nn.Linear(in_features, out_features)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states))) + self.residual(hidden_states)


# ----------------------------------------------------------------------------------------------------------------
# Shared base: heatmap rendering, input checks, weight init.
# ----------------------------------------------------------------------------------------------------------------


class SkeletonClipPreTrainedModel(PreTrainedModel):
    config_class = SkeletonClipConfig
    base_model_prefix = "skeleton_clip"
    main_input_name = "keypoints"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["SkeletonClipBottleneck", "BertLayer"]
    # The contrastive loss is a mean over the batch: the Trainer must not rescale it by token counts.
    accepts_loss_kwargs = False
    # The BERT text encoder and the ITM fusion layers (which read the text config) run
    # `attn_implementation="sdpa"` (the default) or "eager"; the classifier has no attention, so either holds for
    # it too (and a config the contrastive model resolved to "sdpa" builds it). Flash and flex attention are not
    # claimed: the fusion layers pass a 4D additive padding mask, and neither is tested here.
    _supports_sdpa = True

    def _init_weights(self, module):
        # Children are initialised before their parents and then frozen against re-init, so every rule below
        # targets the leaf module itself.
        if isinstance(module, nn.Conv3d):
            # pyskl: Kaiming-normal convolutions (fan_out, ReLU).
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm3d):
            super()._init_weights(module)
            if getattr(module, "zero_init", False):
                init.zeros_(module.weight)  # zero-init residual: every bottleneck starts as an identity
        elif module is getattr(self, "classifier", None):
            init.normal_(module.weight, mean=0.0, std=0.01)
            init.zeros_(module.bias)
        elif isinstance(module, SkeletonClipModel):
            init.constant_(module.temperature, self.config.temperature_init)
            module.objective.init_weights(module)  # e.g. momentum copies and queues
        else:
            super()._init_weights(module)

    def _heatmap_dtype(self, device: torch.device) -> torch.dtype:
        """Render in the dtype the encoder's first convolution consumes: the autocast dtype under autocast
        (bf16 halves the heatmap memory and skips a cast), else the model's dtype."""
        return compute_dtype(device, self.dtype)

    def _heatmap_size(self, heatmap_size):
        if heatmap_size is not None:
            return tuple(int(s) for s in heatmap_size)
        cfg = self.config.heatmap_config
        return tuple(cfg.train_size if self.training else cfg.eval_size)

    def prepare_heatmaps(self, keypoints=None, keypoint_scores=None, heatmaps=None, heatmap_size=None, mirrored=None):
        """Renders (or checks) the encoder input and folds views into the batch.

        `mirrored` (bool `[B]` or `[B, views]`, the leading axes of `keypoints`): the views whose rendered heatmaps
        are mirrored, pyskl's test-time flip (`heatmaps.mirror_heatmaps`): such a view comes as its unflipped
        keypoints. Returns `(heatmaps [B * views, C, T, H, W], views)`.
        """
        video_cfg, heatmap_cfg = self.config.video_config, self.config.heatmap_config
        keypoints, keypoint_scores, heatmaps, mirrored = (
            self._as_tensor(value, name)
            for value, name in ((keypoints, "keypoints"), (keypoint_scores, "keypoint_scores"), (heatmaps, "heatmaps"),
                                (mirrored, "mirrored"))
        )
        if heatmaps is not None and mirrored is not None:
            raise ValueError("`mirrored` marks keypoint views to mirror after rendering; precomputed `heatmaps` are "
                             "used as given (mirror them before passing them).")
        if heatmaps is not None:
            if heatmaps.dim() not in (5, 6) or heatmaps.shape[-4] != video_cfg.in_channels:
                raise ValueError(
                    f"`heatmaps` must have shape [B, {video_cfg.in_channels}, T, H, W] or "
                    f"[B, views, {video_cfg.in_channels}, T, H, W], got {list(heatmaps.shape)}."
                )
            self._check_not_empty(heatmaps, "heatmaps")
            if not torch.compiler.is_compiling() and not torch.isfinite(heatmaps).all():
                raise ValueError("`heatmaps` contain NaN or infinite values; missing joints are zero heatmaps.")
            views = heatmaps.shape[1] if heatmaps.dim() == 6 else 1
            return heatmaps.flatten(0, 1) if heatmaps.dim() == 6 else heatmaps, views
        if keypoints is None:
            raise ValueError(
                "Pass `keypoints` [B, (views,) M, T, V, 2] (with `keypoint_scores` [B, (views,) M, T, V]) "
                "or precomputed `heatmaps` [B, (views,) C, T, H, W]."
            )
        num_joints = heatmap_cfg.num_joints
        if keypoints.dim() not in (5, 6) or keypoints.shape[-1] != 2 or keypoints.shape[-2] != num_joints:
            raise ValueError(
                f"`keypoints` must have shape [B, M, T, {num_joints}, 2] or [B, views, M, T, {num_joints}, 2], "
                f"got {list(keypoints.shape)}."
            )
        if keypoint_scores is not None and keypoint_scores.shape != keypoints.shape[:-1]:
            raise ValueError(
                f"`keypoint_scores` must have shape {list(keypoints.shape[:-1])} (keypoints without the last axis), "
                f"got {list(keypoint_scores.shape)}."
            )
        if mirrored is not None and (mirrored.dtype != torch.bool or mirrored.shape != keypoints.shape[:-4]):
            raise ValueError(
                f"`mirrored` must be a bool tensor {list(keypoints.shape[:-4])} (one flag per view of `keypoints` "
                f"{list(keypoints.shape)}), got dtype {mirrored.dtype} and shape {list(mirrored.shape)}."
            )
        self._check_not_empty(keypoints, "keypoints")
        views = keypoints.shape[1] if keypoints.dim() == 6 else 1
        if keypoints.dim() == 6:
            keypoints = keypoints.flatten(0, 1)  # [B * views, M, T, V, 2]
            keypoint_scores = keypoint_scores.flatten(0, 1) if keypoint_scores is not None else None
            mirrored = mirrored.flatten() if mirrored is not None else None  # [B * views]
        # Exported and traced graphs get the dense renderer: the same heatmaps without data-dependent shapes.
        exporting = torch.compiler.is_exporting() or torch.jit.is_tracing()
        render = partial(render_heatmaps, dense=True) if exporting else _render_heatmaps_eager
        heatmaps = render(
            keypoints,
            keypoint_scores,
            size=self._heatmap_size(heatmap_size),
            dtype=self._heatmap_dtype(keypoints.device),
            mirrored=mirrored,
            **heatmap_cfg.render_kwargs(),
        )  # [B * views, C, T, H, W]
        return heatmaps, views


    def _as_tensor(self, value, name: str) -> torch.Tensor | None:
        """Tensors pass; numpy arrays become tensors on the model's device; anything else is refused by name."""
        if value is None or isinstance(value, torch.Tensor):
            return value
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value).to(self.device)
        raise TypeError(f"`{name}` must be a torch.Tensor or a numpy array, got {type(value).__name__}.")

    @staticmethod
    def _check_not_empty(value: torch.Tensor, name: str):
        if value.shape[0] == 0 or (value.dim() == 6 and value.shape[1] == 0):
            raise ValueError(f"`{name}` holds no clips (shape {list(value.shape)}): a batch needs at least one.")

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves as `PreTrainedModel` does; the config also names the `skeleton-action-recognition` pipeline, whose
        code (imported here) is copied with the model's, so that `pipeline(model=path, trust_remote_code=True)`
        works without a task and without this package."""
        from .pipeline_skeletonclip import custom_pipelines_entry

        self.config.custom_pipelines = custom_pipelines_entry(getattr(self, "_auto_class", None))
        super().save_pretrained(save_directory, *args, **kwargs)

    def _labels_per_view(self, labels, num_videos: int, views: int, num_classes: int | None = None) -> torch.Tensor:
        """`labels` `[B]` (one class per clip), or `[B, num_classes]` (a target per class) with `num_classes`,
        repeated over the views of each clip: `[B * views(, num_classes)]`."""
        labels = self._as_tensor(labels, "labels")
        clips = num_videos // views
        expected = [clips] if num_classes is None else [clips, num_classes]
        if list(labels.shape) != expected:
            what = "one class per clip" if num_classes is None else f"{num_classes} class targets per clip"
            raise ValueError(
                f"`labels` must have shape {expected} ({what}: {clips} clips x {views} views), got "
                f"{list(labels.shape)}."
            )
        return labels.repeat_interleave(views, dim=0)


# `from_pretrained`'s arguments that say where a checkpoint's files come from; its tokenizer comes from there too.
TOKENIZER_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")


def saved_tokenizer(name_or_path, **hub_kwargs):
    """The tokenizer saved beside a checkpoint (a local folder or a hub repo id, resolved through the hub cache as
    transformers resolves the weights), or None when the checkpoint has none or it cannot be reached."""
    from transformers import AutoTokenizer
    from transformers.utils.hub import cached_file

    tokenizer_config = cached_file(
        name_or_path,
        "tokenizer_config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        _raise_exceptions_for_gated_repo=False,
        **hub_kwargs,
    )
    if tokenizer_config is None:
        return None
    # The tokenizer is plain BERT: trusting no remote code keeps AutoConfig from asking on stdin about the model's
    # own code (the checkpoint's config names it in `auto_map`).
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False, **hub_kwargs)


# The renderer gathers the in-window points of each joint (data-dependent sizes): under torch.compile it would break
# the graph and recompile on every batch, so it always runs eagerly (cheap beside the encoder, docs/benchmarks.md).
# torch.export, ONNX export and torch.jit.trace record a graph instead: they get `render_heatmaps(..., dense=True)`.
_render_heatmaps_eager = torch.compiler.disable(render_heatmaps)


# ----------------------------------------------------------------------------------------------------------------
# Public models
# ----------------------------------------------------------------------------------------------------------------


class SkeletonClipModel(SkeletonClipPreTrainedModel):
    """The contrastive skeleton-text model ("Visece", SPEC §4): clips and class texts in one embedding space.

    `config.objective` selects the training objective (`objectives.py`): it turns the clip and text features into
    logits and a loss, and owns whatever it adds to the model (the ITM fusion encoder, the momentum copies).
    """

    # Training on several processes: contrastive losses span the features of every process (SkeletonClipTrainer
    # sets this from `gather_features_with_grad`).
    gather_features_across_processes = True

    def __init__(self, config: SkeletonClipConfig):
        super().__init__(config)
        self.video_encoder = SkeletonClipVideoEncoder(config.video_config)
        for name, module in self.build_video_head().items():
            self.add_module(name, module)
        self.text_model = BertModel(config.text_config, add_pooling_layer=False)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim)
        self.temperature = nn.Parameter(torch.tensor(config.temperature_init))
        # The objective's own parts, where it has them: the ITM fusion encoder; the momentum copies and queues.
        self.fusion_encoder = None
        self.momentum_encoders = None
        self.objective = OBJECTIVES[config.objective]()
        self.objective.add_modules(self)
        # The text tokenizer travels with the model: saved beside the weights, so the checkpoint is complete.
        self.tokenizer = None
        self.post_init()
        self.objective.after_init(self)

    def build_video_head(self) -> dict[str, nn.Module]:
        """The modules between the encoder's frame features `[N, T', 512]` and the `projection_dim` embedding."""
        config = self.config
        in_features = config.video_config.out_channels
        if config.video_embedder == "projection":
            return {
                "frame_projection": nn.Linear(in_features, config.frame_embed_dim),
                "video_projection": nn.Linear(config.frame_embed_dim, config.projection_dim),
            }
        if config.video_embedder == "residual":
            return {"video_embedder": SkeletonClipResidualEmbedder(in_features, config.projection_dim)}
        return {"video_embedder": nn.Linear(in_features, config.projection_dim)}

    @property
    def frame_feature_dim(self) -> int:
        """Width of `get_video_features(...).last_hidden_state` (what ITM's cross-attention reads)."""
        config = self.config
        if config.video_embedder == "projection":
            return config.frame_embed_dim
        return config.projection_dim if config.video_embedder_placement == "frames" else config.video_config.out_channels

    def set_attn_implementation(self, attn_implementation, allow_all_kernels: bool = False):
        """transformers' `set_attn_implementation`; the video and heatmap configs, which describe no attention,
        follow a plain string silently (transformers warns about sub-configs it finds no sub-model for)."""
        if isinstance(attn_implementation, str):
            for sub_config in (self.config.video_config, self.config.heatmap_config):
                sub_config._attn_implementation_internal = attn_implementation
        super().set_attn_implementation(attn_implementation, allow_all_kernels=allow_all_kernels)

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.tokenizer is not None and kwargs.get("is_main_process", True):
            self.tokenizer.save_pretrained(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """transformers' `from_pretrained`, plus the tokenizer saved with the checkpoint (`model.tokenizer`, None
        if it has none), found where the weights are: a folder, or a hub repo (through the hub cache, with the
        same `cache_dir`, `revision`, `subfolder`, `local_files_only`, `token`, ...)."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if pretrained_model_name_or_path is not None:
            hub_kwargs = {key: kwargs[key] for key in TOKENIZER_HUB_KWARGS if key in kwargs}
            model.tokenizer = saved_tokenizer(pretrained_model_name_or_path, **hub_kwargs)
        return model

    # -- constructors ---------------------------------------------------------------------------------------------

    @classmethod
    def from_text_pretrained(cls, text_model_name_or_path: str | None = None, **config_kwargs):
        """A fresh SkeletonCLIP around a pretrained BERT, like `VisionTextDualEncoderModel.from_vision_text_pretrained`.

        `text_model_name_or_path=None` takes the packaged all-MiniLM-L6-v2 (no network). Returns `(model, tokenizer)`.
        """
        from .text_encoders import load_pretrained_text_encoder

        text_model, tokenizer, name = load_pretrained_text_encoder(text_model_name_or_path)
        config = SkeletonClipConfig(
            text_config=text_model.config.to_dict(), text_encoder_name_or_path=name, **config_kwargs
        )
        model = cls(config)
        model.tokenizer = tokenizer
        missing, unexpected = model.text_model.load_state_dict(text_model.state_dict(), strict=False)
        # The pooler is not used (the CLS token is projected directly); anything else missing is a real mismatch.
        unexpected = [k for k in unexpected if not k.startswith("pooler.")]
        if missing or unexpected:
            raise ValueError(f"Text encoder {name!r} does not fit BertModel: missing {missing}, unexpected {unexpected}.")
        model.objective.from_text_encoder(model)  # e.g. ITM's fusion layers start from the text encoder's
        return model, tokenizer

    # -- features -------------------------------------------------------------------------------------------------

    @can_return_tuple
    def get_video_features(
        self,
        keypoints=None,
        keypoint_scores=None,
        heatmaps=None,
        heatmap_size=None,
        output_hidden_states: bool | None = None,
        mirrored=None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """`last_hidden_state`: frame features `[B * views, T', 768]`; `pooler_output`: projected clip features
        `[B * views, projection_dim]` (not normalised); `hidden_states` (with `output_hidden_states`, default
        `config.output_hidden_states`): the encoder's stem and stage outputs `[B * views, C_i, T_i, H_i, W_i]`.
        `return_dict=False` (default `config.return_dict`) returns the tuple of the fields that are set, as
        transformers' CLIP does."""
        reject_unknown_arguments(type(self).get_video_features, kwargs)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        heatmaps, _ = self.prepare_heatmaps(keypoints, keypoint_scores, heatmaps, heatmap_size, mirrored)
        return self._video_features(self, heatmaps, output_hidden_states)

    def _video_features(self, owner, heatmaps, output_hidden_states: bool = False) -> BaseModelOutputWithPooling:
        """The video branch of `owner` (this model or its momentum copies) on rendered heatmaps.

        `last_hidden_state` by `video_embedder`: "projection": `frame_projection` outputs `[N, T', 768]`; "linear" /
        "residual" on "frames": per-frame embeddings `[N, T', projection_dim]`; on "pooled": the encoder's frame
        features `[N, T', 512]`.
        """
        config = self.config
        hidden_states = None
        if output_hidden_states:
            features, hidden_states = owner.video_encoder(heatmaps, output_hidden_states=True)
        else:
            features = owner.video_encoder(heatmaps)  # [N, 512, T', H', W']
        frame_features = features.mean(dim=(3, 4)).transpose(1, 2)  # [N, T', 512]: time and channels kept apart
        if config.video_embedder == "projection":
            frame_embeds = owner.frame_projection(frame_features)  # [N, T', 768]
            pooled = owner.video_projection(frame_embeds.mean(dim=1))  # [N, projection_dim]
        elif config.video_embedder_placement == "frames":
            frame_embeds = owner.video_embedder(frame_features)  # [N, T', projection_dim]
            pooled = frame_embeds.mean(dim=1)
        else:
            frame_embeds = frame_features
            pooled = owner.video_embedder(frame_features.mean(dim=1))
        return BaseModelOutputWithPooling(
            last_hidden_state=frame_embeds, pooler_output=pooled, hidden_states=hidden_states
        )

    @can_return_tuple
    def get_text_features(
        self,
        input_ids,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """`last_hidden_state`: token states `[N, L, hidden]`; `pooler_output`: projected CLS `[N, projection_dim]`;
        `hidden_states` (with `output_hidden_states`, default `config.output_hidden_states`): the embeddings and
        every BERT layer's output `[N, L, hidden]`. `return_dict=False` (default `config.return_dict`) returns the
        tuple of the fields that are set, as transformers' CLIP does."""
        reject_unknown_arguments(type(self).get_text_features, kwargs)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        return self._text_features(self, input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states)

    @staticmethod
    def _text_features(
        owner, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, output_hidden_states=False
    ) -> BaseModelOutputWithPooling:
        text_outputs = owner.text_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            output_hidden_states=bool(output_hidden_states),
            return_dict=True,
        )
        cls_state = text_outputs.last_hidden_state[:, 0]  # [N, hidden]
        return BaseModelOutputWithPooling(
            last_hidden_state=text_outputs.last_hidden_state,
            pooler_output=owner.text_projection(cls_state),
            hidden_states=text_outputs.hidden_states,
        )

    def clamped_temperature(self) -> torch.Tensor:
        # Clamp the stored value (as the reference does each step) so that it never drifts outside the range.
        # Written through `.data`: a second use in the same step (the loss over all processes) must not
        # invalidate the autograd graph of the first; after the first clamp the second one changes nothing.
        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            # A recorded graph cannot write through `.data`; it gets the same value, computed.
            return self.temperature.clamp(self.config.temperature_min, self.config.temperature_max)
        self.temperature.data.clamp_(self.config.temperature_min, self.config.temperature_max)
        return self.temperature

    def logits(self, video_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarity `[Nv, Nt]` of normalised embeddings."""
        return video_embeds @ text_embeds.t() / self.clamped_temperature()

    def score_all_classes(
        self,
        keypoints=None,
        keypoint_scores=None,
        heatmaps=None,
        class_text_embeds: torch.Tensor | None = None,
        heatmap_size=None,
        output_frame_weights: bool = False,
        mirrored=None,
    ):
        """Logits `[B * views, L]` of every clip view against every class text, the evaluation form of every objective.

        class_text_embeds: normalised text embeddings `[L, D]` (e.g. `normalize(get_text_features(...).pooler_output)`).
        "itc", "itc_itm", "itc_momentum": scaled cosine of the clip feature; "pacl": of the clip feature weighted
        over frames by each class text. With `output_frame_weights=True` (PACL) returns `(logits, weights [N, L, T'])`.
        `mirrored`: the views to mirror after rendering, as for `forward`.
        """
        if class_text_embeds is None:
            raise ValueError("`class_text_embeds` [L, D] (normalised class text embeddings) are required.")
        rendered, _ = self.prepare_heatmaps(keypoints, keypoint_scores, heatmaps, heatmap_size, mirrored)
        video_outputs = self._video_features(self, rendered)
        logits, weights = self.objective.class_logits(self, video_outputs, class_text_embeds)
        return (logits, weights) if output_frame_weights else logits

    @torch.no_grad()
    def encode_class_texts(self, class_texts, tokenizer=None, chunk_size: int = 256) -> torch.Tensor:
        """Normalised class embeddings `[L, D]` for scoring (`score_all_classes`), without gradients.

        class_texts: one text per class (`list[str]`), or several (`list[list[str]]`, e.g.
        `config.class_text_lists(names)`): a class's embedding is then the normalised mean of the normalised
        embeddings of its texts (CLIP's prompt ensembling, `ensemble_text_embeds`). tokenizer: default
        `self.tokenizer`. Texts are tokenized in chunks of `chunk_size`, padded to the longest of the chunk and
        truncated at `config.text_max_length`.
        """
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        if tokenizer is None:
            raise ValueError("Encoding class texts needs the text tokenizer (saved with the model, or pass one).")
        grouped = [texts if isinstance(texts, (list, tuple)) else [texts] for texts in class_texts]
        texts, groups = flatten_class_texts(grouped)
        was_training = self.training
        self.eval()
        embeds = []
        try:
            for start in range(0, len(texts), chunk_size):
                batch = tokenizer(
                    texts[start : start + chunk_size],
                    padding=True,
                    truncation=True,
                    max_length=self.config.text_max_length,
                    return_tensors="pt",
                ).to(self.device)
                features = self.get_text_features(**batch, return_dict=True).pooler_output
                embeds.append(F.normalize(features, dim=-1))
        finally:
            self.train(was_training)
        embeds = torch.cat(embeds)  # [N_text, D]
        if len(texts) == len(grouped):
            return embeds
        return ensemble_text_embeds(embeds, torch.tensor(groups, device=embeds.device), len(grouped))

    def training_inputs(self, inputs: dict, tokenizer=None) -> dict:
        """A collated training batch as the objective trains on it (PACL's all-class training swaps in every class
        text); the Trainer calls this before `forward`."""
        return self.objective.training_inputs(self, inputs, tokenizer)

    # -- forward --------------------------------------------------------------------------------------------------

    def forward(
        self,
        keypoints: torch.Tensor | None = None,
        keypoint_scores: torch.Tensor | None = None,
        heatmaps: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_loss: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        text_labels: torch.Tensor | None = None,
        text_groups: torch.Tensor | None = None,
        heatmap_size: tuple[int, int] | None = None,
        return_dict: bool | None = None,
        output_frame_weights: bool | None = None,
        output_hidden_states: bool | None = None,
        mirrored: torch.Tensor | None = None,
        **kwargs,
    ) -> SkeletonClipOutput | tuple:
        r"""
        keypoints (`[B, M, T, V, 2]` or `[B, views, M, T, V, 2]`): pixel coordinates in the rendered frame.
        keypoint_scores (`[B, (views,) M, T, V]`): confidences (missing joints 0).
        heatmaps (`[B, (views,) C, T, H, W]`): precomputed encoder input; replaces `keypoints`.
        input_ids / attention_mask (`[N_text, L]`): the texts; by default text `i` is the class text of clip `i`.
        labels (`[B]`): class of each clip; needed for the label-aware loss.
        text_labels (`[N_text]`): class of each text; defaults to `labels` (texts paired with clips).
        text_groups (`[N_descriptions]`): several texts per text slot (prompt ensembling): `input_ids` then hold
            every description and `text_groups` the slot of each; a slot's text embedding is the normalised mean
            of its descriptions' normalised embeddings (`N_text` slots: `text_labels`' length, else one per clip).
        heatmap_size (`(H, W)`): rendering size; defaults to the config's train size in training, eval size otherwise.
        output_frame_weights (`bool`): PACL: return the frame weights `[B * views, N_text, T']` as `frame_weights`.
        output_hidden_states (`bool`): the towers' hidden states in `video_model_output.hidden_states` (the
            encoder's stem and stage outputs) and `text_model_output.hidden_states` (BERT's); default
            `config.output_hidden_states`.
        mirrored (`[B]` or `[B, views]` bool): views given by their unflipped keypoints whose rendered heatmaps are
            mirrored (pyskl's test-time flip: columns reversed, left/right channels swapped), as
            `PoseClipTransform("test", flip_double=True)` marks them; not with `heatmaps`.

        Any other keyword argument is a TypeError (transformers' Trainer's `num_items_in_batch` is ignored: the loss
        is a mean over the batch).

        The objective (`config.objective`) decides the loss and, for "pacl", the logits:
        - "itc": the label-aware contrastive loss (SPEC §4).
        - "itc_itm": ITC + `itm_loss_weight` x ITM in training (texts paired with clips); `logits_per_video` stay
          contrastive.
        - "itc_momentum": ITC with momentum distillation over the batch plus the queues; in training each call
          first updates the momentum encoders and afterwards enqueues their features.
        - "pacl": `logits_per_video[i, j]` scores clip `i` weighted by text `j` (all-class form). With
          `pacl_training="in_batch"` in training, clip `i` is weighted by its own text `i // views` only and scored
          against every text; the loss is then contrastive. With "all_classes", pass every class text (the
          Trainer does) with `text_labels`; the loss is cross-entropy over the texts.
        """
        reject_unknown_arguments(type(self).forward, kwargs, ignored=TRAINER_LOSS_KWARGS)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if input_ids is None:
            raise ValueError("`input_ids` [N_text, L] are required: the contrastive model scores clips against texts.")
        input_ids, attention_mask, token_type_ids, labels, text_labels, text_groups = (
            self._as_tensor(value, name)
            for value, name in ((input_ids, "input_ids"), (attention_mask, "attention_mask"),
                                (token_type_ids, "token_type_ids"), (labels, "labels"), (text_labels, "text_labels"),
                                (text_groups, "text_groups"))
        )
        num_texts = input_ids.shape[0]
        if text_groups is not None:
            if text_labels is not None:
                num_texts = text_labels.shape[0]
            elif labels is not None:
                num_texts = labels.shape[0]
            else:
                num_texts = int(text_groups.max()) + 1 if text_groups.numel() else 0
            check_text_groups(text_groups, input_ids.shape[0], num_texts)
        if return_loss is None:
            return_loss = labels is not None
        if return_loss:
            if labels is None:
                raise ValueError("`return_loss=True` needs `labels` [B] (the class of each clip).")
            text_labels = labels if text_labels is None else text_labels
            if text_labels.shape[0] != num_texts:
                raise ValueError(
                    f"Got {num_texts} texts but {text_labels.shape[0]} text labels; pass `text_labels` "
                    "when the texts are not the class texts of the clips, in order."
                )

        rendered, views = self.prepare_heatmaps(
            keypoints, keypoint_scores, heatmaps, heatmap_size, mirrored
        )  # [Nv, C, T, H, W]
        video_outputs = self._video_features(self, rendered, output_hidden_states)
        text_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        text_outputs = self._text_features(self, **text_inputs, output_hidden_states=output_hidden_states)
        video_embeds = F.normalize(video_outputs.pooler_output, dim=-1)  # [Nv, D]
        text_embeds = F.normalize(text_outputs.pooler_output, dim=-1)  # [N_descriptions, D]
        text_embeds = ensemble_text_embeds(text_embeds, text_groups, num_texts)  # [N_text, D]
        video_labels = None
        if labels is not None:
            video_labels = self._labels_per_view(labels, video_embeds.shape[0], views)  # [Nv]
        result = self.objective(
            self,
            ObjectiveInputs(
                heatmaps=rendered,
                video_outputs=video_outputs,
                text_outputs=text_outputs,
                video_embeds=video_embeds,
                text_embeds=text_embeds,
                text_inputs=text_inputs,
                video_labels=video_labels,
                text_labels=text_labels if return_loss else None,
                views=views if labels is not None else None,
                return_loss=return_loss,
                text_groups=text_groups,
            ),
        )
        output = SkeletonClipOutput(
            loss=result.loss,
            logits_per_video=result.logits_per_video,
            logits_per_text=result.logits_per_video.t(),
            video_embeds=result.video_embeds,
            text_embeds=text_embeds,
            video_model_output=video_outputs,
            text_model_output=text_outputs,
            loss_itc=result.loss_itc,
            loss_itm=result.loss_itm,
            itm_logits=result.itm_logits,
            frame_weights=result.frame_weights if output_frame_weights else None,
        )
        return output if return_dict else output.to_tuple()


class SkeletonClipForActionRecognition(SkeletonClipPreTrainedModel):
    """The PoseC3D baseline (SPEC §3): the same video encoder, global pooling, dropout 0.5, Linear, cross-entropy.

    `config.problem_type` chooses the loss as in transformers' sequence classifiers: "single_label_classification"
    (cross-entropy, class indices `[B]`), "multi_label_classification" (binary cross-entropy with logits per class,
    float targets `[B, num_labels]`) or "regression" (mean squared error against `[B, num_labels]`); unset, it
    follows the labels' dtype (int64/int32: single-label, anything else: multi-label), without changing the config.
    """

    def __init__(self, config: SkeletonClipConfig):
        super().__init__(config)
        if not config.id2label or config.num_labels < 2:
            raise ValueError("SkeletonClipForActionRecognition needs class names: set `id2label` in the config.")
        self.video_encoder = SkeletonClipVideoEncoder(config.video_config)
        self.dropout = nn.Dropout(config.video_config.classifier_dropout)
        self.classifier = nn.Linear(config.video_config.out_channels, config.num_labels)
        self.post_init()

    def forward(
        self,
        keypoints: torch.Tensor | None = None,
        keypoint_scores: torch.Tensor | None = None,
        heatmaps: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        heatmap_size: tuple[int, int] | None = None,
        return_dict: bool | None = None,
        output_hidden_states: bool | None = None,
        mirrored: torch.Tensor | None = None,
        **kwargs,
    ) -> SkeletonClipActionRecognitionOutput | tuple:
        r"""
        keypoints / keypoint_scores / heatmaps / heatmap_size / mirrored: as for `SkeletonClipModel.forward`.
        labels: class indices `[B]`, or float targets `[B, num_labels]` for "multi_label_classification" /
            "regression" (see the class docstring); every view of a clip gets its clip's labels.
        output_hidden_states (`bool`): the encoder's stem and stage outputs as `hidden_states`; default
            `config.output_hidden_states`.

        Any other keyword argument is a TypeError (transformers' Trainer's `num_items_in_batch` is ignored).
        """
        reject_unknown_arguments(type(self).forward, kwargs, ignored=TRAINER_LOSS_KWARGS)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        heatmaps, views = self.prepare_heatmaps(keypoints, keypoint_scores, heatmaps, heatmap_size, mirrored)
        hidden_states = None
        if output_hidden_states:
            features, hidden_states = self.video_encoder(heatmaps, output_hidden_states=True)
        else:
            features = self.video_encoder(heatmaps)  # [B * views, 512, T', H', W']
        pooled = features.mean(dim=(2, 3, 4))  # [B * views, 512]
        logits = self.classifier(self.dropout(pooled))  # [B * views, num_labels]
        loss = self.classification_loss(logits, labels, views) if labels is not None else None
        output = SkeletonClipActionRecognitionOutput(
            loss=loss, logits=logits, pooled_features=pooled, hidden_states=hidden_states
        )
        return output if return_dict else output.to_tuple()

    def problem_type(self, labels: torch.Tensor) -> str:
        """`config.problem_type`, or, unset, what transformers' sequence classifiers infer from the labels (with
        more than one class): int64/int32 labels are single-label, any other dtype multi-label."""
        if self.config.problem_type is not None:
            return self.config.problem_type
        if labels.dtype in (torch.long, torch.int):
            return "single_label_classification"
        return "multi_label_classification"

    def classification_loss(self, logits: torch.Tensor, labels, views: int) -> torch.Tensor:
        """The loss of `logits` `[B * views, num_labels]` against the clips' `labels`, repeated over the views."""
        labels = self._as_tensor(labels, "labels")
        problem_type = self.problem_type(labels)
        if problem_type == "single_label_classification":
            return F.cross_entropy(logits, self._labels_per_view(labels, logits.shape[0], views))
        targets = self._labels_per_view(labels, logits.shape[0], views, num_classes=self.config.num_labels)
        targets = targets.to(logits.dtype)  # [B * views, num_labels]
        if problem_type == "multi_label_classification":
            return F.binary_cross_entropy_with_logits(logits, targets)
        return F.mse_loss(logits, targets)


__all__ = [
    "SkeletonClipActionRecognitionOutput",
    "SkeletonClipForActionRecognition",
    "SkeletonClipModel",
    "SkeletonClipOutput",
    "SkeletonClipPreTrainedModel",
    "label_aware_contrastive_loss",
]
