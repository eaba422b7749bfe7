"""What transformers' own model tests (ModelTesterMixin) expect of a PreTrainedModel, on the tiny models: accelerate
offloading and `device_map` dispatch, export of `keypoints=` inputs, the attention implementations, the feature
getters' `return_dict` / `output_hidden_states`, unknown keyword arguments, tokenizers of hub-cached checkpoints and
`problem_type`."""

import math

import numpy as np
import pytest
import torch
from helpers import TINY_HEATMAP, TINY_TEXT, TINY_VIDEO, random_keypoints, reference_heatmaps

from modeling_skeletonclip import (
    SkeletonClipConfig,
    SkeletonClipForActionRecognition,
    SkeletonClipModel,
    render_heatmaps,
)
from modeling_skeletonclip.fast_slowonly import fast_path_applies
from modeling_skeletonclip.pose_layouts import COCO17

CLASSES = {0: "drink water", 1: "eat meal/snack", 2: "kicking something", 3: "jump up"}


def tiny_config(**kwargs):
    return SkeletonClipConfig(video_config=TINY_VIDEO, text_config=TINY_TEXT, heatmap_config=TINY_HEATMAP,
                              frame_embed_dim=24, projection_dim=16, id2label=CLASSES, **kwargs)


def tiny_model(model_class, seed=0, **kwargs):
    torch.manual_seed(seed)
    return model_class(tiny_config(**kwargs)).eval()


def text_inputs(num_texts=4, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, 2000, (num_texts, length), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, length // 2:] = 0  # one padded text
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def has_accelerate_hooks(module):
    return any(getattr(m, "_hf_hook", None) is not None for m in module.modules())


# ----------------------------------------------------------------------------------------------------------------
# accelerate: offloading and device_map dispatch run the conv3d path (the modules' hooked forwards)
# ----------------------------------------------------------------------------------------------------------------

# The encoder's stages on the CPU and on disk: a device_map split inside the encoder.
SPLIT_MAP = {
    "video_encoder.conv1": "cpu", "video_encoder.maxpool": "cpu", "video_encoder.layer1": "cpu",
    "video_encoder.layer2": "disk", "video_encoder.layer3": "cpu",
}
OFFLOADING = {
    "all on disk": {"device_map": {"": "disk"}},
    "auto, 2 KB of memory": {"device_map": "auto", "max_memory": {"cpu": "2KB"}},
    "encoder split": {"device_map": "split"},
}


# transformers needs the bare `temperature` parameter in the map; accelerate, which places modules, says it is none.
@pytest.mark.filterwarnings("ignore:The following device_map keys do not match any submodules")
@pytest.mark.parametrize("loading", list(OFFLOADING))
@pytest.mark.parametrize("model_class", [SkeletonClipForActionRecognition, SkeletonClipModel])
def test_offloaded_model_gives_the_plain_models_output(tmp_path, model_class, loading):
    model = tiny_model(model_class)
    model.save_pretrained(tmp_path / "model")
    keypoints, scores = random_keypoints(2, persons=2)
    texts = text_inputs() if model_class is SkeletonClipModel else {}
    kwargs = dict(OFFLOADING[loading])
    if kwargs["device_map"] == "split":
        rest = ["dropout", "classifier"] if model_class is SkeletonClipForActionRecognition else [
            "frame_projection", "video_projection", "text_model", "text_projection", "temperature"]
        kwargs["device_map"] = {**SPLIT_MAP, **{name: "cpu" for name in rest}}
    loaded = model_class.from_pretrained(tmp_path / "model", offload_folder=str(tmp_path / "offload"), **kwargs).eval()
    assert has_accelerate_hooks(loaded.video_encoder)  # the case at hand: accelerate's hooks hold the weights
    assert any(p.device.type == "meta" for p in loaded.video_encoder.parameters())
    assert not fast_path_applies(loaded.video_encoder, keypoints)
    assert fast_path_applies(model.video_encoder, keypoints)  # the plain model keeps the fast path
    with torch.no_grad():
        expected = model(keypoints=keypoints, keypoint_scores=scores, **texts)
        got = loaded(keypoints=keypoints, keypoint_scores=scores, **texts)
    name = "logits" if model_class is SkeletonClipForActionRecognition else "logits_per_video"
    torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5)


def test_encoder_dispatched_over_two_cpu_parts():
    # transformers collapses a device_map whose parts are all "cpu" into a plain CPU model (no hooks, nothing to
    # dispatch), so the split is made with accelerate itself: two parts with their own hooks, both on the CPU.
    from accelerate import dispatch_model

    model = tiny_model(SkeletonClipForActionRecognition)
    keypoints, scores = random_keypoints(2, persons=2)
    with torch.no_grad():
        expected = model(keypoints=keypoints, keypoint_scores=scores).logits
    device_map = {"video_encoder.conv1": "cpu", "video_encoder.maxpool": "cpu", "video_encoder.layer1": "cpu",
                  "video_encoder.layer2": "cpu", "video_encoder.layer3": "cpu", "dropout": "cpu", "classifier": "cpu"}
    dispatched = dispatch_model(model, device_map=device_map, force_hooks=True)
    assert has_accelerate_hooks(dispatched.video_encoder.layer1)
    assert has_accelerate_hooks(dispatched.video_encoder.layer3)
    assert not fast_path_applies(dispatched.video_encoder, keypoints)
    with torch.no_grad():
        got = dispatched(keypoints=keypoints, keypoint_scores=scores).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_fast_path_needs_every_tensor_on_the_inputs_device():
    model = tiny_model(SkeletonClipForActionRecognition)
    x = torch.zeros(1, 17, 4, 16, 16)
    assert fast_path_applies(model.video_encoder, x)
    bn = model.video_encoder.layer2[0].conv2.bn
    bn.running_var = bn.running_var.to("meta")  # one buffer elsewhere
    assert not fast_path_applies(model.video_encoder, x)
    bn.running_var = torch.ones(bn.num_features)
    conv = model.video_encoder.layer3[0].conv1.conv
    conv.weight = torch.nn.Parameter(conv.weight.to("meta"))  # one parameter elsewhere
    assert not fast_path_applies(model.video_encoder, x)


# ----------------------------------------------------------------------------------------------------------------
# Export: the dense renderer
# ----------------------------------------------------------------------------------------------------------------


def awkward_keypoints(seed, n=3, m=2, t=3, size=(16, 18)):
    """Keypoints `[N, M, T, 17, 2]` and scores over and beyond a frame of `size`: missing joints (score 0, below
    the 1e-3 threshold), NaN coordinates and scores, points outside the frame (near and far), zero-length and
    sub-pixel limbs, persons overlapping."""
    rng = np.random.default_rng(seed)
    height, width = size
    kp = (rng.uniform(0, 1, (n, m, t, 17, 2)) * [width + 10, height + 10] - 5).astype(np.float32)
    scores = rng.uniform(0, 1, (n, m, t, 17)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.15] = 0.0
    scores[rng.random(scores.shape) < 0.05] = 9e-4
    kp[..., 7, :] = kp[..., 5, :] + rng.uniform(-0.7, 0.7, (n, m, t, 2))  # limb (5, 7) under a pixel long
    kp[..., 12, :] = kp[..., 11, :]  # limb (11, 12) of length 0
    kp[0, 1] = kp[0, 0] + rng.normal(0, 1, kp[0, 0].shape)
    kp[0, 0, 0, 8, 0] = np.nan
    kp[1, 1, 2, 3] = np.nan
    scores[-1, 0, 1, 9] = np.nan
    kp[1, 0, 0, 4] = [40.0, -30.0]  # outside the frame
    kp[-1, -1, -1, 10] = [1e6, 3.0]  # far outside
    kp[..., 3, 0] = np.where(rng.random((n, m, t)) < 0.5, 0.0, kp[..., 3, 0])  # x == 0 (kept by the flip)
    return torch.from_numpy(kp), torch.from_numpy(scores)


@pytest.mark.parametrize("with_joints,with_limbs", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("use_score", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_dense_renderer_equals_the_windowed_renderer_and_the_reference(seed, use_score, with_joints, with_limbs):
    keypoints, scores = awkward_keypoints(seed)
    options = dict(size=(16, 18), with_joints=with_joints, with_limbs=with_limbs, use_score=use_score)
    dense = render_heatmaps(keypoints, scores, dense=True, **options)
    torch.testing.assert_close(dense, render_heatmaps(keypoints, scores, **options), rtol=0, atol=1e-6)
    near = keypoints.clone()
    near[-1, -1, -1, 10] = torch.tensor([40.0, 3.0])  # the numpy reference allocates up to the coordinate
    reference = torch.from_numpy(reference_heatmaps(near.numpy(), scores.numpy(), limbs=COCO17.limbs, **options))
    torch.testing.assert_close(render_heatmaps(near, scores, dense=True, **options), reference, rtol=0, atol=1e-5)
    assert dense.abs().sum() > 0


def test_dense_renderer_flip_double_bfloat16_and_empty_inputs():
    keypoints, scores = awkward_keypoints(3)
    options = dict(size=(16, 18), with_limbs=True, flip_double=True, dtype=torch.bfloat16)
    dense = render_heatmaps(keypoints, scores, dense=True, **options)
    assert dense.dtype == torch.bfloat16 and dense.shape == (3, 2, 17 + len(COCO17.limbs), 3, 16, 18)
    torch.testing.assert_close(dense, render_heatmaps(keypoints, scores, **options), rtol=0, atol=0)
    for shape in [(0, 2, 4, 17, 2), (2, 0, 4, 17, 2)]:
        empty = torch.zeros(shape)
        torch.testing.assert_close(render_heatmaps(empty, size=(8, 8), with_limbs=True, dense=True),
                                   render_heatmaps(empty, size=(8, 8), with_limbs=True), rtol=0, atol=0)


@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_classifier_exports_with_keypoint_inputs(dynamic_batch):
    model = tiny_model(SkeletonClipForActionRecognition)
    keypoints, scores = awkward_keypoints(4, n=3, m=2, t=8)
    keypoints[1, 0, 2, 6] = float("nan")
    kwargs = {"keypoints": keypoints, "keypoint_scores": scores}
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic_shapes = {"keypoints": {0: batch}, "keypoint_scores": {0: batch}}
    program = torch.export.export(model, (), kwargs=kwargs, dynamic_shapes=dynamic_shapes)
    exported = program.module()
    with torch.no_grad():
        torch.testing.assert_close(exported(**kwargs).logits, model(**kwargs).logits, rtol=1e-5, atol=1e-5)
        if dynamic_batch:  # other batch sizes, other keypoints
            for n in (2, 5):
                other = dict(zip(("keypoints", "keypoint_scores"), awkward_keypoints(5 + n, n=n, m=2, t=8)))
                torch.testing.assert_close(exported(**other).logits, model(**other).logits, rtol=1e-5, atol=1e-5)


def test_contrastive_model_exports_with_keypoint_inputs():
    model = tiny_model(SkeletonClipModel)
    keypoints, scores = awkward_keypoints(8, n=2, m=2, t=8)
    kwargs = {"keypoints": keypoints, "keypoint_scores": scores, **text_inputs(3)}
    exported = torch.export.export(model, (), kwargs=kwargs).module()
    with torch.no_grad():
        expected = model(**kwargs)
        got = exported(**kwargs)
    torch.testing.assert_close(got.logits_per_video, expected.logits_per_video, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.text_embeds, expected.text_embeds, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # shape arithmetic, which is static here
def test_classifier_traces_with_keypoint_inputs():
    model = tiny_model(SkeletonClipForActionRecognition)
    model.config.return_dict = False  # jit.trace records tensors and tuples
    first = dict(zip(("keypoints", "keypoint_scores"), awkward_keypoints(6, t=8)))
    second = dict(zip(("keypoints", "keypoint_scores"), awkward_keypoints(7, t=8)))
    with torch.no_grad():
        traced = torch.jit.trace(model, example_kwarg_inputs=first, strict=False)
        # Nothing of the example's keypoints is baked into the graph: other keypoints give their own logits.
        torch.testing.assert_close(traced(**second)[0], model(**second)[0], rtol=1e-5, atol=1e-5)


def test_classifier_exports_to_onnx():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    model = tiny_model(SkeletonClipForActionRecognition)
    keypoints, scores = random_keypoints(2, persons=2)
    program = torch.onnx.export(model, (), kwargs={"keypoints": keypoints, "keypoint_scores": scores}, dynamo=True)
    import onnx

    onnx.checker.check_model(program.model_proto)


# ----------------------------------------------------------------------------------------------------------------
# Attention implementations: "sdpa" and "eager" for the text encoder and the ITM fusion layers
# ----------------------------------------------------------------------------------------------------------------


def attention_implementations(model):
    """The implementation every BERT attention module (text encoder, fusion layers) looks up when it runs."""
    return {name: module.config._attn_implementation for name, module in model.named_modules()
            if name.endswith("attention.self")}


@pytest.mark.parametrize("objective", ["itc", "itc_itm"])
def test_sdpa_and_eager_load_and_agree(tmp_path, objective):
    model = tiny_model(SkeletonClipModel, objective=objective, itm_fusion_layers=2)
    model.save_pretrained(tmp_path)
    keypoints, scores = random_keypoints(4, persons=2)
    texts = text_inputs()
    loaded = {}
    for implementation in ("sdpa", "eager"):
        loaded[implementation] = SkeletonClipModel.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        found = attention_implementations(loaded[implementation])
        fusion = [name for name in found if name.startswith("fusion_encoder.")]
        assert len(fusion) == (4 if objective == "itc_itm" else 0)  # self- and cross-attention of 2 layers
        assert set(found.values()) == {implementation}, found
        assert loaded[implementation].config._attn_implementation == implementation
    outputs = {}
    with torch.no_grad():
        for implementation, model in loaded.items():
            out = model(keypoints=keypoints, keypoint_scores=scores, **texts)
            outputs[implementation] = [out.logits_per_video, out.text_embeds]
            if objective == "itc_itm":  # the fusion encoder's matching logits on the same pairs
                text_hidden = out.text_model_output.last_hidden_state
                frames = out.video_model_output.last_hidden_state
                outputs[implementation].append(model.fusion_encoder(text_hidden, texts["attention_mask"], frames))
    for sdpa, eager in zip(outputs["sdpa"], outputs["eager"]):
        torch.testing.assert_close(sdpa, eager, rtol=1e-5, atol=1e-5)


def test_set_attn_implementation_reaches_the_fusion_layers():
    model = tiny_model(SkeletonClipModel, objective="itc_itm")
    assert set(attention_implementations(model).values()) == {"sdpa"}  # transformers' default
    model.set_attn_implementation("eager")
    assert set(attention_implementations(model).values()) == {"eager"}
    # The classifier has no attention; a config the contrastive model resolved builds it too.
    SkeletonClipForActionRecognition(model.config)


# ----------------------------------------------------------------------------------------------------------------
# Feature getters: return_dict / output_hidden_states; forward: unknown keyword arguments are errors
# ----------------------------------------------------------------------------------------------------------------


def test_get_text_features_return_dict_and_hidden_states():
    model = tiny_model(SkeletonClipModel)
    texts = text_inputs()
    with torch.no_grad():
        as_dict = model.get_text_features(**texts, output_hidden_states=True)
        as_tuple = model.get_text_features(**texts, output_hidden_states=True, return_dict=False)
        bert = model.text_model(**texts, output_hidden_states=True)  # the encoder's own hidden states
        plain = model.get_text_features(**texts, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3
    torch.testing.assert_close(as_tuple[0], as_dict.last_hidden_state, rtol=0, atol=0)
    torch.testing.assert_close(as_tuple[1], as_dict.pooler_output, rtol=0, atol=0)
    assert len(as_dict.hidden_states) == TINY_TEXT["num_hidden_layers"] + 1
    for ours, theirs in zip(as_dict.hidden_states, bert.hidden_states):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    cls = bert.last_hidden_state[:, 0]
    torch.testing.assert_close(as_dict.pooler_output, model.text_projection(cls), rtol=0, atol=0)
    assert len(plain) == 2  # no hidden states asked for: none in the tuple
    model.config.return_dict = False  # the config's default, as transformers' `can_return_tuple`
    assert isinstance(model.get_text_features(**texts), tuple)


@pytest.mark.parametrize("conv_impl", ["fast", "conv3d"])
def test_get_video_features_hidden_states_are_the_stage_outputs(conv_impl):
    model = tiny_model(SkeletonClipModel)
    model.config.video_config.conv_impl = conv_impl
    keypoints, scores = random_keypoints(3, persons=2)
    heatmaps, _ = model.prepare_heatmaps(keypoints, scores)
    # What the conv3d path's stem and stages return, captured with hooks on a copy of the encoder.
    import copy

    reference = copy.deepcopy(model.video_encoder)
    reference.config = copy.deepcopy(reference.config)
    reference.config.conv_impl = "conv3d"
    captured = []
    for name in ["maxpool"] + [f"layer{i + 1}" for i in range(reference.num_stages)]:
        getattr(reference, name).register_forward_hook(lambda module, args, output: captured.append(output))
    with torch.no_grad():
        final = reference(heatmaps)
        outputs = model.get_video_features(keypoints, scores, output_hidden_states=True)
        as_tuple = model.get_video_features(keypoints, scores, output_hidden_states=True, return_dict=False)
        plain = model.get_video_features(keypoints, scores, return_dict=False)
    assert len(outputs.hidden_states) == 1 + reference.num_stages
    for ours, theirs in zip(outputs.hidden_states, captured):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outputs.hidden_states[-1], final, rtol=1e-5, atol=1e-5)
    assert len(as_tuple) == 3 and len(plain) == 2
    torch.testing.assert_close(as_tuple[1], outputs.pooler_output, rtol=0, atol=0)
    torch.testing.assert_close(plain[0], outputs.last_hidden_state, rtol=0, atol=0)


def test_forward_hidden_states_of_both_models():
    keypoints, scores = random_keypoints(2, views=2)
    model = tiny_model(SkeletonClipModel)
    classifier = tiny_model(SkeletonClipForActionRecognition)
    with torch.no_grad():
        out = model(keypoints=keypoints, keypoint_scores=scores, **text_inputs(2), output_hidden_states=True)
        classified = classifier(keypoints=keypoints, keypoint_scores=scores, output_hidden_states=True)
        plain = classifier(keypoints=keypoints, keypoint_scores=scores)
    assert [h.shape[0] for h in out.video_model_output.hidden_states] == [4] * 4  # 2 clips x 2 views, 4 outputs
    assert len(out.text_model_output.hidden_states) == TINY_TEXT["num_hidden_layers"] + 1
    assert len(classified.hidden_states) == 4 and plain.hidden_states is None
    pooled = classified.hidden_states[-1].mean(dim=(2, 3, 4))
    torch.testing.assert_close(pooled, classified.pooled_features, rtol=0, atol=0)


def test_unknown_keyword_arguments_are_errors_with_a_suggestion():
    keypoints, scores = random_keypoints(2)
    model = tiny_model(SkeletonClipModel)
    classifier = tiny_model(SkeletonClipForActionRecognition)
    texts = text_inputs(2)
    calls = {
        "SkeletonClipModel.forward() got an unexpected keyword argument `keypoint_score`. Did you mean "
        "`keypoint_scores`?": lambda: model(keypoints=keypoints, keypoint_score=scores, **texts),
        "SkeletonClipForActionRecognition.forward() got an unexpected keyword argument `keypoint_score`. Did you "
        "mean `keypoint_scores`?": lambda: classifier(keypoints=keypoints, keypoint_score=scores),
        "SkeletonClipForActionRecognition.forward() got an unexpected keyword argument `input_ids`. It takes: "
        "keypoints, keypoint_scores, heatmaps, labels, heatmap_size, return_dict, output_hidden_states, mirrored.":
            lambda: classifier(keypoints=keypoints, input_ids=texts["input_ids"]),
        "SkeletonClipModel.get_video_features() got an unexpected keyword argument `heatmap_sizes`. Did you mean "
        "`heatmap_size`?": lambda: model.get_video_features(keypoints, scores, heatmap_sizes=(8, 8)),
        "SkeletonClipModel.get_text_features() got an unexpected keyword argument `attention_masks`. Did you mean "
        "`attention_mask`?": lambda: model.get_text_features(texts["input_ids"], attention_masks=texts["input_ids"]),
    }
    for message, call in calls.items():
        with pytest.raises(TypeError) as error:
            call()
        assert str(error.value) == message


def test_trainer_loss_kwargs_are_accepted(tmp_path):
    # transformers' Trainer passes `num_items_in_batch` to a forward when the model accepts loss kwargs; both models
    # say they do not (their losses are batch means), and take the argument without effect all the same.
    from transformers import Trainer, TrainingArguments

    keypoints, scores = random_keypoints(2)
    labels = torch.tensor([0, 3])
    models = ((tiny_model(SkeletonClipModel), text_inputs(2)), (tiny_model(SkeletonClipForActionRecognition), {}))
    for model, extra in models:
        inputs = dict(keypoints=keypoints, keypoint_scores=scores, labels=labels, **extra)
        with torch.no_grad():
            torch.testing.assert_close(model(**inputs, num_items_in_batch=7).loss, model(**inputs).loss, rtol=0, atol=0)
        trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True))
        assert trainer.model_accepts_loss_kwargs is False


# ----------------------------------------------------------------------------------------------------------------
# The tokenizer of a checkpoint loaded by hub repo id, from the hub cache
# ----------------------------------------------------------------------------------------------------------------

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache_dir, repo_id, model):
    """Saves `model` as the hub cache holds a downloaded repo: `models--org--name/snapshots/<commit>/` and
    `refs/main` naming the commit."""
    repo_folder = cache_dir / ("models--" + repo_id.replace("/", "--"))
    model.save_pretrained(repo_folder / "snapshots" / SNAPSHOT)
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(SNAPSHOT)


def test_repo_id_from_the_hub_cache_gets_its_tokenizer(tmp_path, minilm_tokenizer):
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # HF_HUB_OFFLINE=1 (conftest): only the cache can answer
    model = tiny_model(SkeletonClipModel)
    model.tokenizer = minilm_tokenizer
    cache_repo(tmp_path / "hub", "someone/skeletonclip-tiny", model)
    cache_repo(tmp_path / "hub", "someone/no-tokenizer", tiny_model(SkeletonClipModel))
    texts = ["drink water", "jump up"]
    for kwargs in ({}, {"revision": SNAPSHOT, "local_files_only": True}):
        loaded = SkeletonClipModel.from_pretrained("someone/skeletonclip-tiny", cache_dir=tmp_path / "hub", **kwargs)
        assert loaded.tokenizer is not None
        assert loaded.tokenizer(texts)["input_ids"] == minilm_tokenizer(texts)["input_ids"]
    loaded.save_pretrained(tmp_path / "saved")
    assert {"tokenizer_config.json", "tokenizer.json"} <= {p.name for p in (tmp_path / "saved").iterdir()}
    bare = SkeletonClipModel.from_pretrained("someone/no-tokenizer", cache_dir=tmp_path / "hub")
    assert bare.tokenizer is None
    with pytest.raises(OSError):  # another revision is not in the cache: the weights cannot load either
        SkeletonClipModel.from_pretrained("someone/skeletonclip-tiny", cache_dir=tmp_path / "hub", revision="v2")


# ----------------------------------------------------------------------------------------------------------------
# problem_type: single-label, multi-label, regression
# ----------------------------------------------------------------------------------------------------------------


def direct_bce(logits, targets):
    """Mean binary cross-entropy with logits, written out: -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]."""
    total = 0.0
    for row, target in zip(logits.double().tolist(), targets.double().tolist()):
        for x, y in zip(row, target):
            total -= y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x)))
    return total / logits.numel()


@pytest.mark.parametrize("views", [None, 3])
@pytest.mark.parametrize("problem_type", [None, "multi_label_classification"])
def test_multi_label_classification_is_binary_cross_entropy_per_view(views, problem_type):
    model = tiny_model(SkeletonClipForActionRecognition, problem_type=problem_type).train()
    model.dropout.p = 0.0  # the logits returned are the ones the loss saw
    keypoints, scores = random_keypoints(2, persons=2, views=views)
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    out = model(keypoints=keypoints, keypoint_scores=scores, labels=labels)
    per_view = torch.stack([labels[i // (views or 1)] for i in range(out.logits.shape[0])])
    assert out.logits.shape == (2 * (views or 1), 4)
    assert out.loss.item() == pytest.approx(direct_bce(out.logits.detach(), per_view), rel=1e-5)
    out.loss.backward()
    assert model.classifier.weight.grad.abs().sum() > 0


def test_single_label_and_regression_losses():
    keypoints, scores = random_keypoints(2, persons=2, views=2)
    model = tiny_model(SkeletonClipForActionRecognition)
    with torch.no_grad():
        out = model(keypoints=keypoints, keypoint_scores=scores, labels=torch.tensor([2, 0]))
    log_probs = out.logits.double().log_softmax(-1)
    expected = -(log_probs[0, 2] + log_probs[1, 2] + log_probs[2, 0] + log_probs[3, 0]) / 4
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)

    regression = tiny_model(SkeletonClipForActionRecognition, problem_type="regression")
    targets = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 0.0, -0.5]])
    with torch.no_grad():
        out = regression(keypoints=keypoints, keypoint_scores=scores, labels=targets)
    expected = ((out.logits - targets.repeat_interleave(2, dim=0)) ** 2).mean()
    torch.testing.assert_close(out.loss, expected)

    # Class indices under "multi_label_classification" are not per-class targets: a clear error.
    multi = tiny_model(SkeletonClipForActionRecognition, problem_type="multi_label_classification")
    with pytest.raises(ValueError, match=r"`labels` must have shape \[2, 4\] \(4 class targets per clip"):
        multi(keypoints=keypoints, keypoint_scores=scores, labels=torch.tensor([2, 0]))


@pytest.mark.parametrize("problem_type", ["multi_label_classification", "regression", None])
def test_the_trainers_evaluation_scores_follow_the_problem_type(problem_type, tmp_path):
    from modeling_skeletonclip.trainer import SkeletonClipTrainer, SkeletonClipTrainingArguments

    model = tiny_model(SkeletonClipForActionRecognition, problem_type=problem_type)
    trainer = SkeletonClipTrainer(model=model, args=SkeletonClipTrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none"))
    keypoints, scores = random_keypoints(2, persons=2, views=3)
    labels = {"multi_label_classification": torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]),
              "regression": torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 0.0, -0.5]]),
              None: torch.tensor([2, 0])}[problem_type]
    loss, out, _ = trainer.prediction_step(model, {"keypoints": keypoints, "keypoint_scores": scores,
                                                   "labels": labels}, prediction_loss_only=False)
    with torch.no_grad():
        logits = model(keypoints=keypoints.flatten(0, 1), keypoint_scores=scores.flatten(0, 1)).logits.double()
    views = logits.view(2, 3, 4)
    if problem_type == "multi_label_classification":
        probs = (1 / (1 + torch.exp(-views))).mean(1)
        expected = -(labels * probs.log() + (1 - labels) * (1 - probs).log()).mean()
        torch.testing.assert_close(out.double(), probs.log(), rtol=1e-5, atol=1e-6)
    elif problem_type == "regression":
        expected = ((views.mean(1) - labels) ** 2).mean()
        torch.testing.assert_close(out.double(), views.mean(1), rtol=1e-5, atol=1e-6)
    else:
        probs = (views.exp() / views.exp().sum(-1, keepdim=True)).mean(1)
        expected = -probs[torch.arange(2), labels].log().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
