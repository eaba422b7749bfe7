import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import random_keypoints

from modeling_skeletonclip import SkeletonClipForActionRecognition, SkeletonClipModel
from modeling_skeletonclip.trainer import SkeletonClipTrainer, SkeletonClipTrainingArguments


class KeypointClips(torch.utils.data.Dataset):
    """Already-transformed clips: what PoseClipDataset yields."""

    def __init__(self, n, views=1, num_classes=4, seed=0):
        self.keypoints, self.scores = random_keypoints(n, views=views, seed=seed)  # [n, views, M, T, V, (2)]
        self.labels = torch.arange(n) % num_classes

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"keypoints": self.keypoints[i].numpy(), "keypoint_scores": self.scores[i].numpy(),
                "label": int(self.labels[i])}


def args(tmp_path, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path), per_device_eval_batch_size=3, per_device_train_batch_size=4, report_to=[],
        learning_rate=1e-3, weight_decay=0.01, use_cpu=True, disable_tqdm=True,
    )
    return SkeletonClipTrainingArguments(**{**defaults, **kwargs})


def test_optimizer_groups_follow_the_reference_recipe(tmp_path, tiny_config, minilm_tokenizer):
    model = SkeletonClipModel(tiny_config)
    default = SkeletonClipTrainer(model=model, args=args(tmp_path), processing_class=minilm_tokenizer)
    assert {g["name"]: g["lr"] for g in default.create_optimizer().param_groups}["heads"] == pytest.approx(1e-4)
    classifier = SkeletonClipTrainer(model=SkeletonClipForActionRecognition(tiny_config), args=args(tmp_path))
    assert {g["name"]: g["lr"] for g in classifier.create_optimizer().param_groups}["heads"] == pytest.approx(1e-3)
    trainer = SkeletonClipTrainer(model=model, args=args(tmp_path, head_lr_ratio=1.0), processing_class=minilm_tokenizer)
    groups = {g["name"]: g for g in trainer.create_optimizer().param_groups}
    assert set(groups) == {"video_encoder", "video_encoder_no_decay", "text_encoder", "text_encoder_no_decay",
                           "heads", "heads_no_decay"}
    assert groups["video_encoder"]["lr"] == pytest.approx(1e-3)
    assert groups["video_encoder"]["weight_decay"] == pytest.approx(0.01 * 0.9)
    assert groups["text_encoder"]["lr"] == pytest.approx(1e-5)
    assert groups["text_encoder"]["weight_decay"] == pytest.approx(0.01 * 0.9)
    assert groups["heads"]["lr"] == pytest.approx(1e-3) and groups["heads"]["weight_decay"] == pytest.approx(0.01)
    for name in ("video_encoder_no_decay", "text_encoder_no_decay", "heads_no_decay"):
        assert groups[name]["weight_decay"] == 0.0
    ids = lambda name: {id(p) for p in groups[name]["params"]}  # noqa: E731
    assert id(model.temperature) in ids("heads_no_decay")
    assert id(model.video_encoder.conv1.bn.weight) in ids("video_encoder_no_decay")
    assert id(model.text_model.embeddings.LayerNorm.weight) in ids("text_encoder_no_decay")
    assert id(model.text_projection.bias) in ids("heads_no_decay")
    assert id(model.video_encoder.conv1.conv.weight) in ids("video_encoder")
    # Every trainable parameter appears exactly once.
    all_ids = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(all_ids) == sorted(id(p) for p in model.parameters())


def test_frozen_text_encoder_has_no_group_and_no_gradients(tmp_path, tiny_config, minilm_tokenizer):
    model = SkeletonClipModel(tiny_config)
    trainer = SkeletonClipTrainer(model=model, args=args(tmp_path, freeze_text_encoder=True),
                                  processing_class=minilm_tokenizer)
    names = {g["name"] for g in trainer.create_optimizer().param_groups}
    assert not any(n.startswith("text_encoder") for n in names)
    assert not any(p.requires_grad for p in model.text_model.parameters())


def test_warmup_starts_at_a_tenth_then_cosine(tmp_path, tiny_config, minilm_tokenizer):
    trainer = SkeletonClipTrainer(model=SkeletonClipModel(tiny_config), processing_class=minilm_tokenizer,
                                  args=args(tmp_path, lr_scheduler_type="cosine", warmup_steps=10))
    trainer.create_optimizer()
    scheduler = trainer.create_scheduler(100)
    text_group = next(g for g in trainer.optimizer.param_groups if g["name"] == "text_encoder")
    lrs, text_lrs = [], []
    for _ in range(100):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        text_lrs.append(text_group["lr"])
        trainer.optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[5] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lrs[10] == pytest.approx(1e-3)
    assert lrs[55] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.5)))
    np.testing.assert_allclose(np.array(text_lrs), np.array(lrs) * 0.01, rtol=1e-9)  # ratios survive the schedule


def test_evaluation_encodes_class_texts_once_and_averages_views(tmp_path, tiny_config, minilm_tokenizer):
    torch.manual_seed(0)
    model = SkeletonClipModel(tiny_config).eval()
    calls = []
    model.text_model.register_forward_hook(lambda *a: calls.append(1))
    data = KeypointClips(7, views=2)
    trainer = SkeletonClipTrainer(model=model, args=args(tmp_path), processing_class=minilm_tokenizer,
                                  eval_dataset=data)
    output = trainer.predict(data)
    assert len(calls) == 1  # 3 batches, one text-encoder pass for all four class texts
    assert output.predictions.shape == (7, 4)

    # Independent: per-view softmax over all class texts, averaged over views.
    texts = minilm_tokenizer(tiny_config.class_texts(), padding=True, return_tensors="pt")
    with torch.no_grad():
        text = F.normalize(model.get_text_features(**texts).pooler_output, dim=-1)
        video = F.normalize(model.get_video_features(data.keypoints, data.scores).pooler_output, dim=-1)  # views folded
    probs = ((video @ text.t()) / 0.07).softmax(-1).view(7, 2, 4).mean(1)
    np.testing.assert_allclose(np.exp(output.predictions), probs.numpy(), atol=1e-5)
    assert output.metrics["test_loss"] == pytest.approx(F.nll_loss(probs.log(), data.labels).item(), abs=1e-4)


def test_open_vocabulary_candidates(tmp_path, tiny_config, minilm_tokenizer):
    model = SkeletonClipModel(tiny_config).eval()
    data = KeypointClips(5)
    data.labels = torch.zeros(5, dtype=torch.long)
    trainer = SkeletonClipTrainer(model=model, args=args(tmp_path), processing_class=minilm_tokenizer,
                                  class_names=["wave", "sit down", "stand up", "clap", "run", "walk"])
    assert trainer.predict(data).predictions.shape == (5, 6)


def test_classifier_evaluation_averages_probabilities(tmp_path, tiny_config):
    model = SkeletonClipForActionRecognition(tiny_config).eval()
    data = KeypointClips(5, views=3)
    trainer = SkeletonClipTrainer(model=model, args=args(tmp_path))
    output = trainer.predict(data)
    with torch.no_grad():
        logits = model(keypoints=data.keypoints, keypoint_scores=data.scores).logits
    probs = logits.softmax(-1).view(5, 3, 4).mean(1)
    np.testing.assert_allclose(np.exp(output.predictions), probs.numpy(), atol=1e-5)


def test_training_reduces_the_loss(tmp_path, tiny_config, minilm_tokenizer):
    from modeling_skeletonclip import PoseCollator

    torch.manual_seed(0)
    model = SkeletonClipModel(tiny_config)
    data = KeypointClips(16)

    collator = PoseCollator(tokenizer=minilm_tokenizer, class_texts=tiny_config.class_texts())
    trainer = SkeletonClipTrainer(model=model, train_dataset=data, data_collator=collator,
                                  processing_class=minilm_tokenizer,
                                  args=args(tmp_path, num_train_epochs=8, logging_steps=4, save_strategy="no"))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0]
