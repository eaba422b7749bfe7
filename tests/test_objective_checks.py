"""Defect checks of the training objectives against computations from their definitions: the momentum queue when
it is larger than the training set, the distillation targets and alpha's warm-up, ITM's hard negatives and loss
weight, PACL's frame weights."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_HEATMAP, TINY_TEXT, TINY_VIDEO, heatmaps_for, random_keypoints, token_ids

from modeling_skeletonclip import SkeletonClipConfig, SkeletonClipModel
from modeling_skeletonclip.objectives import (
    distillation_targets,
    pacl_pool,
    planned_training_steps,
    sample_itm_negatives,
    small_training_set_settings,
    small_training_set_warning,
)


pytestmark = pytest.mark.usefixtures("torch_one_thread")

CLASSES = {0: "drink water", 1: "eat meal/snack", 2: "kicking something", 3: "jump up"}


def make_model(objective, seed=0, **kwargs):
    torch.manual_seed(seed)
    config = SkeletonClipConfig(
        video_config=TINY_VIDEO,
        text_config={**TINY_TEXT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        heatmap_config=TINY_HEATMAP, frame_embed_dim=24, projection_dim=16, id2label=CLASSES, objective=objective,
        **kwargs,
    )
    return SkeletonClipModel(config)






def perturb_online_weights(model, seed):
    """An optimizer step's worth of change, so that the momentum copies differ from the online model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


# -- itc_momentum -------------------------------------------------------------------------------------------------


def reference_distillation_side(online, momentum, others, other_labels, labels, tau, alpha, own_as_negative=None):
    """One direction of the distillation loss, row by row from ALBEF's definition with label-aware positives (numpy,
    float64). `own_as_negative[i]`: columns that a defective version would treat as negatives of row i."""
    online, momentum, others = (np.asarray(x, dtype=np.float64) for x in (online, momentum, others))
    keep = other_labels != -100
    total = 0.0
    for i in range(len(online)):
        same = (other_labels == labels[i]) & keep
        if own_as_negative is not None:
            same = same & ~own_as_negative[i]
        sim_m = momentum[i] @ others.T / tau
        soft = np.where(keep, np.exp(sim_m - sim_m[keep].max()), 0.0)
        target = alpha * soft / soft.sum() + (1 - alpha) * same / same.sum()
        logits = online[i] @ others.T / tau
        log_probs = logits - np.log(np.exp(logits[keep] - logits[keep].max()).sum()) - logits[keep].max()
        total -= (target[keep] * log_probs[keep]).sum()
    return total / len(online)


def test_a_queue_larger_than_the_training_set_holds_own_entries_as_positives():
    # 4 clips, a queue of 12 (three times the "training set"), two passes before the one checked: the queue then
    # holds two earlier momentum features of every clip (and of its text).
    model = make_model("itc_momentum", momentum_queue_size=12, momentum=0.9, momentum_alpha=0.4).train()
    heatmaps, labels, ids = heatmaps_for(model, 4), torch.tensor([0, 1, 2, 3]), token_ids(4)
    for step in range(2):
        perturb_online_weights(model, step)
        model(heatmaps=heatmaps, input_ids=ids, labels=labels)
    perturb_online_weights(model, 2)
    queue = {name: getattr(model, name).clone() for name in ("video_queue", "video_queue_labels", "text_queue",
                                                             "text_queue_labels")}
    assert (queue["video_queue_labels"][:8].sort().values == torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).all()
    assert (queue["video_queue_labels"][8:] == -100).all()
    loss = model(heatmaps=heatmaps, input_ids=ids, labels=labels).loss.detach()

    # The third step's features, recomputed after it: its momentum update happened first, and nothing else changed
    # the weights (BatchNorm normalises with the batch's statistics in training mode; no dropout).
    with torch.no_grad():
        video = F.normalize(model.get_video_features(heatmaps=heatmaps).pooler_output, dim=-1)
        text = F.normalize(model.get_text_features(ids).pooler_output, dim=-1)
        video_m = F.normalize(model._video_features(model.momentum_encoders, heatmaps).pooler_output, dim=-1)
        text_m = F.normalize(model._text_features(model.momentum_encoders, input_ids=ids).pooler_output, dim=-1)
    tau, alpha = float(model.temperature.detach()), 0.4
    labels_np = labels.numpy()
    texts_all = np.concatenate([text_m.numpy(), queue["text_queue"].numpy()])
    text_labels_all = np.concatenate([labels_np, queue["text_queue_labels"].numpy()])
    videos_all = np.concatenate([video_m.numpy(), queue["video_queue"].numpy()])
    video_labels_all = np.concatenate([labels_np, queue["video_queue_labels"].numpy()])
    expected = (reference_distillation_side(video.numpy(), video_m.numpy(), texts_all, text_labels_all, labels_np, tau,
                                            alpha)
                + reference_distillation_side(text.numpy(), text_m.numpy(), videos_all, video_labels_all, labels_np,
                                              tau, alpha)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)

    # The defect this rules out: a clip's own earlier entries (queue columns 4.. of its label) taken as negatives.
    own = np.zeros((4, len(video_labels_all)), dtype=bool)
    for i in range(4):
        own[i, 4:] = video_labels_all[4:] == labels_np[i]
    defective = (reference_distillation_side(video.numpy(), video_m.numpy(), texts_all, text_labels_all, labels_np,
                                             tau, alpha, own_as_negative=own)
                 + reference_distillation_side(text.numpy(), text_m.numpy(), videos_all, video_labels_all, labels_np,
                                               tau, alpha, own_as_negative=own)) / 2
    assert abs(defective - expected) > 1e-3


def test_distillation_targets_sum_to_one_and_spread_over_the_label():
    g = torch.Generator().manual_seed(0)
    similarity = torch.randn(3, 9, generator=g) * 4
    rows = torch.tensor([0, 1, 0])
    columns = torch.tensor([0, 1, 0, 2, 0, 1, -100, -100, 2])  # 3 batch columns, then a queue with 2 empty slots
    valid = columns != -100
    for alpha in (0.0, 0.4, 1.0):
        targets = distillation_targets(similarity, rows, columns, valid, alpha)
        torch.testing.assert_close(targets.sum(dim=1), torch.ones(3))
        assert (targets[:, ~valid] == 0).all() and (targets >= 0).all()
        for i in range(3):
            same = ((columns == rows[i]) & valid).double()
            soft = torch.softmax(similarity[i].double().masked_fill(~valid, -math.inf), 0)
            expected = alpha * soft + (1 - alpha) * same / same.sum()
            torch.testing.assert_close(targets[i].double(), expected, rtol=1e-6, atol=1e-7)
    # Label part alone (alpha 0, e.g. the first step of the warm-up): no mass outside the label.
    targets = distillation_targets(similarity, rows, columns, valid, 0.0)
    assert (targets[rows[:, None] != columns[None, :]] == 0).all()
    assert targets[0, [0, 2, 4]].tolist() == pytest.approx([1 / 3] * 3)


def test_alpha_warm_up_reaches_the_loss_from_zero():
    """At the first step with a warm-up, the loss is the pure label-aware one (alpha 0); after it, ALBEF's alpha."""
    model = make_model("itc_momentum", momentum_queue_size=8, momentum_alpha=0.4, momentum_alpha_warmup_steps=2)
    model.train()
    heatmaps, labels, ids = heatmaps_for(model, 4), torch.tensor([0, 1, 2, 0]), token_ids(4)
    expected_alphas = [0.0, 0.2, 0.4, 0.4]
    for step, alpha in enumerate(expected_alphas):
        perturb_online_weights(model, step)
        fixed = copy.deepcopy(model)
        fixed.config.momentum_alpha_warmup_steps, fixed.config.momentum_alpha = 0, alpha
        a = model(heatmaps=heatmaps, input_ids=ids, labels=labels).loss
        b = fixed(heatmaps=heatmaps, input_ids=ids, labels=labels).loss
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# -- itc_itm ------------------------------------------------------------------------------------------------------


def test_itm_negatives_are_drawn_by_similarity_among_other_labels():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 2, 2, 3])
    similarity = torch.randn(6, 6, generator=g) * 2
    draws = 20000  # a row: a binomial standard error below 0.0036
    counts_text = np.zeros((6, 6))  # [clip, text drawn as its negative]
    counts_video = np.zeros((6, 6))  # [text, clip drawn as its negative]
    for _ in range(draws // 100):
        # 100 draws at once: the clips repeated for the negative texts, the texts repeated for the negative clips.
        repeated = labels.repeat(100)
        neg_text, has_text, _, _ = sample_itm_negatives(similarity.repeat(100, 1), repeated, labels, generator=g)
        assert has_text.all() and (labels[neg_text] != repeated).all()
        np.add.at(counts_text, (np.arange(600) % 6, neg_text.numpy()), 1)
        _, _, neg_video, has_video = sample_itm_negatives(similarity.repeat(1, 100), labels, repeated, generator=g)
        assert has_video.all() and (labels[neg_video] != repeated).all()
        np.add.at(counts_video, (np.arange(600) % 6, neg_video.numpy()), 1)
    sim = similarity.double().numpy()
    other = labels.numpy()[:, None] != labels.numpy()[None, :]
    expected_text = np.where(other, np.exp(sim), 0.0)
    expected_text /= expected_text.sum(axis=1, keepdims=True)
    expected_video = np.where(other.T, np.exp(sim.T), 0.0)
    expected_video /= expected_video.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(counts_text / draws, expected_text, atol=0.015)
    np.testing.assert_allclose(counts_video / draws, expected_video, atol=0.015)


def test_itm_loss_from_its_definition_and_its_weight():
    model = make_model("itc_itm", itm_loss_weight=0.25).train()
    heatmaps, labels, ids = heatmaps_for(model, 4), torch.tensor([0, 1, 1, 3]), token_ids(4)
    mask = torch.ones_like(ids)
    torch.manual_seed(5)
    out = model(heatmaps=heatmaps, input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, out.loss_itc + 0.25 * out.loss_itm)

    # The same draw again from its definition: similarity of the online embeddings / temperature, negatives of
    # other labels only, then cross-entropy of the fusion encoder over positives (1) and negatives (0).
    with torch.no_grad():
        video_out = model.get_video_features(heatmaps=heatmaps)
        text_out = model.get_text_features(ids, attention_mask=mask)
        video = F.normalize(video_out.pooler_output, dim=-1)
        text = F.normalize(text_out.pooler_output, dim=-1)
        similarity = video @ text.t() / model.temperature
    torch.manual_seed(5)
    neg_text, _, neg_video, _ = sample_itm_negatives(similarity, labels, labels)
    assert (labels[neg_text] != labels).all() and (labels[neg_video] != labels).all()
    pairs = [(i, i, 1) for i in range(4)] + [(i, int(neg_text[i]), 0) for i in range(4)]
    pairs += [(int(neg_video[j]), j, 0) for j in range(4)]
    with torch.no_grad():
        logits = torch.cat([
            model.fusion_encoder(text_out.last_hidden_state[[t]], mask[[t]], video_out.last_hidden_state[[v]])
            for v, t, _ in pairs
        ])
    expected = F.cross_entropy(logits, torch.tensor([y for _, _, y in pairs]))
    torch.testing.assert_close(out.loss_itm, expected, rtol=1e-5, atol=1e-6)

    # Weight 0: the fusion encoder gets no gradient from the loss.
    model.config.itm_loss_weight = 0.0
    out = model(heatmaps=heatmaps, input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, out.loss_itc)
    out.loss.backward()
    assert all(p.grad is None or (p.grad == 0).all() for p in model.fusion_encoder.parameters())


# -- pacl ---------------------------------------------------------------------------------------------------------


def test_pacl_frame_weights_are_a_softmax_over_frames_of_cosine_similarities():
    model = make_model("pacl").eval()
    keypoints, scores = random_keypoints(3, frames=8)
    texts = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    with torch.no_grad():
        logits, weights = model.score_all_classes(keypoints, scores, class_text_embeds=texts,
                                                  output_frame_weights=True)
        outputs = model.get_video_features(keypoints, scores)
        frames = model.objective.frame_embeddings(model, outputs).double().numpy()  # [3, T', 16]
    assert weights.shape == (3, 4, frames.shape[1]) and frames.shape[1] == 4  # 8 frames, temporal stride 2
    frames_unit = frames / np.linalg.norm(frames, axis=-1, keepdims=True)
    cos = np.einsum("ntd,ld->nlt", frames_unit, texts.double().numpy())
    expected = np.exp(cos) / np.exp(cos).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(weights.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights.sum(dim=-1).numpy(), 1.0, atol=1e-6)
    pooled = np.einsum("nlt,ntd->nld", expected, frames_unit)
    pooled /= np.linalg.norm(pooled, axis=-1, keepdims=True)
    expected_logits = np.einsum("nld,ld->nl", pooled, texts.double().numpy()) / float(model.temperature)
    np.testing.assert_allclose(logits.double().numpy(), expected_logits, rtol=1e-4, atol=1e-5)


def test_pacl_frame_weights_ignore_padded_persons():
    """Clips of a batch are padded with NaN persons (missing): the frame weights of a clip do not change."""
    model = make_model("pacl").eval()
    keypoints, scores = random_keypoints(2, persons=1, frames=8)
    padded_kp = torch.cat([keypoints, torch.full_like(keypoints, float("nan"))], dim=1)  # [2, 2, 8, 17, 2]
    padded_scores = torch.cat([scores, torch.zeros_like(scores)], dim=1)
    texts = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(2)), dim=-1)
    with torch.no_grad():
        _, weights = model.score_all_classes(keypoints, scores, class_text_embeds=texts, output_frame_weights=True)
        _, padded = model.score_all_classes(padded_kp, padded_scores, class_text_embeds=texts,
                                            output_frame_weights=True)
    torch.testing.assert_close(padded, weights, rtol=0, atol=0)


def test_pacl_sigmoid_weights_pool_as_their_normalised_form():
    """Sigmoid weights do not sum to 1 over frames; the pooled feature is normalised, so it equals pooling with the
    weights divided by their sum (the scale of the weights never matters)."""
    g = torch.Generator().manual_seed(3)
    frames = torch.randn(2, 6, 8, generator=g, dtype=torch.float64)
    texts = F.normalize(torch.randn(3, 8, generator=g, dtype=torch.float64), dim=-1)
    pooled, weights = pacl_pool(frames, texts, weighting="sigmoid", sigmoid_scale=10.0)
    cos = torch.einsum("ntd,ld->nlt", F.normalize(frames, dim=-1), texts)
    torch.testing.assert_close(weights, torch.sigmoid(10 * cos))
    normalised = weights / weights.sum(dim=-1, keepdim=True)
    expected = F.normalize(torch.einsum("nlt,ntd->nld", normalised, F.normalize(frames, dim=-1)), dim=-1)
    torch.testing.assert_close(pooled, expected)


# -- the training command's warning for itc_momentum on a small training set -------------------------------------


def test_planned_training_steps_count_as_the_trainer(tmp_path):
    from modeling_skeletonclip.trainer import SkeletonClipTrainingArguments

    def args(**kwargs):
        return SkeletonClipTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kwargs)

    assert planned_training_steps(390, args(per_device_train_batch_size=16, num_train_epochs=2)) == 50
    assert planned_training_steps(390, args(per_device_train_batch_size=16, num_train_epochs=2,
                                            gradient_accumulation_steps=4)) == 14  # 25 batches -> 7 steps an epoch
    assert planned_training_steps(390, args(per_device_train_batch_size=16, max_steps=9)) == 9


def test_small_training_set_warning_for_itc_momentum_only():
    config = SkeletonClipConfig(objective="itc_momentum", momentum=0.995, momentum_queue_size=65536)
    # The synthetic demo's 390 clips for 50 steps: both reasons.
    warning = small_training_set_warning(config, 390, 50)
    assert "50 training steps with momentum 0.995 leave the momentum encoders 78% of their initial weights" in warning
    assert "600 steps for 5 %" in warning and "holds 168 epochs of the training set (390 clips)" in warning
    # It names settings sized to the run: 5 time constants over 50 steps, 4 batches of 16, one epoch of 25 steps.
    assert warning.endswith("""--config_overrides '{"momentum": 0.9, "momentum_queue_size": 64, """
                            """"momentum_alpha_warmup_steps": 25}'; or the objective 'itc'.""")
    assert small_training_set_settings(500, 32, 13) == {
        "momentum": 0.99, "momentum_queue_size": 128, "momentum_alpha_warmup_steps": 13}
    sized = SkeletonClipConfig(objective="itc_momentum", **small_training_set_settings(500, 16, 25))
    assert small_training_set_warning(sized, 390, 500) is None  # the settings it names do not warn again
    # NTU60 XSub (40,320 clips, 1.6 epochs in the queue), 24 epochs of batch 32: no warning.
    assert small_training_set_warning(config, 40320, 24 * 1260) is None
    only_steps = small_training_set_warning(config, 40320, 500)
    assert "500 training steps" in only_steps and "epochs of the training set" not in only_steps
    small_queue = SkeletonClipConfig(objective="itc_momentum", momentum=0.9, momentum_queue_size=32)
    assert small_training_set_warning(small_queue, 390, 50) is None  # 50 x 0.1 = 5 time constants, queue < 1 epoch
    assert small_training_set_warning(SkeletonClipConfig(objective="itc"), 10, 1) is None
