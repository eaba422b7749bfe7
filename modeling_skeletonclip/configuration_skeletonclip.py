"""SkeletonCLIP model configuration: a composite of video-encoder, heatmap and text-encoder configs."""

from huggingface_hub.dataclasses import strict
from transformers import BertConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging

from .class_descriptions import class_descriptions_problem
from .pose_layouts import COCO17, get_layout


logger = logging.get_logger(__name__)

# The packaged default text encoder (all-MiniLM-L6-v2, a 6-layer BERT with hidden size 384).
# Its architecture is the default `text_config`, so `SkeletonClipConfig()` describes the default model.
DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
MINILM_L6_TEXT_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}

OBJECTIVES = ("itc", "itc_itm", "itc_momentum", "pacl")
CONV_IMPLS = ("conv3d", "fast")
VIDEO_EMBEDDERS = ("projection", "linear", "residual")
EMBEDDER_PLACEMENTS = ("frames", "pooled")
PACL_WEIGHTINGS = ("softmax", "sigmoid")
PACL_WEIGHTED_FEATURES = ("normalized", "raw")
PACL_TRAININGS = ("in_batch", "all_classes")


@strict
class SkeletonClipVideoConfig(PreTrainedConfig):
    r"""
    Configuration of the PoseC3D ResNet3dSlowOnly heatmap encoder (SPEC §3). The defaults are the published
    architecture: 1.99 M parameters, `[B, 17, 48, 56, 56] -> [B, 512, 24, 7, 7]`.

    Args:
        in_channels (`int`): heatmap channels (joints and/or limbs); the composite config keeps it in sync.
        base_channels (`int`): stem output channels (32).
        stage_blocks (`list[int]`): bottleneck blocks per stage (4, 6, 3).
        stage_planes (`list[int]`): bottleneck widths per stage (32, 64, 128); outputs are `expansion` times that.
        expansion (`int`): bottleneck expansion (4).
        spatial_strides / temporal_strides (`list[int]`): stride of the first block of each stage.
        inflate (`list[int]`): 1 where a stage's conv1 is 3x1x1 over time (stages 2-3), 0 for 1x1x1.
        stem_kernel (`list[int]`): stem kernel (1, 7, 7).
        batch_norm_eps / batch_norm_momentum (`float`): BatchNorm3d settings (torch defaults, as in pyskl).
        zero_init_residual (`bool`): start each bottleneck's last BN at 0, so blocks begin as identities.
        conv_impl (`str`): "fast" (default: the same weights run as 2D convolutions over frames, channels-last;
            faster on GPUs and CPUs, docs/benchmarks.md) or "conv3d" (the plain reference path). Checkpoints are
            identical for both.
        classifier_dropout (`float`): dropout before the classification head of the PoseC3D baseline.
    """

    model_type = "skeleton_clip_video"
    base_config_key = "video_config"

    in_channels: int = 17
    base_channels: int = 32
    stage_blocks: list[int] | tuple[int, ...] = (4, 6, 3)
    stage_planes: list[int] | tuple[int, ...] = (32, 64, 128)
    expansion: int = 4
    spatial_strides: list[int] | tuple[int, ...] = (2, 2, 2)
    temporal_strides: list[int] | tuple[int, ...] = (1, 1, 2)
    inflate: list[int] | tuple[int, ...] = (0, 1, 1)
    stem_kernel: list[int] | tuple[int, ...] = (1, 7, 7)
    batch_norm_eps: float = 1e-5
    batch_norm_momentum: float = 0.1
    zero_init_residual: bool = True
    conv_impl: str = "fast"
    classifier_dropout: float = 0.5

    def __post_init__(self, **kwargs):
        # Configs saved by version 0.1.0 carry two switches of removed experimental fast-path options; both computed
        # the same result, so they are dropped rather than kept as unknown attributes.
        for retired in ("fused_training", "unfold_stem"):
            kwargs.pop(retired, None)
        # JSON gives lists; keep one type so that a round trip compares equal.
        for name in ("stage_blocks", "stage_planes", "spatial_strides", "temporal_strides", "inflate", "stem_kernel"):
            setattr(self, name, [int(v) for v in getattr(self, name)])
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        n = len(self.stage_blocks)
        for name in ("stage_planes", "spatial_strides", "temporal_strides", "inflate"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"`{name}` has {len(getattr(self, name))} entries but there are {n} stages.")
        if len(self.stem_kernel) != 3:
            raise ValueError(f"`stem_kernel` must be (t, h, w), got {self.stem_kernel}.")
        for name in ("base_channels", "expansion", "stage_blocks", "stage_planes", "spatial_strides",
                     "temporal_strides", "stem_kernel"):
            value = getattr(self, name)
            if min(value if isinstance(value, list) else [value], default=1) < 1:
                raise ValueError(f"`{name}` must be positive, got {value}.")
        if self.conv_impl not in CONV_IMPLS:
            raise ValueError(f"`conv_impl` must be one of {CONV_IMPLS}, got {self.conv_impl!r}.")

    @property
    def out_channels(self) -> int:
        return self.stage_planes[-1] * self.expansion


@strict
class SkeletonClipHeatmapConfig(PreTrainedConfig):
    r"""
    How keypoints become the heatmap volumes the video encoder reads (SPEC §2).

    Args:
        sigma (`float`): Gaussian width in pixels (0.6).
        with_joints / with_limbs (`bool`): render joint channels, limb channels, or both (joints first).
        use_score (`bool`): weight each Gaussian by the keypoint score.
        train_size / eval_size (`list[int]`): (H, W) rendered in training (56x56) and in evaluation (64x64).
        layout (`dict`): the joint layout: `num_joints`, `left_joints`, `right_joints`, `limbs` (COCO-17 default).
    """

    model_type = "skeleton_clip_heatmap"
    base_config_key = "heatmap_config"

    sigma: float = 0.6
    with_joints: bool = True
    with_limbs: bool = False
    use_score: bool = True
    train_size: list[int] | tuple[int, int] = (56, 56)
    eval_size: list[int] | tuple[int, int] = (64, 64)
    layout: dict | None = None

    def __post_init__(self, **kwargs):
        self.layout = get_layout(self.layout if self.layout is not None else COCO17).to_dict()
        self.train_size = [int(v) for v in self.train_size]
        self.eval_size = [int(v) for v in self.eval_size]
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        if not (self.with_joints or self.with_limbs):
            raise ValueError("At least one of `with_joints` and `with_limbs` must be True.")
        if self.sigma <= 0:
            raise ValueError(f"`sigma` must be positive, got {self.sigma}.")
        for name in ("train_size", "eval_size"):
            if len(getattr(self, name)) != 2 or min(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` must be (H, W), positive, got {getattr(self, name)}.")

    @property
    def joint_layout(self):
        return get_layout(self.layout)

    def render_kwargs(self) -> dict:
        """The `render_heatmaps` arguments this config fixes (sigma, channels, limbs, scores, flip permutation), so
        that everything rendering for the model renders as the model does."""
        layout = self.joint_layout
        return dict(sigma=self.sigma, with_joints=self.with_joints, with_limbs=self.with_limbs, limbs=layout.limbs,
                    use_score=self.use_score, flip_permutation=layout.flip_permutation())

    @property
    def num_joints(self) -> int:
        return self.layout["num_joints"]

    @property
    def num_channels(self) -> int:
        return self.num_joints * self.with_joints + len(self.layout["limbs"]) * self.with_limbs


@strict
class SkeletonClipConfig(PreTrainedConfig):
    r"""
    [`SkeletonClipConfig`] holds a [`SkeletonClipVideoConfig`] (the PoseC3D SlowOnly encoder), a
    [`SkeletonClipHeatmapConfig`] (how keypoints are rendered) and a [`BertConfig`] (the text encoder), plus the
    projection heads, the temperature, the training objective and the class names.

    Args:
        video_config (`dict` or `SkeletonClipVideoConfig`, *optional*): the video encoder.
        heatmap_config (`dict` or `SkeletonClipHeatmapConfig`, *optional*): the heatmap renderer.
        text_config (`dict` or `BertConfig`, *optional*): the text encoder (default: all-MiniLM-L6-v2's architecture).
        frame_embed_dim (`int`): per-frame feature size after `Linear(512, 768)` (SPEC §4).
        projection_dim (`int`): joint embedding size (256).
        temperature_init / temperature_min / temperature_max (`float`): learnable temperature, clamped each step.
        text_template (`str`): how a class name becomes a text, e.g. "a person doing {}"; "{}" is the bare name.
        text_max_length (`int`): token limit of class texts.
        class_descriptions (`dict[str, list[str]]`, *optional*): several texts per class name (prompt ensembling,
            as CLIP): a class's embedding is the normalised mean of the normalised embeddings of its texts, in
            training and evaluation. Classes without an entry are the `text_template` text of their name. The
            training command stores the descriptions it trained with, so the pipeline scores them by default.
        clip_len (`int`, *optional*): frames per clip the model was trained on (`PoseClipTransform(clip_len=...)`);
            the training command stores it and the `skeleton-action-recognition` pipeline samples clips of this
            length. None in configs saved before the field existed.
        text_encoder_name_or_path (`str`): where the pretrained text encoder came from (informative; weights are
            saved with the model).
        objective (`str`): "itc" (contrastive, default), "itc_itm", "itc_momentum" or "pacl" (SPEC §5).
        video_embedder (`str`, *optional*): how frame features `[B, T', 512]` become `projection_dim` embeddings:
            "projection" (SPEC §4: Linear(512, frame_embed_dim) per frame, temporal mean, Linear(frame_embed_dim,
            projection_dim)), "linear" (Linear(512, projection_dim)) or "residual" (Linear-GELU-Linear plus a linear
            residual, SPEC §5). Default: "residual" for "pacl", "projection" otherwise.
        video_embedder_placement (`str`): "frames" (the embedder runs on every frame, then the temporal mean) or
            "pooled" (the temporal mean first, then the embedder). PACL needs "frames".
        itm_fusion_layers (`int`): BERT layers (self-attention over text, cross-attention to the frames) of the
            "itc_itm" fusion encoder; they take the text encoder's width and heads.
        itm_loss_weight (`float`): total loss = ITC + this x ITM.
        momentum (`float`): "itc_momentum": momentum encoders follow `p_m <- m p_m + (1 - m) p` each step.
        momentum_alpha (`float`): weight of the momentum model's similarities in the distillation targets.
        momentum_queue_size (`int`): features (and labels) kept per modality; a multiple of the global batch.
        momentum_alpha_warmup_steps (`int`): "itc_momentum": alpha rises linearly from 0 to `momentum_alpha` over
            this many training steps (ALBEF: the first epoch); 0 (default, SPEC §5) uses `momentum_alpha` from the
            start. Counted in the model's `momentum_steps` buffer, so it survives checkpoints.
        pacl_weighting (`str`): "softmax" (over frames) or "sigmoid" (`sigmoid(pacl_sigmoid_scale * s)`).
        pacl_sigmoid_scale (`float`): the 10 of `sigmoid(10 s)`.
        pacl_weighted_features (`str`): the weights apply to "normalized" or "raw" per-frame embeddings.
        pacl_training (`str`): "all_classes" (every clip scored against every class text, cross-entropy over the
            classes: the form evaluation uses) or "in_batch" (each clip weighted by its own label text, contrastive
            over the batch).

    Example:

    ```python
    >>> from modeling_skeletonclip import SkeletonClipConfig, SkeletonClipModel
    >>> config = SkeletonClipConfig(id2label={0: "drink water", 1: "eat meal/snack"})
    >>> model = SkeletonClipModel(config)
    ```
    """

    model_type = "skeleton_clip"
    sub_configs_defaults = {
        "video_config": SkeletonClipVideoConfig,
        "heatmap_config": SkeletonClipHeatmapConfig,
        "text_config": SubConfigSpec(config_class=BertConfig, init_kwargs=MINILM_L6_TEXT_CONFIG),
    }

    video_config: dict | SkeletonClipVideoConfig | None = None
    heatmap_config: dict | SkeletonClipHeatmapConfig | None = None
    text_config: dict | BertConfig | None = None
    frame_embed_dim: int = 768
    projection_dim: int = 256
    temperature_init: float = 0.07
    temperature_min: float = 0.001
    temperature_max: float = 0.5
    text_template: str = "{}"
    text_max_length: int = 16
    class_descriptions: dict | None = None
    clip_len: int | None = None
    text_encoder_name_or_path: str | None = DEFAULT_TEXT_ENCODER
    objective: str = "itc"
    initializer_range: float = 0.02
    video_embedder: str | None = None
    video_embedder_placement: str = "frames"
    itm_fusion_layers: int = 2
    itm_loss_weight: float = 1.0
    momentum: float = 0.995
    momentum_alpha: float = 0.4
    momentum_queue_size: int = 65536
    momentum_alpha_warmup_steps: int = 0
    pacl_weighting: str = "softmax"
    pacl_sigmoid_scale: float = 10.0
    pacl_weighted_features: str = "normalized"
    pacl_training: str = "all_classes"

    def __post_init__(self, **kwargs):
        if self.video_embedder is None:
            self.video_embedder = "residual" if self.objective == "pacl" else "projection"
        super().__post_init__(**kwargs)
        # The encoder reads exactly what the renderer writes: keep the channel count in one place.
        channels = self.heatmap_config.num_channels
        if self.video_config.in_channels != channels:
            self.video_config.in_channels = channels

    def validate_architecture(self):
        for name in ("frame_embed_dim", "projection_dim", "text_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
        if self.clip_len is not None and self.clip_len < 1:
            raise ValueError(f"`clip_len` must be positive (or None), got {self.clip_len}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {self.objective!r}.")
        if not 0 < self.temperature_min <= self.temperature_init <= self.temperature_max:
            raise ValueError(
                "Need 0 < temperature_min <= temperature_init <= temperature_max, got "
                f"{self.temperature_min}, {self.temperature_init}, {self.temperature_max}."
            )
        for name, allowed in (
            ("video_embedder", VIDEO_EMBEDDERS),
            ("video_embedder_placement", EMBEDDER_PLACEMENTS),
            ("pacl_weighting", PACL_WEIGHTINGS),
            ("pacl_weighted_features", PACL_WEIGHTED_FEATURES),
            ("pacl_training", PACL_TRAININGS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}.")
        if self.objective == "pacl" and self.video_embedder_placement != "frames":
            raise ValueError(
                "objective 'pacl' weights frames by text: it needs `video_embedder_placement='frames'`, got "
                f"{self.video_embedder_placement!r}."
            )
        if self.itm_fusion_layers < 1:
            raise ValueError(f"`itm_fusion_layers` must be at least 1, got {self.itm_fusion_layers}.")
        if self.itm_loss_weight < 0:
            raise ValueError(f"`itm_loss_weight` must be >= 0, got {self.itm_loss_weight}.")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1), got {self.momentum}.")
        if not 0.0 <= self.momentum_alpha <= 1.0:
            raise ValueError(f"`momentum_alpha` must be in [0, 1], got {self.momentum_alpha}.")
        if self.momentum_alpha_warmup_steps < 0:
            raise ValueError(
                f"`momentum_alpha_warmup_steps` must be >= 0 (0 = no warm-up), got {self.momentum_alpha_warmup_steps}."
            )
        if self.momentum_queue_size < 1:
            raise ValueError(f"`momentum_queue_size` must be positive, got {self.momentum_queue_size}.")
        if self.pacl_sigmoid_scale <= 0:
            raise ValueError(f"`pacl_sigmoid_scale` must be positive, got {self.pacl_sigmoid_scale}.")
        if "{}" not in self.text_template:
            raise ValueError(f"`text_template` must contain '{{}}' where the class name goes, got {self.text_template!r}.")
        if self.class_descriptions is not None:
            problem = class_descriptions_problem(self.class_descriptions)
            if problem is not None:
                raise ValueError(f"`class_descriptions`: {problem}")

    def class_texts(self, names=None) -> list[str]:
        """The texts of the given class names, or of all classes in `id2label` order."""
        if names is None:
            if not self.id2label:
                raise ValueError("The config has no class names (`id2label`); pass the candidate names explicitly.")
            names = [self.id2label[i] for i in range(len(self.id2label))]
        return [self.text_template.format(name) for name in names]

    def class_text_lists(self, names=None, template: str | None = None, descriptions: dict | None = None):
        """The texts of each class (`list[list[str]]`, in `names` order, default all classes of `id2label`): its
        descriptions (`descriptions`, default `class_descriptions`) if it has some, else the one text `template`
        (default `text_template`) makes of its name."""
        if names is None:
            if not self.id2label:
                raise ValueError("The config has no class names (`id2label`); pass the candidate names explicitly.")
            names = [self.id2label[i] for i in range(len(self.id2label))]
        template = self.text_template if template is None else template
        descriptions = (self.class_descriptions or {}) if descriptions is None else descriptions
        return [list(descriptions[name]) if name in descriptions else [template.format(name)] for name in names]


__all__ = ["SkeletonClipConfig", "SkeletonClipHeatmapConfig", "SkeletonClipVideoConfig"]
