import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import pyskl_mirror, random_keypoints

from modeling_skeletonclip import (
    SkeletonClipConfig,
    SkeletonClipForActionRecognition,
    SkeletonClipModel,
)
from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipVideoEncoder


def test_full_size_encoder_topology():
    config = SkeletonClipConfig(video_config={"conv_impl": "conv3d"})  # module by module, so hooks see each stage
    encoder = SkeletonClipVideoEncoder(config.video_config).eval()
    assert sum(p.numel() for p in encoder.parameters()) == 1_994_080  # 1.99 M (SPEC §3)
    shapes = {}
    for name in ("conv1", "layer1", "layer2", "layer3"):
        getattr(encoder, name).register_forward_hook(lambda m, i, o, name=name: shapes.update({name: o.shape}))
    with torch.no_grad():
        out = encoder(torch.randn(1, 17, 48, 56, 56))
    assert out.shape == (1, 512, 24, 7, 7)
    assert shapes["conv1"] == (1, 32, 48, 56, 56)
    assert shapes["layer1"] == (1, 128, 48, 28, 28)
    assert shapes["layer2"] == (1, 256, 48, 14, 14)
    assert shapes["layer3"] == (1, 512, 24, 7, 7)
    # Stage 1 is not inflated, stages 2-3 are (3x1x1 conv1); strides sit on conv2.
    assert encoder.layer1[1].conv1.conv.kernel_size == (1, 1, 1)
    assert encoder.layer2[0].conv1.conv.kernel_size == (3, 1, 1)
    assert encoder.layer3[0].conv2.conv.stride == (2, 2, 2)
    assert encoder.layer2[0].conv2.conv.stride == (1, 2, 2)
    assert encoder.conv1.conv.kernel_size == (1, 7, 7)
    assert [len(encoder.layer1), len(encoder.layer2), len(encoder.layer3)] == [4, 6, 3]
    encoder.config.conv_impl = "fast"  # the default path: same parameters, same function
    with torch.no_grad():
        fast = encoder(torch.randn(1, 17, 48, 56, 56, generator=torch.Generator().manual_seed(0)))
        encoder.config.conv_impl = "conv3d"
        plain = encoder(torch.randn(1, 17, 48, 56, 56, generator=torch.Generator().manual_seed(0)))
    assert fast.shape == (1, 512, 24, 7, 7)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)


def test_init_follows_pyskl(tiny_config):
    model = SkeletonClipForActionRecognition(tiny_config)
    assert torch.all(model.video_encoder.layer1[0].conv3.bn.weight == 0)  # zero-init residual
    assert torch.all(model.video_encoder.layer1[0].conv2.bn.weight == 1)
    assert model.classifier.weight.std().item() == pytest.approx(0.01, rel=0.3)
    contrastive = SkeletonClipModel(tiny_config)
    assert contrastive.temperature.item() == pytest.approx(0.07)


def test_forward_shapes_and_loss_matches_independent_computation(tiny_config):
    torch.manual_seed(0)
    model = SkeletonClipModel(tiny_config).train()
    keypoints, scores = random_keypoints(4, persons=2)
    labels = torch.tensor([0, 1, 0, 2])
    input_ids = torch.randint(1000, 2000, (4, 6))
    out = model(keypoints=keypoints, keypoint_scores=scores, input_ids=input_ids, labels=labels)
    assert out.logits_per_video.shape == (4, 4)
    assert out.video_embeds.shape == (4, 16) and out.text_embeds.shape == (4, 16)
    assert out.video_model_output.last_hidden_state.shape == (4, 4, 24)  # [B, T'=T/2, frame_embed_dim]

    # Independent recomputation from the returned logits: loops, no broadcasting tricks.
    logits = out.logits_per_video.detach().double()
    n = len(labels)
    loss_v2t = 0.0
    for i in range(n):
        positives = [j for j in range(n) if labels[i] == labels[j]]
        log_probs = logits[i] - torch.logsumexp(logits[i], 0)
        loss_v2t += -sum(log_probs[j].item() for j in positives) / len(positives)
    loss_t2v = 0.0
    for j in range(n):
        positives = [i for i in range(n) if labels[i] == labels[j]]
        log_probs = logits[:, j] - torch.logsumexp(logits[:, j], 0)
        loss_t2v += -sum(log_probs[i].item() for i in positives) / len(positives)
    expected = (loss_v2t / n + loss_t2v / n) / 2
    assert out.loss.item() == pytest.approx(expected, abs=1e-5)
    out.loss.backward()
    assert model.temperature.grad is not None
    assert model.video_encoder.conv1.conv.weight.grad.abs().sum() > 0


def test_logits_are_cosine_over_temperature(tiny_config):
    model = SkeletonClipModel(tiny_config).eval()
    keypoints, scores = random_keypoints(3)
    input_ids = torch.randint(1000, 2000, (2, 5))
    with torch.no_grad():
        out = model(keypoints=keypoints, keypoint_scores=scores, input_ids=input_ids)
        video = model.get_video_features(keypoints, scores).pooler_output
        text = model.get_text_features(input_ids).pooler_output
    cos = F.normalize(video, dim=-1) @ F.normalize(text, dim=-1).t()
    torch.testing.assert_close(out.logits_per_video, cos / 0.07, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.logits_per_text, out.logits_per_video.t())
    assert out.loss is None


def test_temperature_is_clamped(tiny_config):
    model = SkeletonClipModel(tiny_config)
    with torch.no_grad():
        model.temperature.fill_(5.0)
    model.logits(torch.ones(1, 16), torch.ones(1, 16))
    assert model.temperature.item() == pytest.approx(0.5)
    with torch.no_grad():
        model.temperature.fill_(1e-6)
    model.logits(torch.ones(1, 16), torch.ones(1, 16))
    assert model.temperature.item() == pytest.approx(0.001)


def test_views_fold_into_batch_and_heatmaps_match_keypoints(tiny_config):
    model = SkeletonClipModel(tiny_config).eval()
    keypoints, scores = random_keypoints(2, views=3)
    input_ids = torch.randint(1000, 2000, (2, 5))
    labels = torch.tensor([1, 3])
    with torch.no_grad():
        out = model(keypoints=keypoints, keypoint_scores=scores, input_ids=input_ids, labels=labels, return_loss=True)
        heatmaps, views = model.prepare_heatmaps(keypoints, scores)
        out_h = model(heatmaps=heatmaps.view(2, 3, *heatmaps.shape[1:]), input_ids=input_ids)
    assert views == 3 and heatmaps.shape == (6, 17, 8, 16, 16)
    assert out.logits_per_video.shape == (6, 2)
    torch.testing.assert_close(out.logits_per_video, out_h.logits_per_video)
    assert torch.isfinite(out.loss)


def test_train_and_eval_render_their_own_sizes():
    config = SkeletonClipConfig(
        video_config={"base_channels": 8, "stage_planes": [8, 8, 8], "stage_blocks": [1, 1, 1]},
        text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    )
    model = SkeletonClipModel(config)
    keypoints, scores = random_keypoints(1, frames=4)
    assert model.train().prepare_heatmaps(keypoints, scores)[0].shape[-2:] == (56, 56)
    assert model.eval().prepare_heatmaps(keypoints, scores)[0].shape[-2:] == (64, 64)
    assert model.prepare_heatmaps(keypoints, scores, heatmap_size=(20, 30))[0].shape[-2:] == (20, 30)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"keypoints": torch.zeros(2, 1, 8, 17)}, "must have shape [B, M, T, 17, 2]"),
        ({"keypoints": torch.zeros(2, 1, 8, 15, 2)}, "must have shape [B, M, T, 17, 2]"),
        ({"keypoints": torch.zeros(2, 1, 8, 17, 2), "keypoint_scores": torch.zeros(2, 1, 8, 16)}, "keypoint_scores"),
        ({"heatmaps": torch.zeros(2, 5, 8, 16, 16)}, "[B, 17, T, H, W]"),
        ({}, "Pass `keypoints`"),
    ],
)
def test_bad_input_raises_value_error_with_expected_shape(tiny_config, kwargs, message):
    model = SkeletonClipModel(tiny_config)
    with pytest.raises(ValueError) as err:
        model(input_ids=torch.ones(2, 3, dtype=torch.long), **kwargs)
    assert message in str(err.value)


def test_views_mismatch_with_labels_is_reported(tiny_config):
    model = SkeletonClipModel(tiny_config)
    keypoints, scores = random_keypoints(3)
    with pytest.raises(ValueError, match=r"`labels` must have shape \[3\] \(one class per clip: 3 clips x 1 views\), got \[2\]"):
        model(keypoints=keypoints, keypoint_scores=scores, input_ids=torch.ones(2, 3, dtype=torch.long),
              labels=torch.tensor([0, 1]))


@pytest.mark.parametrize("clips, labels", [(4, 2), (3, 2), (2, 4)])
def test_views_come_from_the_input_shape_not_from_the_label_count(tiny_config, clips, labels):
    # 4 clips with 2 labels are not 2 clips x 2 views: views are an axis of the input ([B, views, M, T, V, 2]).
    model = SkeletonClipModel(tiny_config)
    keypoints, scores = random_keypoints(clips)
    with pytest.raises(ValueError, match=rf"`labels` must have shape \[{clips}\].*got \[{labels}\]"):
        model(keypoints=keypoints, keypoint_scores=scores, input_ids=torch.ones(labels, 3, dtype=torch.long),
              labels=torch.arange(labels) % 4)
    keypoints, scores = random_keypoints(2, views=2)  # 2 clips x 2 views: labels [2]
    out = model(keypoints=keypoints, keypoint_scores=scores, input_ids=torch.ones(2, 3, dtype=torch.long),
                labels=torch.tensor([0, 1]))
    assert out.logits_per_video.shape == (4, 2) and torch.isfinite(out.loss)


def test_two_dimensional_labels_are_refused_by_name(tiny_config):
    model = SkeletonClipForActionRecognition(tiny_config)
    keypoints, scores = random_keypoints(2)
    with pytest.raises(ValueError, match=r"`labels` must have shape \[2\].*got \[2, 4\]"):
        model(keypoints=keypoints, keypoint_scores=scores, labels=torch.zeros(2, 4, dtype=torch.long))


def test_empty_batch_is_a_clear_error(tiny_config):
    model = SkeletonClipForActionRecognition(tiny_config)
    keypoints, scores = random_keypoints(1)
    for name, value in (("keypoints", keypoints[:0]), ("heatmaps", torch.zeros(0, 17, 8, 16, 16))):
        with pytest.raises(ValueError, match=rf"`{name}` holds no clips"):
            model(**{name: value})


def test_numpy_inputs_work_like_tensors(tiny_config):
    model = SkeletonClipModel(tiny_config).eval()
    keypoints, scores = random_keypoints(2)
    ids, labels = torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 1])
    with torch.no_grad():
        expected = model(keypoints=keypoints, keypoint_scores=scores, input_ids=ids, labels=labels)
        got = model(keypoints=keypoints.numpy(), keypoint_scores=scores.numpy(), input_ids=ids.numpy(),
                    labels=labels.numpy())
    torch.testing.assert_close(got.logits_per_video, expected.logits_per_video, rtol=0, atol=0)
    torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=0)
    with pytest.raises(TypeError, match="`keypoints` must be a torch.Tensor or a numpy array, got list"):
        model(keypoints=keypoints.tolist(), input_ids=ids)


def test_non_finite_heatmaps_are_refused(tiny_config):
    model = SkeletonClipForActionRecognition(tiny_config)
    heatmaps = torch.zeros(1, 17, 8, 16, 16)
    heatmaps[0, 3, 2, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="`heatmaps` contain NaN or infinite values"):
        model(heatmaps=heatmaps, labels=torch.tensor([0]))


def test_classifier_baseline_loss_and_views(tiny_config):
    model = SkeletonClipForActionRecognition(tiny_config).train()
    keypoints, scores = random_keypoints(2, views=2)
    labels = torch.tensor([0, 3])
    out = model(keypoints=keypoints, keypoint_scores=scores, labels=labels)
    assert out.logits.shape == (4, 4)
    expected = F.cross_entropy(out.logits, torch.tensor([0, 0, 3, 3]))
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_gradient_checkpointing_gives_same_gradients(tiny_config):
    torch.manual_seed(0)
    model = SkeletonClipForActionRecognition(tiny_config).eval()  # eval: BN statistics are not updated twice
    keypoints, scores = random_keypoints(2)
    labels = torch.tensor([0, 1])

    def grads():
        model.zero_grad()
        model(keypoints=keypoints, keypoint_scores=scores, labels=labels, heatmap_size=(16, 16)).loss.backward()
        return [p.grad.clone() for p in model.video_encoder.parameters()]

    plain = grads()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert model.video_encoder.layer1[0].gradient_checkpointing
    checkpointed = grads()
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("use_reentrant", [False, True], ids=["non_reentrant", "reentrant"])
@pytest.mark.parametrize("conv_impl", ["conv3d", "fast"])
def test_gradient_checkpointing_updates_batchnorm_statistics_once(tiny_config, conv_impl, use_reentrant):
    # The recomputation in the backward pass runs every BatchNorm of a checkpointed block a second time; plain
    # BatchNorm would move its running statistics (and num_batches_tracked) twice per step.
    tiny_config.video_config.conv_impl = conv_impl
    torch.manual_seed(0)
    reference = SkeletonClipForActionRecognition(tiny_config).train()
    checkpointed = copy.deepcopy(reference)
    checkpointed.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": use_reentrant})
    keypoints, scores = random_keypoints(2)
    labels = torch.tensor([0, 1])
    for model in (reference, checkpointed):
        torch.manual_seed(1)  # the same dropout masks in both runs
        for _ in range(2):
            model(keypoints=keypoints, keypoint_scores=scores, labels=labels, heatmap_size=(16, 16)).loss.backward()
    buffers = dict(checkpointed.video_encoder.named_buffers())
    for name, expected in reference.video_encoder.named_buffers():
        if name.endswith("num_batches_tracked"):
            assert int(buffers[name]) == int(expected) == 2, name
        else:
            torch.testing.assert_close(buffers[name], expected, msg=name)
    # The recomputed forward still normalised with the batch statistics: gradients equal the plain step's.
    for (name, a), b in zip(reference.video_encoder.named_parameters(), checkpointed.video_encoder.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


def test_config_round_trip(tmp_path, tiny_config):
    tiny_config.save_pretrained(tmp_path)
    loaded = SkeletonClipConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == tiny_config.to_dict()
    assert loaded.video_config.stage_blocks == [1, 2, 1]
    assert loaded.text_config.hidden_size == 32
    assert loaded.id2label[1] == "eat meal/snack"
    assert loaded.heatmap_config.joint_layout.flip_permutation()[1] == 2


def test_config_validation_and_channel_sync():
    config = SkeletonClipConfig(heatmap_config={"with_joints": True, "with_limbs": True})
    assert config.video_config.in_channels == 17 + 17
    config = SkeletonClipConfig(heatmap_config={"with_joints": False, "with_limbs": True})
    assert config.video_config.in_channels == 17
    with pytest.raises(Exception, match="objective"):
        SkeletonClipConfig(objective="nope")
    with pytest.raises(Exception, match="conv_impl"):
        SkeletonClipConfig(video_config={"conv_impl": "nope"})
    with pytest.raises(Exception, match="text_template"):
        SkeletonClipConfig(text_template="no placeholder")


def test_default_text_encoder_is_pretrained():
    model, tokenizer = SkeletonClipModel.from_text_pretrained(
        None, id2label={0: "drink water", 1: "eat meal/snack", 2: "kicking something"}
    )
    assert model.config.text_config.hidden_size == 384
    texts = model.config.class_texts()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        states = model.text_model(**batch).last_hidden_state  # [3, L, 384]
    mask = batch["attention_mask"][..., None]
    mean = F.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)  # the encoder's own (mean) pooling
    sim = mean @ mean.t()
    assert sim[0, 1] > sim[0, 2] + 0.1  # drink water ~ eat meal/snack, not kicking something
    assert sim[0, 1] > sim[1, 2]
    # Random BERT weights would not know this: the weights really are the pretrained ones.
    from modeling_skeletonclip.text_encoders import packaged_text_encoder_path
    from safetensors.torch import load_file

    reference = load_file(f"{packaged_text_encoder_path()}/model.safetensors")
    key = next(k for k in reference if k.endswith("embeddings.word_embeddings.weight"))
    torch.testing.assert_close(model.text_model.embeddings.word_embeddings.weight, reference[key])


def test_missing_text_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="Could not load the text encoder"):
        SkeletonClipModel.from_text_pretrained(str(tmp_path / "nowhere"))


def test_heatmaps_are_rendered_in_the_autocast_dtype(tiny_config):
    model = SkeletonClipModel(tiny_config).eval()
    keypoints, scores = random_keypoints(2)
    plain, _ = model.prepare_heatmaps(keypoints, scores)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half, _ = model.prepare_heatmaps(keypoints, scores)
        features = model.get_video_features(keypoints, scores).pooler_output
    assert plain.dtype == torch.float32 and half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), plain, rtol=1e-2, atol=4e-3)  # the same heatmaps, rounded
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("with_limbs", [False, True])
def test_mirrored_views_are_the_rendered_heatmaps_mirrored(tiny_config, with_limbs):
    """A view marked `mirrored` is its keypoints' heatmap volume with columns reversed and left/right channels
    swapped (pyskl's test-time flip, `pyskl_mirror` in helpers), for the contrastive model and the classifier."""
    heatmap_config = dict(tiny_config.heatmap_config.to_dict(), with_limbs=with_limbs)
    config = SkeletonClipConfig(**dict(tiny_config.to_dict(), heatmap_config=heatmap_config))
    keypoints, scores = random_keypoints(2, views=2)
    keypoints[0, 1, 0, 0, 3] = torch.tensor([0.0, 5.0])  # at x = 0, with a score: mirrored to the last column
    mirrored = torch.tensor([[False, True], [True, True]])
    layout = config.heatmap_config.joint_layout
    for model in (SkeletonClipModel(config).eval(), SkeletonClipForActionRecognition(config).eval()):
        plain, views = model.prepare_heatmaps(keypoints, scores)  # [4, C, T, H, W]
        expected = plain.numpy().copy()
        rows = mirrored.flatten().nonzero().flatten().tolist()
        expected[rows] = pyskl_mirror(expected[rows], 17, layout.flip_permutation(), True,
                                      layout.limbs if with_limbs else [])
        got, _ = model.prepare_heatmaps(keypoints, scores, mirrored=mirrored)
        assert views == 2 and got.shape == plain.shape == (4, 17 + (len(layout.limbs) if with_limbs else 0), 8, 16, 16)
        assert torch.equal(got, torch.from_numpy(expected)) and not torch.equal(got, plain)
        # the left ear at column 0 is the right ear's channel at column W - 1 = 15
        assert got[1, 4, 0, 5, 15].item() == pytest.approx(scores[0, 1, 0, 0, 3].item(), rel=1e-6)
        with torch.no_grad():
            if isinstance(model, SkeletonClipModel):
                text = torch.randn(3, 16)
                by_flag = model.score_all_classes(keypoints, scores, class_text_embeds=text, mirrored=mirrored)
                by_heatmaps = model.score_all_classes(heatmaps=got.view(2, 2, *got.shape[1:]), class_text_embeds=text)
                features = model.get_video_features(keypoints, scores, mirrored=mirrored).pooler_output
                torch.testing.assert_close(features, model.get_video_features(heatmaps=got).pooler_output)
            else:
                by_flag = model(keypoints, scores, mirrored=mirrored).logits
                by_heatmaps = model(heatmaps=got.view(2, 2, *got.shape[1:])).logits
        torch.testing.assert_close(by_flag, by_heatmaps, rtol=0, atol=0)


def test_mirrored_flags_are_checked(tiny_config):
    model = SkeletonClipForActionRecognition(tiny_config)
    keypoints, scores = random_keypoints(2, views=3)
    for bad in (torch.zeros(2, 2, dtype=torch.bool), torch.zeros(6, dtype=torch.bool), torch.zeros(2, 3)):
        with pytest.raises(ValueError, match=r"`mirrored` must be a bool tensor \[2, 3\] \(one flag per view"):
            model(keypoints, scores, mirrored=bad)
    heatmaps, _ = model.prepare_heatmaps(keypoints, scores)
    with pytest.raises(ValueError, match="precomputed `heatmaps` are used as given"):
        model(heatmaps=heatmaps, mirrored=torch.zeros(6, dtype=torch.bool))
    # numpy flags work like tensors; one clip without a view axis takes flags [B]
    flags = torch.tensor([[True, False, True], [False, False, True]])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(keypoints, scores, mirrored=flags.numpy()).logits,
                                   model(keypoints, scores, mirrored=flags).logits, rtol=0, atol=0)
        single = model(keypoints[:, 0], scores[:, 0], mirrored=flags[:, 0]).logits
    torch.testing.assert_close(single, model(keypoints, scores, mirrored=flags).logits.view(2, 3, -1)[:, 0])
