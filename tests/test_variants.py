"""The objective-selected variants (SPEC §5): PACL, ITM, momentum distillation, embedder placement."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_HEATMAP, TINY_TEXT, TINY_VIDEO, heatmaps_for, random_keypoints, token_ids

from modeling_skeletonclip import SkeletonClipConfig, SkeletonClipModel
from modeling_skeletonclip.objectives import momentum_distillation_loss, sample_itm_negatives

CLASSES = {0: "drink water", 1: "eat meal/snack", 2: "kicking something", 3: "jump up"}


def make_config(objective="itc", **kwargs):
    return SkeletonClipConfig(
        video_config=TINY_VIDEO,
        text_config={**TINY_TEXT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        heatmap_config=TINY_HEATMAP,
        frame_embed_dim=24,
        projection_dim=16,
        id2label=CLASSES,
        objective=objective,
        **kwargs,
    )


def make_model(objective="itc", seed=0, **kwargs):
    torch.manual_seed(seed)
    return SkeletonClipModel(make_config(objective, **kwargs))






# -- config -----------------------------------------------------------------------------------------------------


def test_config_fields_defaults_validation_and_round_trip():
    config = SkeletonClipConfig()
    assert (config.video_embedder, config.video_embedder_placement) == ("projection", "frames")
    assert (config.momentum, config.momentum_alpha, config.momentum_queue_size) == (0.995, 0.4, 65536)
    assert (config.pacl_weighting, config.pacl_weighted_features, config.pacl_training) == (
        "softmax", "normalized", "all_classes")
    assert SkeletonClipConfig(objective="pacl").video_embedder == "residual"
    for bad in (
        {"objective": "mystery"},
        {"video_embedder": "mlp"},
        {"video_embedder_placement": "middle"},
        {"objective": "pacl", "video_embedder_placement": "pooled"},
        {"pacl_weighting": "max"},
        {"pacl_weighted_features": "both"},
        {"pacl_training": "sometimes"},
        {"momentum": 1.0},
        {"momentum_alpha": 1.5},
        {"momentum_queue_size": 0},
        {"itm_fusion_layers": 0},
    ):
        with pytest.raises(Exception, match=next(iter(bad))):
            SkeletonClipConfig(**bad)
    config = make_config("pacl", pacl_weighting="sigmoid", pacl_training="in_batch")
    again = SkeletonClipConfig.from_dict(config.to_dict())
    assert (again.objective, again.video_embedder, again.pacl_weighting, again.pacl_training) == (
        "pacl", "residual", "sigmoid", "in_batch")


# -- embedders ----------------------------------------------------------------------------------------------------


def test_embedder_kinds_and_placements_against_direct_computation():
    heatmaps = None
    for embedder in ("linear", "residual"):
        outputs = {}
        for placement in ("frames", "pooled"):
            model = make_model(video_embedder=embedder, video_embedder_placement=placement).eval()
            if embedder == "residual":  # large enough weights for GELU to be visibly nonlinear
                with torch.no_grad():
                    model.video_embedder.fc1.weight.normal_(0, 1, generator=torch.Generator().manual_seed(3))
            heatmaps = heatmaps_for(model, 2) if heatmaps is None else heatmaps
            with torch.no_grad():
                out = model.get_video_features(heatmaps=heatmaps)
                frames = model.video_encoder(heatmaps).mean(dim=(3, 4)).transpose(1, 2)  # [N, T', 512]
                e = model.video_embedder
                if embedder == "residual":
                    apply = lambda x: e.fc2(F.gelu(e.fc1(x))) + e.residual(x)  # noqa: E731
                else:
                    apply = e
                expected = apply(frames).mean(1) if placement == "frames" else apply(frames.mean(1))
            assert not hasattr(model, "frame_projection")
            torch.testing.assert_close(out.pooler_output, expected)
            width = 16 if placement == "frames" else 128
            assert out.last_hidden_state.shape == (2, 4, width)
            outputs[placement] = out.pooler_output
        if embedder == "linear":  # a linear embedder commutes with the temporal mean (same seed = same weights)
            torch.testing.assert_close(outputs["frames"], outputs["pooled"], rtol=1e-4, atol=1e-5)
        else:
            assert not torch.allclose(outputs["frames"], outputs["pooled"], atol=1e-4)


# -- PACL ---------------------------------------------------------------------------------------------------------


def pacl_reference(frames, texts, temperature, weighting, weighted):
    """Loop form of SPEC §5: s_bt = cos(f_bt, e); weights; weighted sum over t; normalise; cosine / tau."""
    n, t, _ = frames.shape
    logits = torch.zeros(n, texts.shape[0])
    weights = torch.zeros(n, texts.shape[0], t)
    for b in range(n):
        for l in range(texts.shape[0]):
            s = torch.stack([F.cosine_similarity(frames[b, i], texts[l], dim=0) for i in range(t)])
            a = torch.softmax(s, 0) if weighting == "softmax" else torch.sigmoid(10 * s)
            g = F.normalize(frames[b], dim=-1) if weighted == "normalized" else frames[b]
            v = F.normalize((a[:, None] * g).sum(0), dim=0)
            logits[b, l] = v @ texts[l] / temperature
            weights[b, l] = a
    return logits, weights


@pytest.mark.parametrize("weighting,weighted", [("softmax", "normalized"), ("sigmoid", "raw")])
def test_pacl_all_class_logits_and_weights_against_loop(weighting, weighted):
    model = make_model("pacl", pacl_weighting=weighting, pacl_weighted_features=weighted).eval()
    heatmaps = heatmaps_for(model, 3)
    texts = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    with torch.no_grad():
        logits, weights = model.score_all_classes(heatmaps=heatmaps, class_text_embeds=texts, output_frame_weights=True)
        frames = model.get_video_features(heatmaps=heatmaps).last_hidden_state  # residual embedder per frame
    expected_logits, expected_weights = pacl_reference(frames, texts, model.temperature.item(), weighting, weighted)
    assert logits.shape == (3, 4) and weights.shape == (3, 4, 4)  # [B, L, T']
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-5, atol=1e-6)
    if weighting == "softmax":
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    else:
        assert not torch.allclose(weights.sum(-1), torch.ones(3, 4))


def test_pacl_training_logits_equal_evaluation_logits():
    # "all_classes": every clip against every class text; the training logits are the evaluation logits.
    model = make_model("pacl").train()
    heatmaps = heatmaps_for(model, 3)
    labels = torch.tensor([2, 0, 2])
    class_ids = token_ids(4)
    out = model(heatmaps=heatmaps, input_ids=class_ids, labels=labels, text_labels=torch.arange(4),
                output_frame_weights=True)
    with torch.no_grad():
        evaluation = model.score_all_classes(heatmaps=heatmaps, class_text_embeds=out.text_embeds)
    torch.testing.assert_close(out.logits_per_video, evaluation)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits_per_video, labels))
    assert out.frame_weights.shape == (3, 4, 4)
    out.loss.backward()
    assert model.video_embedder.fc1.weight.grad.abs().sum() > 0 and model.text_projection.weight.grad.abs().sum() > 0

    # "in_batch": clip i weighted by its own text i; its logit for that text equals the evaluation logit.
    model = make_model("pacl", pacl_training="in_batch").train()
    paired = class_ids[labels]
    out = model(heatmaps=heatmaps, input_ids=paired, labels=labels, output_frame_weights=True)
    with torch.no_grad():
        evaluation = model.score_all_classes(heatmaps=heatmaps, class_text_embeds=out.text_embeds)
    torch.testing.assert_close(out.logits_per_video.diagonal(), evaluation.diagonal())
    assert out.frame_weights.shape == (3, 1, 4)
    assert torch.isfinite(out.loss)


def test_pacl_with_the_projection_head_pools_to_the_clip_feature():
    model = make_model("pacl", video_embedder="projection").eval()
    heatmaps = heatmaps_for(model, 2)
    with torch.no_grad():
        outputs = model.get_video_features(heatmaps=heatmaps)
        frames = model.objective.frame_embeddings(model, outputs)
    torch.testing.assert_close(frames.mean(1), outputs.pooler_output, rtol=1e-5, atol=1e-6)


# -- ITM ----------------------------------------------------------------------------------------------------------


def test_itm_negatives_never_share_the_label_and_follow_the_similarity():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 2, 2, 3])
    for _ in range(50):
        similarity = torch.randn(6, 6, generator=g) * 5
        neg_text, has_text, neg_video, has_video = sample_itm_negatives(similarity, labels, labels, generator=g)
        assert has_text.all() and has_video.all()
        assert (labels[neg_text] != labels).all() and (labels[neg_video] != labels).all()
    # A dominant similarity among the allowed entries is drawn (almost) always; same-label entries never.
    similarity = torch.zeros(6, 6)
    similarity[0, 5] = 20.0
    similarity[0, 1] = 50.0  # same label as clip 0: must not be drawn
    draws = [sample_itm_negatives(similarity, labels, labels, generator=g)[0][0].item() for _ in range(50)]
    assert draws.count(5) >= 49
    # Every label equal: nobody has a negative.
    same = torch.zeros(3, dtype=torch.long)
    _, has_text, _, has_video = sample_itm_negatives(torch.randn(3, 3), same, same)
    assert not has_text.any() and not has_video.any()


def test_itm_loss_pairs_batch_of_one_and_single_label():
    model = make_model("itc_itm").train()
    heatmaps = heatmaps_for(model, 4)
    labels = torch.tensor([0, 1, 1, 3])
    ids = token_ids(4)
    out = model(heatmaps=heatmaps, input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    assert out.itm_logits.shape == (12, 2)  # B positives + B negative texts + B negative clips
    assert torch.isfinite(out.loss_itm) and out.loss_itm > 0
    torch.testing.assert_close(out.loss, out.loss_itc + out.loss_itm)
    targets = torch.tensor([1] * 4 + [0] * 8)
    torch.testing.assert_close(out.loss_itm, F.cross_entropy(out.itm_logits, targets))
    out.loss.backward()
    assert model.fusion_encoder.itm_head.weight.grad.abs().sum() > 0
    assert model.fusion_encoder.encoder.layer[0].crossattention.self.key.weight.grad.abs().sum() > 0

    for batch_labels in (torch.tensor([2]), torch.tensor([1, 1, 1])):
        model.zero_grad()
        n = len(batch_labels)
        out = model(heatmaps=heatmaps[:n], input_ids=ids[:n], labels=batch_labels)
        assert out.loss_itm.item() == 0.0 and torch.isfinite(out.loss)
        out.loss.backward()  # no error; ITM parameters get (zero) gradients
        assert model.fusion_encoder.itm_head.weight.grad is not None


def test_itm_fusion_text_attention_is_bidirectional_and_masks_padding():
    model = make_model("itc_itm").eval()
    fusion = model.fusion_encoder
    g = torch.Generator().manual_seed(0)
    text = torch.randn(1, 5, 32, generator=g)
    frames = torch.randn(1, 4, 24, generator=g)  # frame_embed_dim 24 -> projected to the text width 32
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    with torch.no_grad():
        base = fusion(text, mask, frames)
        later = text.clone()
        later[0, 3] += 1.0  # a later real token changes the first token's output (no causal mask)
        padded = text.clone()
        padded[0, 4] += 1.0  # a padded token does not
        other_frames = frames + 1.0
        assert not torch.allclose(fusion(later, mask, frames), base)
        torch.testing.assert_close(fusion(padded, mask, frames), base)
        assert not torch.allclose(fusion(text, mask, other_frames), base)


def test_itm_and_momentum_evaluate_with_contrastive_logits():
    for objective in ("itc_itm", "itc_momentum"):
        model = make_model(objective, momentum_queue_size=8).eval()
        heatmaps = heatmaps_for(model, 2)
        texts = F.normalize(torch.randn(4, 16), dim=-1)
        with torch.no_grad():
            video = F.normalize(model.get_video_features(heatmaps=heatmaps).pooler_output, dim=-1)
            torch.testing.assert_close(
                model.score_all_classes(heatmaps=heatmaps, class_text_embeds=texts), video @ texts.t() / 0.07
            )


# -- momentum distillation ---------------------------------------------------------------------------------------


def test_momentum_distillation_loss_against_explicit_computation():
    g = torch.Generator().manual_seed(0)
    unit = lambda *shape: F.normalize(torch.randn(*shape, generator=g), dim=-1)  # noqa: E731
    v, t, v_m, t_m = unit(3, 8), unit(3, 8), unit(3, 8), unit(3, 8)
    labels = torch.tensor([0, 1, 0])
    vq, tq = unit(5, 8), unit(5, 8)
    vq_labels = torch.tensor([1, 0, -100, -100, 2])
    tq_labels = torch.tensor([0, -100, 2, 1, -100])
    tau, alpha = 0.1, 0.4
    loss = momentum_distillation_loss(v, t, v_m, t_m, labels, labels, vq, vq_labels, tq, tq_labels, tau, alpha)

    def one_side(online, momentum, others, other_labels):
        keep = other_labels != -100  # empty queue slots are dropped
        others, other_labels = others[keep], other_labels[keep]
        total = 0.0
        for i in range(3):
            same = (other_labels == labels[i]).float()
            target = alpha * torch.softmax(momentum[i] @ others.t() / tau, 0) + (1 - alpha) * same / same.sum()
            total += -(target * torch.log_softmax(online[i] @ others.t() / tau, 0)).sum()
        return total / 3

    expected_v2t = one_side(v, v_m, torch.cat([t_m, tq]), torch.cat([labels, tq_labels]))
    expected_t2v = one_side(t, t_m, torch.cat([v_m, vq]), torch.cat([labels, vq_labels]))
    torch.testing.assert_close(loss, (expected_v2t + expected_t2v) / 2)


def momentum_step(model, heatmaps, labels, ids):
    return model(heatmaps=heatmaps, input_ids=ids, labels=labels)


def test_momentum_update_rule_and_no_gradients():
    model = make_model("itc_momentum", momentum_queue_size=8, momentum=0.9).train()
    assert not any(p.requires_grad for p in model.momentum_encoders.parameters())
    for (name, p), (_, p_m) in zip(model.video_projection.named_parameters(),
                                   model.momentum_encoders.video_projection.named_parameters()):
        torch.testing.assert_close(p, p_m, msg=name)  # momentum copies start equal
    with torch.no_grad():  # make the online weights differ from the momentum copies
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.01)
    online = {k: v.detach().clone() for k, v in model.named_parameters() if not k.startswith("momentum_encoders.")}
    before = {k: v.detach().clone() for k, v in model.momentum_encoders.named_parameters()}
    out = momentum_step(model, heatmaps_for(model, 4), torch.tensor([0, 1, 2, 3]), token_ids(4))
    out.loss.backward()
    for name, p_m in model.momentum_encoders.named_parameters():
        torch.testing.assert_close(p_m, 0.9 * before[name] + 0.1 * online[name], msg=name)
        assert p_m.grad is None
    assert model.text_projection.weight.grad is not None


def test_queue_fills_wraps_around_and_checks_its_size():
    model = make_model("itc_momentum", momentum_queue_size=8).train()
    assert (model.video_queue_labels == -100).all() and model.video_queue_ptr.item() == 0
    ids = token_ids(4)
    batches = [(heatmaps_for(model, 4, seed=s), torch.tensor([s, s + 1, s + 2, s + 3]) % 4) for s in range(3)]
    for step, (heatmaps, labels) in enumerate(batches):
        momentum_step(model, heatmaps, labels, ids)
        assert model.video_queue_ptr.item() == model.text_queue_ptr.item() == (4 * (step + 1)) % 8
    # After 3 batches of 4 in a queue of 8, slots 0-3 hold batch 3 (wrapped), slots 4-7 hold batch 2.
    heatmaps, labels = batches[2]
    with torch.no_grad():
        expected = F.normalize(model._video_features(model.momentum_encoders, heatmaps).pooler_output, dim=-1)
    torch.testing.assert_close(model.video_queue[:4], expected)
    torch.testing.assert_close(model.video_queue_labels, torch.cat([batches[2][1], batches[1][1]]))
    torch.testing.assert_close(model.text_queue_labels, torch.cat([batches[2][1], batches[1][1]]))
    # A trailing smaller batch (end of an epoch) wraps around too.
    momentum_step(model, heatmaps[:2], labels[:2], ids[:2])
    assert model.video_queue_ptr.item() == 6
    # Evaluation-mode calls neither update nor enqueue.
    model.eval()
    with torch.no_grad():
        momentum_step(model, heatmaps, labels, ids)
    assert model.video_queue_ptr.item() == 6
    # A queue that is not a multiple of the batch is refused.
    model = make_model("itc_momentum", momentum_queue_size=6).train()
    with pytest.raises(ValueError, match="multiple of the global batch"):
        momentum_step(model, heatmaps, labels, ids)


def test_momentum_alpha_warms_up_linearly_like_albef():
    import copy

    model = make_model("itc_momentum", momentum_queue_size=8, momentum_alpha_warmup_steps=4).train()
    ids, labels = token_ids(4), torch.tensor([0, 1, 2, 0])
    alphas = []
    for step in range(6):
        alphas.append(float(model.objective.momentum_alpha(model)))
        # The same step with a fixed alpha (no warm-up) gives the same loss.
        fixed = copy.deepcopy(model)
        fixed.config.momentum_alpha_warmup_steps = 0
        fixed.config.momentum_alpha = alphas[-1]
        heatmaps = heatmaps_for(model, 4, seed=step)
        torch.testing.assert_close(momentum_step(model, heatmaps, labels, ids).loss,
                                   momentum_step(fixed, heatmaps, labels, ids).loss, rtol=0, atol=0)
    assert alphas == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4])
    assert model.momentum_steps.item() == 6
    model.eval()  # evaluation does not advance the warm-up
    with torch.no_grad():
        momentum_step(model, heatmaps, labels, ids)
    assert model.momentum_steps.item() == 6
    with pytest.raises(Exception, match="momentum_alpha_warmup_steps"):  # strict dataclass validation error
        make_config("itc_momentum", momentum_alpha_warmup_steps=-1)


def test_momentum_checkpoint_resumes_exactly(tmp_path):
    model = make_model("itc_momentum", momentum_queue_size=12).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids = token_ids(4)
    for s in range(2):
        loss = momentum_step(model, heatmaps_for(model, 4, seed=s), torch.tensor([0, 1, 2, s % 4]), ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(tmp_path)
    loaded = SkeletonClipModel.from_pretrained(tmp_path).train()
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert set(state) == set(loaded_state)
    assert {"video_queue", "video_queue_labels", "video_queue_ptr", "text_queue", "text_queue_ptr",
            "momentum_steps"} <= set(state)
    assert loaded.momentum_steps.item() == 2
    for name in state:
        torch.testing.assert_close(state[name], loaded_state[name], rtol=0, atol=0, msg=name)
    assert loaded.video_queue_ptr.item() == 8 and (loaded.video_queue_labels[:8] != -100).all()
    assert (loaded.text_queue_labels[8:] == -100).all()
    heatmaps, labels = heatmaps_for(model, 4, seed=7), torch.tensor([3, 2, 1, 0])
    a = momentum_step(model, heatmaps, labels, ids).loss
    b = momentum_step(loaded, heatmaps, labels, ids).loss
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(model.text_queue, loaded.text_queue, rtol=0, atol=0)


def test_momentum_copies_initialise_from_an_itc_checkpoint(tmp_path):
    """Converting a plain checkpoint: the missing momentum weights start as copies, the queues empty."""
    make_model("itc").save_pretrained(tmp_path)
    model = SkeletonClipModel.from_pretrained(tmp_path, objective="itc_momentum", momentum_queue_size=8)
    for name, p_m in model.momentum_encoders.named_parameters():
        torch.testing.assert_close(p_m, model.get_parameter(name), rtol=0, atol=0, msg=name)
    assert (model.text_queue_labels == -100).all() and model.text_queue_ptr.item() == 0


# -- saving, remote code, the trainer -------------------------------------------------------------------------------


def test_variants_reload_through_trust_remote_code(tmp_path):
    keypoints, scores = random_keypoints(2)
    ids = token_ids(4)
    expected = {}
    for objective in ("itc_itm", "itc_momentum", "pacl"):
        model = make_model(objective, momentum_queue_size=8).eval()
        model.save_pretrained(tmp_path / objective)
        with torch.no_grad():
            texts = F.normalize(model.get_text_features(ids).pooler_output, dim=-1)
            expected[objective] = model.score_all_classes(keypoints, scores, class_text_embeds=texts)
    torch.save({"keypoints": keypoints, "scores": scores, "ids": ids, "expected": expected}, tmp_path / "x.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch, torch.nn.functional as F
        from transformers import AutoModel
        x = torch.load({str(tmp_path / 'x.pt')!r})
        for objective, expected in x["expected"].items():
            model = AutoModel.from_pretrained({str(tmp_path)!r} + "/" + objective, trust_remote_code=True).eval()
            assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
            assert model.config.objective == objective
            with torch.no_grad():
                texts = F.normalize(model.get_text_features(x["ids"]).pooler_output, dim=-1)
                got = model.score_all_classes(x["keypoints"], x["scores"], class_text_embeds=texts)
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
        assert "modeling_skeletonclip" not in sys.modules
        print("ok")
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"objectives.py", "distributed.py"} <= set(os.listdir(tmp_path / "pacl"))


@pytest.mark.parametrize("objective", ["itc_itm", "itc_momentum", "pacl"])
def test_trainer_trains_logs_parts_and_evaluates(tmp_path, objective, minilm_tokenizer):
    from test_trainer import KeypointClips, args

    from modeling_skeletonclip import PoseCollator
    from modeling_skeletonclip.trainer import SkeletonClipTrainer

    model = make_model(objective, momentum_queue_size=8)
    config = model.config
    collator = PoseCollator(tokenizer=minilm_tokenizer, class_texts=config.class_texts())
    seen_texts = []
    original_forward = model.forward

    def spy(**kwargs):
        seen_texts.append(kwargs["input_ids"].shape[0])
        return original_forward(**kwargs)

    model.forward = spy
    trainer = SkeletonClipTrainer(
        model=model, train_dataset=KeypointClips(8), eval_dataset=KeypointClips(3, views=2, seed=1),
        data_collator=collator, eval_data_collator=PoseCollator(), processing_class=minilm_tokenizer,
        args=args(tmp_path, max_steps=2, logging_steps=1, save_strategy="no", per_device_train_batch_size=2),
    )
    groups = trainer.create_optimizer().param_groups
    optimised = {id(p) for g in groups for p in g["params"]}
    if objective == "itc_momentum":
        assert not optimised & {id(p) for p in model.momentum_encoders.parameters()}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all("loss_itc" in h for h in logs)
    if objective == "itc_itm":
        assert all("loss_itm" in h for h in logs)
        assert logs[0]["loss"] == pytest.approx(logs[0]["loss_itc"] + logs[0]["loss_itm"], abs=2e-3)
    # PACL's all-class training sees every class text each step; the others the texts of their batch of 2.
    assert seen_texts == ([4, 4] if objective == "pacl" else [2, 2])
    metrics = trainer.evaluate()
    assert seen_texts == ([4, 4] if objective == "pacl" else [2, 2])  # evaluation goes through score_all_classes
    assert metrics["eval_loss"] > 0 and metrics["eval_loss"] < 10
