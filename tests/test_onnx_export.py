"""ONNX export of the video side and its onnxruntime runner: the probabilities against the torch model (eval mode,
the default fast path) on random keypoints with missing joints and on synthetic poses, for the classifier and every
objective, at other batch and person counts than exported; both presets' encoder topology; the folder the command
writes; the pipeline through onnxruntime against the pipeline through torch; errors."""

import json
import os

import numpy as np
import pytest
import torch
from helpers import TINY_HEATMAP, TINY_TEXT, TINY_VIDEO
from transformers import pipeline

from modeling_skeletonclip import PoseClipTransform, SkeletonClipConfig, SkeletonClipForActionRecognition, SkeletonClipModel
from modeling_skeletonclip.cli import main
from modeling_skeletonclip.presets import preset_config
from modeling_skeletonclip.synthetic_poses import SYNTHETIC_CLASS_NAMES, make_synthetic_poses

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from modeling_skeletonclip.onnx_export import encode_class_texts, export_onnx  # noqa: E402
from modeling_skeletonclip.onnx_runtime import OnnxSkeletonClip  # noqa: E402

TASK = "skeleton-action-recognition"
CLASSES = dict(enumerate(SYNTHETIC_CLASS_NAMES[:6]))
CLIP_LEN = 8
TEMPLATE = "{}, as a skeleton moves"
TOLERANCE = 1e-4  # fp32 max abs difference of probabilities


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_model(kind, tokenizer=None, video_config=TINY_VIDEO, heatmap_config=TINY_HEATMAP):
    """The classifier or a contrastive model of objective `kind`, in eval mode, with logits spread far enough
    apart that the probabilities differ between classes (a random tiny model's are otherwise all about 1/L)."""
    torch.manual_seed(0)
    common = dict(video_config=video_config, heatmap_config=heatmap_config, clip_len=CLIP_LEN, id2label=CLASSES)
    if kind == "classifier":
        model = SkeletonClipForActionRecognition(SkeletonClipConfig(**common)).eval()
        torch.nn.init.normal_(model.classifier.weight, std=2.0)
        return model
    config = SkeletonClipConfig(text_config=TINY_TEXT, frame_embed_dim=24, projection_dim=16, objective=kind,
                                text_template="a person doing {}", **common)
    model = SkeletonClipModel(config).eval()
    model.temperature.data.fill_(0.004)
    model.tokenizer = tokenizer
    return model


def awkward_keypoints(seed, n, m, size):
    """Keypoints `[n, m, T, 17, 2]` in (and a little beyond) a `size` frame with scores: zero-score joints, a
    joint at NaN (as the pipeline pads missing persons), a person that is missing in every frame."""
    g = torch.Generator().manual_seed(seed)
    height, width = size
    keypoints = torch.rand(n, m, CLIP_LEN, 17, 2, generator=g) * torch.tensor([width + 4.0, height + 4.0]) - 2
    scores = torch.rand(n, m, CLIP_LEN, 17, generator=g)
    scores[scores < 0.25] = 0.0
    keypoints[0, 0, 1, 3] = float("nan")
    scores[0, 0, 1, 3] = 0.0
    if m > 1:
        keypoints[-1, -1] = float("nan")
        scores[-1, -1] = 0.0
    return keypoints, scores


def synthetic_clips(config, num_clips=2):
    """Synthetic poses of every class as the pipeline feeds the model: test-mode clips of `num_clips` x 2 (flip)
    views, folded into the batch: `[N, M, T, 17, 2]`, `[N, M, T, 17]` (two-person clips padded as missing) and the
    views' `mirrored` flags `[N]`."""
    data = make_synthetic_poses(num_train_per_class=0, num_val_per_class=1)
    heatmap = config.heatmap_config
    transform = PoseClipTransform("test", clip_len=CLIP_LEN, num_clips=num_clips, flip_double=True,
                                  eval_size=tuple(heatmap.eval_size), layout=heatmap.layout)
    keypoints, scores, mirrored = [], [], []
    for ann in data["annotations"]:
        m, t, v, _ = ann["keypoint"].shape
        clip = transform({"keypoint": ann["keypoint"].reshape(m * t, v, 2).astype(np.float32),
                          "keypoint_score": ann["keypoint_score"].reshape(m * t, v).astype(np.float32),
                          "num_person": m, "total_frames": t, "img_shape": ann["img_shape"], "label": 0})
        kp, sc = clip["keypoints"], clip["keypoint_scores"]  # [views, M, T, V, 2], [views, M, T, V]
        if kp.shape[1] == 1:
            kp = np.concatenate([kp, np.full_like(kp, np.nan)], axis=1)
            sc = np.concatenate([sc, np.zeros_like(sc)], axis=1)
        keypoints.append(kp)
        scores.append(sc)
        mirrored.append(clip["mirrored"])
    return tuple(torch.from_numpy(np.concatenate(parts)) for parts in (keypoints, scores, mirrored))


def torch_probabilities(model, keypoints, scores, class_names=None, template=None, mirrored=None):
    """The reference: the torch model's class probabilities `[N, L]` (eval mode, default fast path, no grad)."""
    with torch.no_grad():
        if isinstance(model, SkeletonClipForActionRecognition):
            logits = model(keypoints=keypoints, keypoint_scores=scores, mirrored=mirrored).logits
        else:
            texts = [template.format(name) for name in class_names]
            embeds = encode_class_texts(model, model.tokenizer, texts)
            logits = model.score_all_classes(keypoints=keypoints, keypoint_scores=scores, mirrored=mirrored,
                                             class_text_embeds=embeds)
    return logits.float().softmax(dim=-1).numpy()


def assert_matches_torch(model, runner, keypoints, scores, mirrored=None):
    expected = torch_probabilities(model, keypoints, scores, runner.class_names, runner.hypothesis_template, mirrored)
    got = runner(keypoints, scores, mirrored=mirrored)
    assert got.shape == expected.shape == (keypoints.shape[0], len(runner.class_names))
    assert np.abs(got - expected).max() <= TOLERANCE, np.abs(got - expected).max()
    return got, expected


def check_against_torch(model, folder):
    """The runner of `folder` against `model`: random keypoints at batch and person counts other than the
    exported 2 x 2, with and without mirrored views, and the synthetic poses of every class, flip-doubled."""
    runner = OnnxSkeletonClip(folder)
    size = tuple(model.config.heatmap_config.eval_size)
    for seed, (n, m) in enumerate([(1, 1), (3, 2), (5, 3)]):
        keypoints, scores = awkward_keypoints(seed, n, m, size)
        assert_matches_torch(model, runner, keypoints, scores)
        assert_matches_torch(model, runner, keypoints, scores, mirrored=torch.arange(n) % 2 == 0)
    keypoints, scores, mirrored = synthetic_clips(model.config)
    assert mirrored.any() and not mirrored.all()
    got, expected = assert_matches_torch(model, runner, keypoints, scores, mirrored)
    # the mirrored views are scored mirrored: without the flags they score otherwise
    assert np.abs(runner(keypoints, scores) - got).max() > 20 * TOLERANCE
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # The classes' probabilities differ by far more than the tolerance: the comparison tells them apart.
    assert (expected.max(axis=1) - expected.min(axis=1)).mean() > 200 * TOLERANCE
    return runner


@pytest.fixture(scope="module")
def saved_classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classifier")
    model = tiny_model("classifier")
    model.save_pretrained(folder)
    return model, folder


@pytest.fixture(scope="module")
def exported_classifier(saved_classifier, tmp_path_factory):
    """The saved classifier exported by the command."""
    model, folder = saved_classifier
    output = tmp_path_factory.mktemp("classifier_onnx")
    assert main(["export", "--model_name_or_path", str(folder), "--output_dir", str(output)]) == 0
    return model, output


@pytest.fixture(scope="module")
def exported_pacl(minilm_tokenizer, tmp_path_factory):
    """PACL on the small preset's encoder and heatmap size, exported with labels and a template of its own."""
    config_kwargs, _ = preset_config("small")
    model = tiny_model("pacl", minilm_tokenizer, **config_kwargs)
    labels = [SYNTHETIC_CLASS_NAMES[i] for i in (7, 2, 9, 4)]
    folder = tmp_path_factory.mktemp("pacl_onnx")
    export_onnx(model, folder, candidate_labels=labels, hypothesis_template=TEMPLATE)
    return model, folder, labels


# ----------------------------------------------------------------------------------------------------------------
# The folder and the probabilities
# ----------------------------------------------------------------------------------------------------------------


def test_the_command_writes_a_checked_folder(exported_classifier):
    model, folder = exported_classifier
    assert sorted(os.listdir(folder)) == ["config.json", "model.onnx", "skeletonclip_onnx.json"]
    onnx.checker.check_model(os.path.join(folder, "model.onnx"), full_check=True)
    with open(os.path.join(folder, "skeletonclip_onnx.json")) as f:
        metadata = json.load(f)
    assert metadata["class_names"] == list(CLASSES.values()) and metadata["objective"] == "classifier"
    assert metadata["clip_len"] == CLIP_LEN and metadata["eval_size"] == [16, 16] and metadata["layout"]["name"] == "coco17"
    assert metadata["versions"]["onnx"] == onnx.__version__ and metadata["versions"]["torch"] == torch.__version__
    graph = onnx.load(os.path.join(folder, "model.onnx")).graph
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert [i.name for i in graph.input] == ["keypoints", "keypoint_scores", "mirrored"]
    assert dims[0][2:] == [CLIP_LEN, 17, 2] and all(isinstance(d, str) for d in dims[0][:2])  # N, M dynamic
    assert dims[2] == [dims[0][0]] and graph.input[2].type.tensor_type.elem_type == onnx.TensorProto.BOOL
    assert metadata["inputs"]["mirrored"] == ["clips"]
    saved = SkeletonClipConfig.from_pretrained(folder)
    assert saved.id2label == model.config.id2label and saved.architectures == ["SkeletonClipForActionRecognition"]
    assert saved.video_config.stage_planes == model.config.video_config.stage_planes


def test_the_classifier_through_onnxruntime_equals_torch(exported_classifier):
    check_against_torch(*exported_classifier)


def test_pacl_on_the_small_preset_through_onnxruntime_equals_torch(exported_pacl):
    model, folder, labels = exported_pacl
    runner = check_against_torch(model, folder)
    assert runner.class_names == labels and runner.is_contrastive
    assert model.video_encoder.layer3[0].conv1.conv.in_channels == 2 * 4 * 16  # the small preset's widths
    with open(os.path.join(folder, "skeletonclip_onnx.json")) as f:
        metadata = json.load(f)
    assert metadata["objective"] == "pacl" and metadata["eval_size"] == [24, 24]
    assert metadata["hypothesis_template"] == TEMPLATE != model.config.text_template


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["itc", "itc_itm", "itc_momentum"])
def test_every_contrastive_objective_through_onnxruntime_equals_torch(objective, minilm_tokenizer, tmp_path):
    model = tiny_model(objective, minilm_tokenizer)
    export_onnx(model, tmp_path)
    check_against_torch(model, tmp_path)


@pytest.mark.slow
def test_the_full_preset_encoder_through_onnxruntime_equals_torch(tmp_path):
    config_kwargs, _ = preset_config("full")
    model = tiny_model("classifier", **config_kwargs)
    export_onnx(model, tmp_path)
    runner = OnnxSkeletonClip(tmp_path)
    size = tuple(model.config.heatmap_config.eval_size)
    for seed, (n, m) in enumerate([(1, 2), (3, 1)]):
        assert_matches_torch(model, runner, *awkward_keypoints(seed, n, m, size))


# ----------------------------------------------------------------------------------------------------------------
# The pipeline through onnxruntime
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def annotations():
    data = make_synthetic_poses(num_train_per_class=0, num_val_per_class=1)
    return [ann for ann in data["annotations"] if ann["label"] in (0, 4, 11)]  # class 11 has two persons


def assert_same_predictions(got, expected):
    if isinstance(expected, list) and expected and "predictions" in expected[0]:  # timelines
        assert [(w["start_frame"], w["end_frame"]) for w in got] == [(w["start_frame"], w["end_frame"]) for w in expected]
        for window_got, window_expected in zip(got, expected):
            assert_same_predictions(window_got["predictions"], window_expected["predictions"])
        return
    assert {p["label"] for p in got} == {p["label"] for p in expected}
    scores = {p["label"]: p["score"] for p in got}
    assert max(abs(scores[p["label"]] - p["score"]) for p in expected) <= TOLERANCE


@pytest.mark.parametrize("kwargs", [{}, {"num_clips": 2, "flip": True, "window": 20, "stride": 10}])
def test_the_pipeline_through_onnxruntime_equals_the_pipeline_through_torch(exported_classifier, exported_pacl,
                                                                           annotations, kwargs):
    classifier, classifier_folder = exported_classifier
    pacl, pacl_folder, labels = exported_pacl
    for model, folder, extra in ((classifier, classifier_folder, {}), (pacl, pacl_folder, {"candidate_labels": labels, "hypothesis_template": TEMPLATE})):
        through_torch = pipeline(TASK, model=model)(annotations, batch_size=2, top_k=10, **kwargs, **extra)
        through_ort = pipeline(TASK, model=OnnxSkeletonClip(folder))(annotations, batch_size=2, top_k=10, **kwargs)
        assert len(through_ort) == len(annotations)
        for got, expected in zip(through_ort, through_torch):
            assert_same_predictions(got, expected)


def test_the_exported_classes_in_another_order_are_reordered(exported_pacl, annotations):
    _, folder, labels = exported_pacl
    recognizer = pipeline(TASK, model=OnnxSkeletonClip(folder))
    default = {p["label"]: p["score"] for p in recognizer(annotations[0], top_k=10)}
    reordered = {p["label"]: p["score"] for p in recognizer(annotations[0], top_k=10, candidate_labels=labels[::-1])}
    assert reordered == default and list(default) != []


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


def test_other_candidate_labels_or_template_name_the_exported_set(exported_pacl, exported_classifier, annotations):
    _, folder, labels = exported_pacl
    recognizer = pipeline(TASK, model=OnnxSkeletonClip(folder))
    with pytest.raises(ValueError, match=r"candidate_labels \['walking', 'bow'\] are not the exported classes of ") as info:
        recognizer(annotations[0], candidate_labels=["walking", labels[0]])
    assert repr(labels) in str(info.value) and "--candidate_labels" in str(info.value)
    with pytest.raises(ValueError, match="cannot change it.*encoded at export time"):
        recognizer(annotations[0], hypothesis_template="a video of {}")
    classifier = pipeline(TASK, model=OnnxSkeletonClip(exported_classifier[1]))
    with pytest.raises(ValueError, match="needs a contrastive SkeletonClipModel"):
        classifier(annotations[0], candidate_labels=["a", "b"])


def test_inputs_of_the_wrong_shape_are_named(exported_classifier):
    runner = OnnxSkeletonClip(exported_classifier[1])
    keypoints, scores = awkward_keypoints(0, 2, 1, (16, 16))
    with pytest.raises(ValueError, match=r"`keypoints` must have shape \[N, M, 8, 17, 2\].*got \[2, 1, 6, 17, 2\]"):
        runner(keypoints[:, :, :6], scores[:, :, :6])
    with pytest.raises(ValueError, match=r"`keypoint_scores` must have shape \[2, 1, 8, 17\]"):
        runner(keypoints, scores[:1])
    with pytest.raises(ValueError, match=r"`mirrored` must be bool \[2\] \(one flag per view"):
        runner(keypoints, scores, mirrored=np.array([1, 0]))
    runner.takes_mirrored = False  # as a graph recorded without the `mirrored` input
    with pytest.raises(ValueError, match="takes no `mirrored` input.*export the model again"):
        runner(keypoints, scores, mirrored=np.array([True, False]))


def test_a_folder_without_the_model_is_named(saved_classifier, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"no model\.onnx; an exported folder holds"):
        OnnxSkeletonClip(saved_classifier[1])  # a torch checkpoint, not an exported folder
    assert main(["export", "--model_name_or_path", str(tmp_path), "--output_dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --model_name_or_path {tmp_path}: no config.json; a folder saved by `skeletonclip train` (or "
        "save_pretrained) goes here."
    ]
    assert not os.path.exists(tmp_path / "out")
    (tmp_path / "empty.txt").write_text("\n \n")
    assert main(["export", "--model_name_or_path", str(saved_classifier[1]), "--output_dir", str(tmp_path / "out"),
                 "--candidate_labels", str(tmp_path / "empty.txt")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --candidate_labels {tmp_path / 'empty.txt'} holds no class texts (one per line)."]

