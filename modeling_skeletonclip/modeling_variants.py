"""Building blocks of the SkeletonCLIP variants (SPEC §5): embedders, PACL frame weighting, the ITM fusion encoder
and negative sampling, and the momentum-distillation (ALBEF-style) encoders, queues and loss.

`modeling_skeletonclip.py` wires these into `SkeletonClipModel`; this file imports nothing from it, so that both
ship together as custom code with `save_pretrained`.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertEncoder


# ----------------------------------------------------------------------------------------------------------------
# Video embedders (SPEC §5, "embedder placement variants")
# ----------------------------------------------------------------------------------------------------------------


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


def build_video_embedder(config) -> nn.Module:
    """The `video_embedder` module for "linear" / "residual" (512 -> projection_dim)."""
    in_features = config.video_config.out_channels
    if config.video_embedder == "residual":
        return SkeletonClipResidualEmbedder(in_features, config.projection_dim)
    return nn.Linear(in_features, config.projection_dim)


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


# ----------------------------------------------------------------------------------------------------------------
# ITM: fusion encoder, head and hard-negative sampling
# ----------------------------------------------------------------------------------------------------------------


class SkeletonClipFusionEncoder(nn.Module):
    """Text tokens attend to themselves (bidirectionally) and to the frame features (cross-attention), BERT layers.

    transformers' BertLayer only builds cross-attention in decoder mode, whose self-attention is causal; the
    self-attention here is made bidirectional (`is_causal = False` and an explicit padding mask).
    """

    def __init__(self, config, frame_feature_dim: int):
        super().__init__()
        text_cfg = config.text_config.to_dict()
        for key in ("is_decoder", "add_cross_attention", "num_hidden_layers", "architectures", "_attn_implementation"):
            text_cfg.pop(key, None)
        self.fusion_config = BertConfig(
            **text_cfg, is_decoder=True, add_cross_attention=True, num_hidden_layers=config.itm_fusion_layers
        )
        self.fusion_config._attn_implementation = "eager"
        hidden = self.fusion_config.hidden_size
        # Frame features enter the cross-attention at the text width.
        self.frame_to_fusion = nn.Linear(frame_feature_dim, hidden) if frame_feature_dim != hidden else nn.Identity()
        self.encoder = BertEncoder(self.fusion_config)
        for layer in self.encoder.layer:
            layer.attention.self.is_causal = False
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
def sample_itm_negatives(
    similarity: torch.Tensor, video_labels: torch.Tensor, text_labels: torch.Tensor, generator=None
):
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


# ----------------------------------------------------------------------------------------------------------------
# Momentum distillation (ALBEF)
# ----------------------------------------------------------------------------------------------------------------


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0 across processes, without gradients (identity on a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(out, tensor.contiguous())
    return torch.cat(out, dim=0)


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


def masked_soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """-mean_i sum_j targets_ij log softmax_j(logits_i) over the valid columns only. valid: `[Ncols]` bool."""
    logits = logits.masked_fill(~valid[None, :], torch.finfo(logits.dtype).min)
    log_probs = F.log_softmax(logits, dim=1).masked_fill(~valid[None, :], 0.0)
    return -(targets * log_probs).sum(dim=1).mean()


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

    def targets(sim_m, labels, labels_all, valid):
        positives = ((labels[:, None] == labels_all[None, :]) & valid[None, :]).to(sim_m.dtype)
        label_aware = positives / positives.sum(dim=1, keepdim=True).clamp_min(1)
        sim_m = sim_m.masked_fill(~valid[None, :], torch.finfo(sim_m.dtype).min)
        return alpha * sim_m.softmax(dim=1) + (1 - alpha) * label_aware

    with torch.no_grad():
        targets_v2t = targets(video_embeds_m @ texts_all.t() / temperature, video_labels, text_labels_all, text_valid)
        targets_t2v = targets(text_embeds_m @ videos_all.t() / temperature, text_labels, video_labels_all, video_valid)
    loss_v2t = masked_soft_cross_entropy(video_embeds @ texts_all.t() / temperature, targets_v2t, text_valid)
    loss_t2v = masked_soft_cross_entropy(text_embeds @ videos_all.t() / temperature, targets_t2v, video_valid)
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


__all__ = [
    "SkeletonClipFusionEncoder",
    "SkeletonClipMomentumEncoders",
    "SkeletonClipResidualEmbedder",
    "build_video_embedder",
    "enqueue",
    "gather_no_grad",
    "momentum_distillation_loss",
    "pacl_pool",
    "sample_itm_negatives",
]
