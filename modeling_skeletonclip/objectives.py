"""The training objectives of `SkeletonClipModel` (SPEC §4-5), one class each.

`SkeletonClipModel.forward` renders heatmaps, encodes clips and texts, and hands the features to the objective that
`config.objective` names; the objective returns the logits and, in training, its loss:

- `ContrastiveObjective` ("itc"): the label-aware symmetric contrastive loss.
- `MatchingObjective` ("itc_itm"): ITC plus image-text matching over hard negatives (a fusion encoder).
- `MomentumDistillationObjective` ("itc_momentum"): ITC with ALBEF's momentum distillation and feature queues.
- `PaclObjective` ("pacl"): clips pooled over frames weighted by their similarity to each text.

Every objective also gives the evaluation scores of clips against all class texts (`class_logits`).

Several texts per class (prompt ensembling, `config.class_descriptions`): the model encodes every description and
hands the objectives one ensemble embedding per text slot (`ensemble_text_embeds`, `ObjectiveInputs.text_groups`),
so the contrastive losses, the momentum targets and PACL's text-conditioned frame weights all see the class
ensemble, as evaluation does. ITM, which reads text tokens, matches each slot through one of its descriptions drawn
at random per step.

An objective is a plain object, not an `nn.Module`: the modules and buffers it needs (the fusion encoder, the
momentum copies and queues) are added to the model under fixed names, so the state-dict keys, and checkpoints, do
not depend on how the objectives are organised in code.
"""

import json
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.bert.modeling_bert import BertEncoder

from .distributed import gather_no_grad, gather_with_grad, world_size


logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Losses shared by the objectives
# ----------------------------------------------------------------------------------------------------------------


def label_aware_targets(row_labels, column_labels, dtype, valid=None) -> torch.Tensor:
    """Soft targets `[R, C]` spread evenly over the columns that share each row's label (SPEC §4).

    `valid` `[C]` (bool) leaves columns out (empty queue slots); a row without any positive is all zeros.
    """
    positives = row_labels[:, None] == column_labels[None, :]
    if valid is not None:
        positives = positives & valid[None, :]
    positives = positives.to(dtype)
    return positives / positives.sum(dim=1, keepdim=True).clamp_min(1)


def soft_cross_entropy(logits, targets, valid=None) -> torch.Tensor:
    """`-mean_i sum_j targets_ij log softmax_j(logits_i)`, over the `valid` `[C]` columns only if given."""
    if valid is None:
        return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    logits = logits.masked_fill(~valid[None, :], torch.finfo(logits.dtype).min)
    log_probs = F.log_softmax(logits, dim=1).masked_fill(~valid[None, :], 0.0)
    return -(targets * log_probs).sum(dim=1).mean()


def label_aware_contrastive_loss(logits_per_video, video_labels, text_labels) -> torch.Tensor:
    """Symmetric cross-entropy against label-aware soft targets (SPEC §4).

    logits_per_video: `[Nv, Nt]`; video_labels: `[Nv]`; text_labels: `[Nt]`.
    """
    dtype = logits_per_video.dtype
    loss_v2t = soft_cross_entropy(logits_per_video, label_aware_targets(video_labels, text_labels, dtype))
    loss_t2v = soft_cross_entropy(logits_per_video.t(), label_aware_targets(text_labels, video_labels, dtype))
    return (loss_v2t + loss_t2v) / 2


def ensemble_text_embeds(text_embeds: torch.Tensor, text_groups: torch.Tensor | None, num_groups: int) -> torch.Tensor:
    """CLIP's prompt ensembling: the normalised mean of the normalised embeddings of each group's texts.

    text_embeds: `[N_text, D]` normalised; text_groups: `[N_text]`, the group (class slot) of each text, every group
    in `0..num_groups-1` holding at least one text. Returns `[num_groups, D]` (`text_embeds` itself when
    `text_groups` is None). A group of one text is that text's embedding exactly (no second normalisation
    rounding), so one description per class reproduces the plain path bit for bit. Differentiable: gradients reach
    every text of a group.
    """
    if text_groups is None:
        return text_embeds
    counts = torch.bincount(text_groups, minlength=num_groups)  # [G]
    sums = text_embeds.new_zeros(num_groups, text_embeds.shape[1]).index_add(0, text_groups, text_embeds)  # [G, D]
    means = F.normalize(sums / counts.clamp_min(1)[:, None].to(sums.dtype), dim=-1)
    return torch.where((counts == 1)[:, None], sums, means)


def check_text_groups(text_groups: torch.Tensor, num_texts: int, num_groups: int):
    """Raises a ValueError unless `text_groups` `[num_texts]` assigns every text a group in `0..num_groups-1` and
    every group at least one text."""
    if text_groups.dim() != 1 or text_groups.shape[0] != num_texts:
        raise ValueError(f"`text_groups` must have one group index per text ({num_texts}), got shape "
                         f"{list(text_groups.shape)}.")
    if text_groups.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"`text_groups` must hold integer group indices, got {text_groups.dtype}.")
    if num_texts and (int(text_groups.min()) < 0 or int(text_groups.max()) >= num_groups):
        raise ValueError(f"`text_groups` must index {num_groups} groups (the clips, or `text_labels`), got values "
                         f"{int(text_groups.min())}..{int(text_groups.max())}.")
    empty = (torch.bincount(text_groups, minlength=num_groups) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"`text_groups` gives groups {empty[:10]} no text; every group needs at least one.")


def flatten_class_texts(class_text_lists) -> tuple[list[str], list[int]]:
    """`[[texts of class 0], [texts of class 1], ...]` as one list of texts and the class index of each."""
    texts, groups = [], []
    for index, class_texts in enumerate(class_text_lists):
        texts.extend(class_texts)
        groups.extend([index] * len(class_texts))
    return texts, groups


def one_text_per_group(text_groups: torch.Tensor, num_groups: int, generator=None) -> torch.Tensor:
    """`[num_groups]`: one text of each group drawn uniformly at random (the text index)."""
    keys = torch.rand(text_groups.shape[0], device=text_groups.device, generator=generator)  # [N_text]
    best = keys.new_full((num_groups,), -1.0).scatter_reduce(0, text_groups, keys, "amax")
    chosen = torch.zeros(num_groups, dtype=torch.long, device=text_groups.device)
    winners = (keys == best[text_groups]).nonzero().flatten()  # the text of largest key in each group
    chosen[text_groups[winners]] = winners
    return chosen


# ----------------------------------------------------------------------------------------------------------------
# What the model hands an objective, and what it gets back
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ObjectiveInputs:
    """The features of one forward call.

    heatmaps: `[Nv, C, T, H, W]` the rendered clips (views folded into the batch; momentum encoders re-encode them).
    video_outputs / text_outputs: the encoders' outputs (`get_video_features` / `get_text_features`).
    video_embeds / text_embeds: normalised `[Nv, D]` / `[Nt, D]`; with `text_groups`, text `j` is the ensemble
        (`ensemble_text_embeds`) of the texts of group `j`.
    text_inputs: `input_ids`, `attention_mask`, `token_type_ids` of the texts (of every description).
    text_groups: `[N_descriptions]` the group (text slot) of each encoded text, or None (one text per slot).
    video_labels / text_labels: `[Nv]` / `[Nt]` when a loss is asked for, else None.
    views: clip views per label (`Nv / B`), None without labels.
    return_loss: whether to compute the loss.
    """

    heatmaps: torch.Tensor
    video_outputs: BaseModelOutputWithPooling
    text_outputs: BaseModelOutputWithPooling
    video_embeds: torch.Tensor
    text_embeds: torch.Tensor
    text_inputs: dict
    video_labels: torch.Tensor | None
    text_labels: torch.Tensor | None
    views: int | None
    return_loss: bool
    text_groups: torch.Tensor | None = None


@dataclass
class ObjectiveOutput:
    logits_per_video: torch.Tensor  # [Nv, Nt]
    video_embeds: torch.Tensor  # [Nv, D] the clip embeddings the logits were computed from
    loss: torch.Tensor | None = None
    loss_itc: torch.Tensor | None = None
    loss_itm: torch.Tensor | None = None
    itm_logits: torch.Tensor | None = None
    frame_weights: torch.Tensor | None = None


def paired_text_index(num_videos, views, num_texts, what) -> torch.Tensor:
    """`[Nv]`: the text of each clip view when texts are paired with clips (text `i` for clip `i`'s views)."""
    if views is None or num_texts * views != num_videos:
        raise ValueError(
            f"{what} pairs text i with clip i: pass one text per clip (got {num_texts} texts for {num_videos} "
            "clip views)."
        )
    return torch.arange(num_videos) // views


# ----------------------------------------------------------------------------------------------------------------
# ITC
# ----------------------------------------------------------------------------------------------------------------


class ContrastiveObjective:
    """"itc": every clip view against every text, label-aware symmetric cross-entropy (SPEC §4).

    In training on several processes (and `model.gather_features_across_processes`), the loss spans the clips and
    texts of every process.
    """

    name = "itc"
    logged_loss_parts = ()  # parts of the loss worth logging beside it (here: the loss is its only part)

    def add_modules(self, model):
        """Adds the objective's own modules and buffers to `model` (before its weights are initialised)."""

    def init_weights(self, model):
        """`_init_weights` of the model itself: (re)sets what `add_modules` added."""

    def after_init(self, model):
        """After the model's weights are initialised or its text encoder is loaded."""

    def from_text_encoder(self, model):
        """After `from_text_pretrained` loaded a pretrained text encoder into the model."""
        self.after_init(model)

    def training_inputs(self, model, inputs: dict, tokenizer) -> dict:
        """The batch as the objective trains on it (default: as collated)."""
        return inputs

    def logits(self, model, batch: ObjectiveInputs) -> ObjectiveOutput:
        return ObjectiveOutput(model.logits(batch.video_embeds, batch.text_embeds), batch.video_embeds)

    def contrastive_loss(self, model, batch: ObjectiveInputs, result: ObjectiveOutput) -> torch.Tensor:
        if model.training and model.gather_features_across_processes and world_size() > 1:
            logits = model.logits(gather_with_grad(result.video_embeds), gather_with_grad(batch.text_embeds))
            return label_aware_contrastive_loss(
                logits, gather_no_grad(batch.video_labels), gather_no_grad(batch.text_labels)
            )
        return label_aware_contrastive_loss(result.logits_per_video, batch.video_labels, batch.text_labels)

    def loss(self, model, batch: ObjectiveInputs, result: ObjectiveOutput) -> ObjectiveOutput:
        result.loss_itc = result.loss = self.contrastive_loss(model, batch, result)
        return result

    def __call__(self, model, batch: ObjectiveInputs) -> ObjectiveOutput:
        result = self.logits(model, batch)
        return self.loss(model, batch, result) if batch.return_loss else result

    def class_logits(self, model, video_outputs, class_text_embeds):
        """`(logits [N, L], frame weights or None)` of every clip against every (normalised) class text."""
        video_embeds = F.normalize(video_outputs.pooler_output, dim=-1)
        return model.logits(video_embeds, class_text_embeds), None


# ----------------------------------------------------------------------------------------------------------------
# ITC + ITM
# ----------------------------------------------------------------------------------------------------------------


class SkeletonClipFusionEncoder(nn.Module):
    """Text tokens attend to themselves (bidirectionally) and to the frame features (cross-attention), BERT layers;
    a 2-way matching head on the first token.

    transformers' BertLayer only builds cross-attention in decoder mode, whose self-attention is causal; the
    self-attention here is made bidirectional (`is_causal = False` and an explicit padding mask).

    The attention layers run the text encoder's attention implementation: they read `config.text_config`, where
    `from_pretrained(..., attn_implementation=...)` and `set_attn_implementation` set it ("sdpa" by default,
    "eager" on request).
    """

    def __init__(self, config, frame_feature_dim: int):
        super().__init__()
        text_cfg = config.text_config.to_dict()
        for key in ("is_decoder", "add_cross_attention", "num_hidden_layers", "architectures", "_attn_implementation"):
            text_cfg.pop(key, None)
        self.fusion_config = BertConfig(
            **text_cfg, is_decoder=True, add_cross_attention=True, num_hidden_layers=config.itm_fusion_layers
        )
        hidden = self.fusion_config.hidden_size
        # Frame features enter the cross-attention at the text width.
        self.frame_to_fusion = nn.Linear(frame_feature_dim, hidden) if frame_feature_dim != hidden else nn.Identity()
        self.encoder = BertEncoder(self.fusion_config)
        for layer in self.encoder.layer:
            layer.attention.self.is_causal = False
            # The attention function is looked up in the attention module's config on every call: the text
            # encoder's, so that a change of implementation reaches both.
            layer.attention.self.config = config.text_config
            layer.crossattention.self.config = config.text_config
        self.itm_head = nn.Linear(hidden, 2)

    def forward(self, text_hidden, text_mask, frame_features) -> torch.Tensor:
        """text_hidden `[K, L, H]`, text_mask `[K, L]` (1 = token), frame_features `[K, T', F]` -> logits `[K, 2]`."""
        memory = self.frame_to_fusion(frame_features)  # [K, T', H]
        if text_mask is None:
            text_mask = torch.ones(text_hidden.shape[:2], device=text_hidden.device)
        dtype = text_hidden.dtype
        additive = (1.0 - text_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min  # [K, 1, 1, L]
        hidden = self.encoder(text_hidden, attention_mask=additive, encoder_hidden_states=memory).last_hidden_state
        return self.itm_head(hidden[:, 0])  # first token


@torch.no_grad()
def sample_itm_negatives(similarity: torch.Tensor, video_labels: torch.Tensor, text_labels: torch.Tensor,
                         generator=None):
    """One hard negative per clip (a text) and per text (a clip), drawn with probability softmax(similarity) over
    the entries of another label (same-label entries have probability 0).

    similarity: `[Nv, Nt]`. Returns `(negative_text [Nv], has_negative_text [Nv], negative_video [Nt],
    has_negative_video [Nt])`; a row without any entry of another label has no negative.
    """
    same = video_labels[:, None] == text_labels[None, :]  # [Nv, Nt]
    similarity = similarity.float()

    def draw(sim, mask):
        valid = (~mask).any(dim=1)
        index = torch.zeros(sim.shape[0], dtype=torch.long, device=sim.device)
        if valid.any():
            # A softmax restricted to the other labels: the same distribution as zeroing same-label entries of the
            # full softmax and renormalising, without underflow at small temperatures.
            probs = sim[valid].masked_fill(mask[valid], float("-inf")).softmax(dim=1)
            index[valid] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return index, valid

    negative_text, has_text = draw(similarity, same)
    negative_video, has_video = draw(similarity.t(), same.t())
    return negative_text, has_text, negative_video, has_video


class MatchingObjective(ContrastiveObjective):
    """"itc_itm": ITC + `itm_loss_weight` x ITM in training (texts paired with clips), as ALBEF/BLIP.

    ITM classifies (clip, text) pairs as matching or not with `model.fusion_encoder`: the B positive pairs, one
    hard negative text per clip and one hard negative clip per text. `logits_per_video` stay contrastive. With
    several descriptions per class the fusion encoder reads the tokens of one description of the slot, drawn
    uniformly per step (a fresh sample of the class's texts, like a random prompt per clip).
    """

    name = "itc_itm"
    logged_loss_parts = ("loss_itc", "loss_itm")

    def add_modules(self, model):
        model.fusion_encoder = SkeletonClipFusionEncoder(model.config, model.frame_feature_dim)

    def from_text_encoder(self, model):
        # As ALBEF: the fusion layers start from the text encoder's last layers (cross-attention from scratch).
        text_layers = model.text_model.encoder.layer
        fusion_layers = model.fusion_encoder.encoder.layer
        offset = len(text_layers) - len(fusion_layers)
        for i, layer in enumerate(fusion_layers):
            if offset + i >= 0:
                layer.load_state_dict(text_layers[offset + i].state_dict(), strict=False)

    def loss(self, model, batch, result):
        result = super().loss(model, batch, result)
        if model.training:
            result.loss_itm, result.itm_logits = self.itm_loss(model, batch)
            result.loss = result.loss_itc + model.config.itm_loss_weight * result.loss_itm
        return result

    @staticmethod
    def itm_scores(model, batch, video_index, text_index) -> torch.Tensor:
        """Matching logits `[K, 2]` (column 1: "matches") of clip `video_index[k]` with text `text_index[k]`."""
        attention_mask = batch.text_inputs.get("attention_mask")
        text_hidden = batch.text_outputs.last_hidden_state[text_index]
        text_mask = attention_mask[text_index] if attention_mask is not None else None
        return model.fusion_encoder(text_hidden, text_mask, batch.video_outputs.last_hidden_state[video_index])

    def itm_loss(self, model, batch):
        """Cross-entropy over the positive pairs and the sampled negatives: `(loss, logits [K, 2])`.

        A batch whose clips all share one label has no negatives: the loss is 0.
        """
        video_embeds, text_embeds = batch.video_embeds, batch.text_embeds
        device = video_embeds.device
        num_videos, num_texts = video_embeds.shape[0], text_embeds.shape[0]
        pos_text = paired_text_index(num_videos, batch.views, num_texts, "ITM").to(device)
        with torch.no_grad():
            # The temperature was clamped by this forward's logits; clamping again in place would break autograd.
            similarity = video_embeds @ text_embeds.t() / model.temperature  # [Nv, Nt]
        neg_text, has_neg_text, neg_video, has_neg_video = sample_itm_negatives(
            similarity, batch.video_labels, batch.text_labels
        )
        if not (has_neg_text.any() or has_neg_video.any()):
            # No negatives: a zero loss that still reaches every ITM parameter (DDP expects gradients for them).
            zero = sum(p.sum() for p in model.fusion_encoder.parameters() if p.requires_grad) * 0.0
            return zero, None
        videos = torch.arange(num_videos, device=device)
        texts = torch.arange(num_texts, device=device)
        video_index = torch.cat([videos, videos[has_neg_text], neg_video[has_neg_video]])
        text_index = torch.cat([pos_text, neg_text[has_neg_text], texts[has_neg_video]])
        targets = torch.cat(
            [
                torch.ones(num_videos, dtype=torch.long, device=device),
                torch.zeros(int(has_neg_text.sum()) + int(has_neg_video.sum()), dtype=torch.long, device=device),
            ]
        )
        if batch.text_groups is not None and batch.text_groups.shape[0] != num_texts:
            # An ensemble has no tokens of its own: each text slot is matched through one of its descriptions, drawn
            # at random per step (the hard negatives are still chosen by the ensemble embeddings).
            text_index = one_text_per_group(batch.text_groups, num_texts)[text_index]
        logits = self.itm_scores(model, batch, video_index, text_index)
        return F.cross_entropy(logits.float(), targets), logits


# ----------------------------------------------------------------------------------------------------------------
# ITC with momentum distillation (ALBEF)
# ----------------------------------------------------------------------------------------------------------------


class SkeletonClipMomentumEncoders(nn.Module):
    """Momentum copies of the video encoder, video head, text encoder and text projection (no gradients).

    The attribute names equal those of the online model, so one feature function serves both.
    """

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self.requires_grad_(False)

    @torch.no_grad()
    def copy_from(self, online: nn.Module):
        for name, module in self.named_children():
            module.load_state_dict(getattr(online, name).state_dict())

    @torch.no_grad()
    def momentum_update(self, online: nn.Module, momentum: float):
        """p_m <- m p_m + (1 - m) p for every parameter (buffers such as BN statistics follow their own forwards)."""
        for name, module in self.named_children():
            online_params = [p.detach() for p in getattr(online, name).parameters()]
            momentum_params = list(module.parameters())
            torch._foreach_mul_(momentum_params, momentum)
            torch._foreach_add_(momentum_params, online_params, alpha=1.0 - momentum)


def distillation_targets(similarity_m, row_labels, column_labels, valid, alpha) -> torch.Tensor:
    """`[R, C]`: `alpha * softmax(momentum similarities) + (1 - alpha) * label-aware targets` over the `valid`
    `[C]` columns (empty queue slots get 0). Every row sums to 1 where it has a positive; a column of the row's label
    (the clip's own earlier queue entries included) is a positive, never a negative."""
    label_aware = label_aware_targets(row_labels, column_labels, similarity_m.dtype, valid)
    similarity_m = similarity_m.masked_fill(~valid[None, :], torch.finfo(similarity_m.dtype).min)
    return alpha * similarity_m.softmax(dim=1) + (1 - alpha) * label_aware


def momentum_distillation_loss(
    video_embeds, text_embeds, video_embeds_m, text_embeds_m, video_labels, text_labels,
    video_queue, video_queue_labels, text_queue, text_queue_labels, temperature, alpha,
) -> torch.Tensor:
    """ALBEF's ITA with momentum distillation and label-aware targets.

    Online clips are scored against the momentum texts of the batch plus the text queue (and online texts against
    momentum clips plus the clip queue). Targets: `alpha * softmax(momentum similarities) + (1 - alpha) * S`, where
    `S` spreads over every batch or queue entry with the same label. Queue entries with label -100 are empty and
    take part in nothing.
    """
    texts_all = torch.cat([text_embeds_m, text_queue.to(text_embeds_m.dtype)])  # [Nt + K, D]
    videos_all = torch.cat([video_embeds_m, video_queue.to(video_embeds_m.dtype)])  # [Nv + K, D]
    text_labels_all = torch.cat([text_labels, text_queue_labels])
    video_labels_all = torch.cat([video_labels, video_queue_labels])
    text_valid = text_labels_all != -100
    video_valid = video_labels_all != -100
    with torch.no_grad():
        targets_v2t = distillation_targets(
            video_embeds_m @ texts_all.t() / temperature, video_labels, text_labels_all, text_valid, alpha
        )
        targets_t2v = distillation_targets(
            text_embeds_m @ videos_all.t() / temperature, text_labels, video_labels_all, video_valid, alpha
        )
    loss_v2t = soft_cross_entropy(video_embeds @ texts_all.t() / temperature, targets_v2t, text_valid)
    loss_t2v = soft_cross_entropy(text_embeds @ videos_all.t() / temperature, targets_t2v, video_valid)
    return (loss_v2t + loss_t2v) / 2


@torch.no_grad()
def enqueue(queue: torch.Tensor, queue_labels: torch.Tensor, pointer: torch.Tensor, features, labels):
    """Writes `features` / `labels` at `pointer` (wrapping around) and advances it, in place."""
    size = queue.shape[0]
    n = features.shape[0]
    index = (pointer + torch.arange(n, device=queue.device)) % size
    queue[index] = features.detach().to(queue.dtype)
    queue_labels[index] = labels.to(queue_labels.dtype)
    pointer.copy_((pointer + n) % size)


# Momentum copies follow `p_m <- m p_m + (1 - m) p`: after N steps they keep m^N ~ exp(-N (1 - m)) of their initial
# weights. Below this many time constants 1 / (1 - m) over the whole run (m^N above e^-3 ~ 5 %), the distillation
# targets come mostly from a barely trained momentum model for most of the training.
MIN_MOMENTUM_TIME_CONSTANTS = 3.0
# A queue of at least this many epochs of the training set holds every clip's own features from earlier epochs
# (ALBEF's queue holds ~1 % of its data; NTU60 XSub's 40k clips in 65536 slots are 1.6 epochs, below this).
MAX_QUEUE_EPOCHS = 2.0


def planned_training_steps(num_train_samples: int, training_args) -> int:
    """Optimizer steps of a run as the Trainer counts them: `max_steps`, else epochs x steps per epoch."""
    if training_args.max_steps > 0:
        return training_args.max_steps
    epoch_steps = steps_per_epoch(num_train_samples, global_batch_size(training_args),
                                  training_args.gradient_accumulation_steps)
    return math.ceil(training_args.num_train_epochs * epoch_steps)


def global_batch_size(training_args) -> int:
    return training_args.per_device_train_batch_size * max(training_args.world_size, 1)


def steps_per_epoch(num_train_samples: int, global_batch: int, gradient_accumulation_steps: int = 1) -> int:
    """Optimizer steps of an epoch as the Trainer counts them."""
    return max(math.ceil(math.ceil(num_train_samples / global_batch) / gradient_accumulation_steps), 1)


def small_training_set_settings(num_training_steps: int, global_batch: int, epoch_steps: int) -> dict:
    """Momentum settings for a short run: five time constants of the momentum over the run (0.99 for 500 steps), a
    queue of four global batches, the distillation weight warmed up over the first epoch (measured on the synthetic
    set against the reference's settings: docs/benchmarks.md)."""
    momentum = max(0.9, min(0.995, round(1.0 - 5.0 / max(num_training_steps, 1), 3)))
    return {"momentum": momentum, "momentum_queue_size": 4 * global_batch, "momentum_alpha_warmup_steps": epoch_steps}


def small_training_set_warning(config, num_train_samples: int, num_training_steps: int, global_batch: int = 16,
                               epoch_steps: int | None = None) -> str | None:
    """A warning for "itc_momentum" on a training run too short or a training set too small for its momentum
    encoders and queue (ALBEF's 0.995 and 65536 are sized for millions of image-text pairs), else None. It ends
    with the `small_training_set_settings` of the run as a `--config_overrides` value."""
    if getattr(config, "objective", None) != "itc_momentum":
        return None
    problems = []
    constants = num_training_steps * (1.0 - config.momentum)
    if constants < MIN_MOMENTUM_TIME_CONSTANTS:
        problems.append(
            f"{num_training_steps} training steps with momentum {config.momentum} leave the momentum encoders "
            f"{config.momentum ** num_training_steps:.0%} of their initial weights at the end (a run needs "
            f"{MIN_MOMENTUM_TIME_CONSTANTS / (1 - config.momentum):.0f} steps for 5 %)"
        )
    if config.momentum_queue_size >= MAX_QUEUE_EPOCHS * num_train_samples:
        problems.append(
            f"the queue ({config.momentum_queue_size}) holds {config.momentum_queue_size / num_train_samples:.0f} "
            f"epochs of the training set ({num_train_samples} clips): every clip's own features from earlier "
            "epochs fill it (as positives of its label)"
        )
    if not problems:
        return None
    if epoch_steps is None:
        epoch_steps = steps_per_epoch(num_train_samples, global_batch)
    settings = json.dumps(small_training_set_settings(num_training_steps, global_batch, epoch_steps))
    return ("itc_momentum on this training set: " + "; ".join(problems) + ". The distillation targets then come "
            "mostly from a barely trained momentum model. Settings sized to this run (measured against the "
            "reference's on the synthetic set in docs/benchmarks.md): --config_overrides "
            f"'{settings}'; or the objective 'itc'.")


def warn_small_training_set(config, num_train_samples: int, training_args) -> str | None:
    """Logs `small_training_set_warning` for a run of the training command (and returns it)."""
    global_batch = global_batch_size(training_args)
    warning = small_training_set_warning(
        config, num_train_samples, planned_training_steps(num_train_samples, training_args), global_batch,
        steps_per_epoch(num_train_samples, global_batch, training_args.gradient_accumulation_steps),
    )
    if warning:
        logger.warning(warning)
    return warning


class MomentumDistillationObjective(ContrastiveObjective):
    """"itc_momentum": ITC with momentum distillation over the batch plus queues of earlier momentum features.

    In training each call first updates the momentum encoders (`model.momentum_encoders`), computes the loss, then
    enqueues the momentum features of every process. The queues (`model.video_queue`, ...) and the step count that
    drives alpha's warm-up are model buffers, saved with checkpoints.
    """

    name = "itc_momentum"
    logged_loss_parts = ("loss_itc",)

    def __init__(self):
        self._largest_queued_batch = 0  # the queue size is checked against full batches (not a trailing one)

    def add_modules(self, model):
        config = model.config
        model.momentum_encoders = SkeletonClipMomentumEncoders(
            {
                "video_encoder": type(model.video_encoder)(config.video_config),
                **model.build_video_head(),
                "text_model": BertModel(config.text_config, add_pooling_layer=False),
                "text_projection": nn.Linear(config.text_config.hidden_size, config.projection_dim),
            }
        )
        size, dim = config.momentum_queue_size, config.projection_dim
        model.register_buffer("video_queue", torch.zeros(size, dim))
        model.register_buffer("video_queue_labels", torch.full((size,), -100, dtype=torch.long))
        model.register_buffer("video_queue_ptr", torch.zeros((), dtype=torch.long))
        model.register_buffer("text_queue", torch.zeros(size, dim))
        model.register_buffer("text_queue_labels", torch.full((size,), -100, dtype=torch.long))
        model.register_buffer("text_queue_ptr", torch.zeros((), dtype=torch.long))
        # Training steps taken with the momentum loss: drives the alpha warm-up and resumes with a checkpoint.
        model.register_buffer("momentum_steps", torch.zeros((), dtype=torch.long))

    def init_weights(self, model):
        # Momentum copies start equal to the online model (only where the checkpoint did not provide them).
        for name, child in model.momentum_encoders.named_children():
            online = dict(getattr(model, name).state_dict(keep_vars=True))
            for key, tensor in child.state_dict(keep_vars=True).items():
                init.copy_(tensor, online[key])
        init.zeros_(model.video_queue)
        init.zeros_(model.text_queue)
        init.constant_(model.video_queue_labels, -100)
        init.constant_(model.text_queue_labels, -100)
        init.zeros_(model.video_queue_ptr)
        init.zeros_(model.text_queue_ptr)
        init.zeros_(model.momentum_steps)

    def after_init(self, model):
        model.momentum_encoders.copy_from(model)

    def loss(self, model, batch, result):
        """ITC with momentum distillation; in training, updates the momentum encoders first and the queues after."""
        config = model.config
        momentum = model.momentum_encoders
        update = model.training
        text_inputs = batch.text_inputs
        with torch.no_grad():
            if update:
                momentum.momentum_update(model, config.momentum)
            video_m = F.normalize(model._video_features(momentum, batch.heatmaps).pooler_output, dim=-1)
            text_m = F.normalize(model._text_features(momentum, **text_inputs).pooler_output, dim=-1)
            text_m = ensemble_text_embeds(text_m, batch.text_groups, batch.text_embeds.shape[0])  # as the online texts
        loss = momentum_distillation_loss(
            result.video_embeds, batch.text_embeds, video_m, text_m, batch.video_labels, batch.text_labels,
            model.video_queue.clone(), model.video_queue_labels.clone(), model.text_queue.clone(),
            model.text_queue_labels.clone(), model.temperature, self.momentum_alpha(model),  # clamped by the logits
        )
        if update:
            self._dequeue_and_enqueue(model, video_m, batch.video_labels, text_m, batch.text_labels)
            model.momentum_steps.add_(1)
        result.loss_itc = result.loss = loss
        return result

    @staticmethod
    def momentum_alpha(model) -> float | torch.Tensor:
        """The distillation weight of this step: ALBEF ramps it linearly from 0 over the first
        `momentum_alpha_warmup_steps` training steps (the momentum model is as untrained as the online one there).
        During the ramp it is a 0-d tensor computed on the buffer's device (no host sync per step)."""
        warmup = model.config.momentum_alpha_warmup_steps
        if warmup <= 0:
            return model.config.momentum_alpha
        return model.config.momentum_alpha * (model.momentum_steps.float() / warmup).clamp(max=1.0)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, model, video_m, video_labels, text_m, text_labels):
        """Adds the momentum features and labels of every process to the queues (overwriting the oldest)."""
        video_m, video_labels = gather_no_grad(video_m), gather_no_grad(video_labels)
        text_m, text_labels = gather_no_grad(text_m), gather_no_grad(text_labels)
        size = model.config.momentum_queue_size
        batch = max(video_m.shape[0], text_m.shape[0])
        if batch > size or (batch >= self._largest_queued_batch and size % batch != 0):
            raise ValueError(
                f"momentum_queue_size ({size}) must be a multiple of the global batch ({batch} clips or texts over "
                "all processes); change one of them (a smaller last batch of an epoch is fine)."
            )
        self._largest_queued_batch = max(self._largest_queued_batch, batch)
        enqueue(model.video_queue, model.video_queue_labels, model.video_queue_ptr, video_m, video_labels)
        enqueue(model.text_queue, model.text_queue_labels, model.text_queue_ptr, text_m, text_labels)


# ----------------------------------------------------------------------------------------------------------------
# PACL: text-conditioned frame weighting
# ----------------------------------------------------------------------------------------------------------------


def pacl_pool(
    frame_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    weighting: str = "softmax",
    sigmoid_scale: float = 10.0,
    weighted_features: str = "normalized",
    pair_index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights the frames of every clip by their cosine similarity to a text and pools them.

    frame_embeds: `[N, T', D]` per-frame embeddings; text_embeds: `[L, D]` normalised text embeddings.
    Without `pair_index`, every clip is pooled for every text: returns `([N, L, D], [N, L, T'])`.
    With `pair_index` `[N]` (the text of each clip), each clip is pooled for its own text: `([N, D], [N, T'])`.
    The pooled features are normalised.
    """
    frames = F.normalize(frame_embeds, dim=-1)  # [N, T', D]
    texts = text_embeds.to(frames.dtype)
    if pair_index is None:
        similarity = torch.einsum("ntd,ld->nlt", frames, texts)  # [N, L, T']: s_bt = cos(f_bt, e)
    else:
        similarity = torch.einsum("ntd,nd->nt", frames, texts[pair_index]).unsqueeze(1)  # [N, 1, T']
    if weighting == "softmax":
        weights = similarity.softmax(dim=-1)
    else:
        weights = torch.sigmoid(sigmoid_scale * similarity)
    source = frames if weighted_features == "normalized" else frame_embeds
    pooled = F.normalize(torch.bmm(weights, source), dim=-1)  # [N, L or 1, D]
    if pair_index is not None:
        return pooled.squeeze(1), weights.squeeze(1)
    return pooled, weights


class PaclObjective(ContrastiveObjective):
    """"pacl": `logits_per_video[i, j]` scores clip `i` pooled over frames weighted by text `j`.

    Training, by `pacl_training`:
    - "all_classes": every clip against every class text (the Trainer's batches carry all class texts, see
      `training_inputs`), cross-entropy over the texts spread over those sharing the clip's label: the form
      evaluation uses.
    - "in_batch": clip `i` weighted by its own text `i // views` only, scored against every text; contrastive loss.

    With several descriptions per class, frames are weighted by the class ensemble embedding in both forms (as in
    evaluation, which only has the ensembles).
    """

    name = "pacl"
    logged_loss_parts = ("loss_itc",)

    def __init__(self):
        self._class_text_inputs = None  # "all_classes": the tokenized class texts, cached

    def in_batch(self, model, batch) -> bool:
        return model.training and batch.return_loss and model.config.pacl_training == "in_batch"

    def training_inputs(self, model, inputs, tokenizer):
        """"all_classes": the batch's paired texts replaced by the texts of every class (with their labels)."""
        if model.config.pacl_training != "all_classes":
            return inputs
        if self._class_text_inputs is None:
            if tokenizer is None:
                raise ValueError("PACL with pacl_training='all_classes' needs the tokenizer as `processing_class`.")
            config = model.config
            if config.class_descriptions:  # several texts per class: their ensembles are the class texts
                texts, groups = flatten_class_texts(config.class_text_lists())
                extra = {"text_groups": torch.tensor(groups), "text_labels": torch.arange(len(config.id2label))}
            else:
                texts = config.class_texts()
                extra = {"text_labels": torch.arange(len(texts))}
            tokens = tokenizer(
                texts, padding=True, truncation=True, max_length=config.text_max_length, return_tensors="pt"
            )
            self._class_text_inputs = {**dict(tokens), **extra}
        text_keys = ("input_ids", "attention_mask", "token_type_ids", "text_labels", "text_groups")
        device = inputs["labels"].device
        inputs = {k: v for k, v in inputs.items() if k not in text_keys}
        inputs.update({k: v.to(device) for k, v in self._class_text_inputs.items()})
        return inputs

    @staticmethod
    def frame_embeddings(model, video_outputs) -> torch.Tensor:
        """Per-frame embeddings in the joint space `[N, T', projection_dim]` (what PACL weights)."""
        if model.config.video_embedder == "projection":
            # Linear heads commute with the temporal mean: the frame-wise projection pools to the clip feature.
            return model.video_projection(video_outputs.last_hidden_state)
        return video_outputs.last_hidden_state

    def pool(self, model, video_outputs, text_embeds, pair_index=None):
        """Clip features weighted over frames by each text (see `pacl_pool`)."""
        config = model.config
        return pacl_pool(
            self.frame_embeddings(model, video_outputs),
            text_embeds,
            weighting=config.pacl_weighting,
            sigmoid_scale=config.pacl_sigmoid_scale,
            weighted_features=config.pacl_weighted_features,
            pair_index=pair_index,
        )

    def class_logits(self, model, video_outputs, class_text_embeds):
        """All-class PACL logits `[N, L]` and frame weights `[N, L, T']`."""
        pooled, weights = self.pool(model, video_outputs, class_text_embeds)  # [N, L, D], [N, L, T']
        logits = (pooled * class_text_embeds.to(pooled.dtype)[None]).sum(dim=-1) / model.clamped_temperature()
        return logits, weights

    def logits(self, model, batch):
        if self.in_batch(model, batch):
            num_videos, num_texts = batch.video_embeds.shape[0], batch.text_embeds.shape[0]
            pair_index = paired_text_index(num_videos, batch.views, num_texts, "pacl_training='in_batch'")
            own, weights = self.pool(
                model, batch.video_outputs, batch.text_embeds, pair_index=pair_index.to(batch.text_embeds.device)
            )  # [Nv, D], [Nv, T']
            logits = model.logits(own, batch.text_embeds)  # [Nv, N_text]
            return ObjectiveOutput(logits, own, frame_weights=weights[:, None])  # [Nv, 1, T']: the own text's
        logits, weights = self.class_logits(model, batch.video_outputs, batch.text_embeds)
        return ObjectiveOutput(logits, batch.video_embeds, frame_weights=weights)

    def loss(self, model, batch, result):
        if self.in_batch(model, batch):
            loss = label_aware_contrastive_loss(result.logits_per_video, batch.video_labels, batch.text_labels)
        else:
            # Every clip against every text (all class texts in training): cross-entropy over the texts, spread
            # over texts that share the clip's label.
            logits = result.logits_per_video
            loss = soft_cross_entropy(logits, label_aware_targets(batch.video_labels, batch.text_labels, logits.dtype))
        result.loss_itc = result.loss = loss
        return result


OBJECTIVES = {
    objective.name: objective
    for objective in (ContrastiveObjective, MatchingObjective, MomentumDistillationObjective, PaclObjective)
}


__all__ = [
    "OBJECTIVES",
    "ContrastiveObjective",
    "MatchingObjective",
    "MomentumDistillationObjective",
    "ObjectiveInputs",
    "ObjectiveOutput",
    "PaclObjective",
    "SkeletonClipFusionEncoder",
    "SkeletonClipMomentumEncoders",
    "check_text_groups",
    "distillation_targets",
    "enqueue",
    "ensemble_text_embeds",
    "flatten_class_texts",
    "label_aware_contrastive_loss",
    "label_aware_targets",
    "momentum_distillation_loss",
    "one_text_per_group",
    "pacl_pool",
    "sample_itm_negatives",
    "planned_training_steps",
    "small_training_set_settings",
    "small_training_set_warning",
    "soft_cross_entropy",
    "warn_small_training_set",
]
