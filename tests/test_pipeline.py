"""The `skeleton-action-recognition` pipeline: scores against the trainer's evaluation path, the input kinds, open
vocabulary, timelines over long inputs, errors, and checkpoints that bring the pipeline with them (a fresh process
without the package)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_HEATMAP, TINY_TEXT, TINY_VIDEO, pyskl_mirror, record_hub_uploads
from transformers import pipeline

from modeling_skeletonclip import (
    PoseClipTransform,
    PoseCollator,
    PoseDataError,
    SkeletonActionRecognitionPipeline,
    SkeletonClipConfig,
    SkeletonClipForActionRecognition,
    SkeletonClipModel,
)
from modeling_skeletonclip.synthetic_poses import SYNTHETIC_CLASS_NAMES, make_synthetic_poses

NTU_CLASSES = {0: "drink water", 1: "eat meal/snack", 2: "kicking something", 3: "jump up"}
CLASSIFIER_CLASSES = dict(enumerate(SYNTHETIC_CLASS_NAMES[:7]))  # more classes than the default top_k
TASK = "skeleton-action-recognition"


def tiny_model(kind, tokenizer=None, clip_len=8):
    """A tiny contrastive model ("itc", "pacl"; with `tokenizer` attached) or the classifier, in eval mode."""
    torch.manual_seed(0)
    common = dict(video_config=TINY_VIDEO, heatmap_config=TINY_HEATMAP, clip_len=clip_len)
    if kind == "classifier":
        return SkeletonClipForActionRecognition(SkeletonClipConfig(id2label=CLASSIFIER_CLASSES, **common)).eval()
    config = SkeletonClipConfig(text_config=TINY_TEXT, frame_embed_dim=24, projection_dim=16, id2label=NTU_CLASSES,
                                objective=kind, **common)
    model = SkeletonClipModel(config).eval()
    model.tokenizer = tokenizer
    return model


def pose_row(annotation):
    """A pyskl annotation as a row of `load_pose_dataset` (the trainer's input)."""
    m, t, v, _ = annotation["keypoint"].shape
    return {"keypoint": annotation["keypoint"].reshape(m * t, v, 2),
            "keypoint_score": annotation["keypoint_score"].reshape(m * t, v), "num_person": m,
            "img_shape": annotation["img_shape"], "label": 0}


def as_scores(predictions):
    return {p["label"]: p["score"] for p in predictions}


def assert_same_scores(predictions, expected):
    """The same classes with the same scores up to float32 rounding (another process may sum in another order)."""
    assert sorted(p["label"] for p in predictions) == sorted(p["label"] for p in expected)
    got = as_scores(predictions)
    np.testing.assert_allclose([got[p["label"]] for p in expected], [p["score"] for p in expected], rtol=1e-5,
                               atol=1e-7)


def view_averaged(logits, views):
    return logits.float().softmax(dim=-1).view(-1, views, logits.shape[-1]).mean(dim=1)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def annotations():
    """Three pyskl annotations (float16, as some pyskl files): two with one person, one with two."""
    data = make_synthetic_poses(num_train_per_class=0, num_val_per_class=2)
    by_label = {}
    for ann in data["annotations"]:
        if ann["keypoint"].shape[0] == (2 if ann["label"] == 11 else 1):
            by_label.setdefault(ann["label"], ann)
    return [by_label[0], by_label[11], by_label[4]]


@pytest.fixture(scope="module")
def pipes(minilm_tokenizer):
    return {kind: pipeline(TASK, model=tiny_model(kind, minilm_tokenizer)) for kind in ("itc", "pacl", "classifier")}


# ----------------------------------------------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["itc", "pacl", "classifier"])
def test_scores_are_the_trainers_view_averaged_probabilities(pipes, annotations, minilm_tokenizer, kind, tmp_path):
    from modeling_skeletonclip import SkeletonClipTrainer, SkeletonClipTrainingArguments

    pipe = pipes[kind]
    config = pipe.model.config
    transform = PoseClipTransform("test", clip_len=8, num_clips=2, flip_double=True,
                                  eval_size=tuple(config.heatmap_config.eval_size), layout=config.heatmap_config.layout)
    trainer = SkeletonClipTrainer(
        model=pipe.model,
        args=SkeletonClipTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                                           per_device_eval_batch_size=2, disable_tqdm=True),
        processing_class=minilm_tokenizer if kind != "classifier" else None,
        eval_data_collator=PoseCollator(transform=transform),
    )
    expected = np.exp(trainer.predict([pose_row(ann) for ann in annotations]).predictions)  # [N, L]
    names = [config.id2label[i] for i in range(len(config.id2label))]

    got = pipe(annotations, num_clips=2, flip=True, top_k=len(names))
    assert len(got) == len(annotations)
    for predictions, row in zip(got, expected):
        scores = [p["score"] for p in predictions]
        assert scores == sorted(scores, reverse=True) and sorted(as_scores(predictions)) == sorted(names)
        np.testing.assert_allclose([as_scores(predictions)[name] for name in names], row, rtol=1e-5, atol=1e-7)
    assert not pipe.model.training


def test_flipped_views_are_the_rendered_clips_mirrored_as_pyskl_mirrors_them(annotations):
    """flip=True scores the clips' heatmaps and those heatmaps mirrored (columns reversed, left/right channels
    swapped: `pyskl_mirror`), rendered here from the unflipped test clips."""
    model = tiny_model("classifier")
    torch.nn.init.normal_(model.classifier.weight, std=2.0)  # probabilities far from uniform
    recognizer = pipeline(TASK, model=model)
    layout = model.config.heatmap_config.joint_layout
    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    transform = PoseClipTransform("test", clip_len=8, num_clips=2, flip_double=False, eval_size=(16, 16))
    for ann in annotations[:2]:
        clip = transform(pose_row(ann))
        with torch.no_grad():
            heatmaps, _ = model.prepare_heatmaps(torch.from_numpy(clip["keypoints"])[None],
                                                 torch.from_numpy(clip["keypoint_scores"])[None])  # [2, C, T, H, W]
            mirrored = torch.from_numpy(pyskl_mirror(heatmaps.numpy(), 17, layout.flip_permutation()))
            logits = model(heatmaps=torch.cat([heatmaps, mirrored])[None]).logits  # [4, L]
        got = as_scores(recognizer(ann, num_clips=2, flip=True, top_k=len(names)))
        np.testing.assert_allclose([got[name] for name in names], view_averaged(logits, 4)[0], rtol=1e-5, atol=1e-7)
        unflipped = as_scores(recognizer(ann, num_clips=2, top_k=len(names)))
        assert max(abs(got[name] - unflipped[name]) for name in names) > 1e-3  # the mirrored views count


def test_a_keypoint_array_scores_as_the_equivalent_annotation(pipes, annotations):
    pipe = pipes["itc"]
    for ann in annotations:
        expected = pipe(ann)
        assert pipe(ann["keypoint"], keypoint_scores=ann["keypoint_score"], img_shape=ann["img_shape"]) == expected
        as_torch = {key: torch.from_numpy(ann[key]) for key in ("keypoint", "keypoint_score")}
        assert pipe({**as_torch, "img_shape": ann["img_shape"]}) == expected
        assert pipe(pose_row(ann)) == expected  # a row of load_pose_dataset: [M*T, V, 2] with num_person
    one_person = annotations[0]
    assert pipe(one_person["keypoint"][0], keypoint_scores=one_person["keypoint_score"][0],
                img_shape=one_person["img_shape"]) == pipe(one_person)  # [T, V, 2]


def test_missing_scores_are_one_for_present_joints(pipes, annotations):
    ann = annotations[0]
    present = np.any(ann["keypoint"] != 0, axis=-1).astype(np.float32)
    assert (present == 0).any()  # the synthetic clip has missing joints
    expected = pipes["itc"]({**ann, "keypoint_score": present})
    assert pipes["itc"](ann["keypoint"], img_shape=ann["img_shape"]) == expected


@pytest.mark.parametrize("kind", ["itc", "classifier"])
def test_a_batched_list_equals_one_input_at_a_time(pipes, annotations, kind):
    pipe = pipes[kind]
    one_by_one = [pipe(ann, num_clips=2) for ann in annotations]
    batched = pipe(annotations, num_clips=2, batch_size=2)  # one batch pads the one-person clip to two persons
    assert len(batched) == len(one_by_one)
    for got, expected in zip(batched, one_by_one):
        assert_same_scores(got, expected)
    assert pipe([]) == []


@pytest.mark.parametrize("kind", ["itc", "pacl"])
def test_candidate_labels_and_template_are_the_texts_scored(pipes, annotations, minilm_tokenizer, kind):
    pipe = pipes[kind]
    model, ann = pipe.model, annotations[1]
    labels, template = ["sit down", "stand up", "wave a hand"], "a person who is doing {}"
    got = as_scores(pipe(ann, candidate_labels=labels, hypothesis_template=template, num_clips=2))
    assert sorted(got) == sorted(labels)

    texts = minilm_tokenizer([template.format(label) for label in labels], padding=True, truncation=True,
                             max_length=model.config.text_max_length, return_tensors="pt")
    clip = PoseClipTransform("test", clip_len=8, num_clips=2, flip_double=False, eval_size=(16, 16))(pose_row(ann))
    with torch.no_grad():
        text_embeds = F.normalize(model.get_text_features(**texts).pooler_output, dim=-1)
        logits = model.score_all_classes(keypoints=torch.from_numpy(clip["keypoints"])[None],
                                         keypoint_scores=torch.from_numpy(clip["keypoint_scores"])[None],
                                         class_text_embeds=text_embeds)
    np.testing.assert_allclose([got[label] for label in labels], view_averaged(logits, 2)[0], rtol=1e-5, atol=1e-7)
    bare = as_scores(pipe(ann, candidate_labels=labels, num_clips=2))  # the model's template, "{}"
    assert not np.allclose([bare[label] for label in labels], [got[label] for label in labels], rtol=0, atol=1e-6)


def test_top_k_defaults_to_five_and_is_capped_at_the_classes(pipes, annotations):
    pipe = pipes["classifier"]
    everything = pipe(annotations[0], top_k=100)
    assert len(everything) == len(CLASSIFIER_CLASSES)
    assert pipe(annotations[0]) == everything[:5]
    assert pipe(annotations[0], top_k=2) == everything[:2]
    assert len(pipes["itc"](annotations[0])) == len(NTU_CLASSES)  # 4 classes: capped
    assert np.isclose(sum(p["score"] for p in everything), 1.0, atol=1e-5)


def test_clip_len_comes_from_the_config_else_48_with_one_warning(minilm_tokenizer, annotations, caplog):
    pipe = pipeline(TASK, model=tiny_model("itc", minilm_tokenizer, clip_len=12))
    assert pipe(annotations[0]) == pipe(annotations[0], clip_len=12) != pipe(annotations[0], clip_len=8)
    old = pipeline(TASK, model=tiny_model("itc", minilm_tokenizer, clip_len=None))  # configs saved before the field
    with caplog.at_level("WARNING"):
        first = old(annotations[0])
        old(annotations[0])
    assert first == old(annotations[0], clip_len=48)
    warnings = [r.getMessage() for r in caplog.records if "clip_len" in r.getMessage()]
    assert len(warnings) == 1 and "sampling 48" in warnings[0]


# ----------------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------------


def test_the_classifier_refuses_candidate_labels(pipes, annotations):
    with pytest.raises(ValueError, match="candidate_labels needs a contrastive SkeletonClipModel .* scores its own "
                                         "classes: \\['raise one arm'"):
        pipes["classifier"](annotations[0], candidate_labels=["sit down", "stand up"])
    with pytest.raises(ValueError, match="hypothesis_template needs a contrastive"):
        pipes["classifier"](annotations[0], hypothesis_template="a person {}")


def test_a_window_in_seconds_needs_a_frame_rate(pipes, annotations):
    with pytest.raises(ValueError, match=r"^Input: window=2s needs the frame rate: the input has no 'fps'; pass "
                                         r"fps=\.\.\. or give window in frames"):
        pipes["itc"](annotations[0], window="2s")
    with pytest.raises(ValueError, match=r"^Input 1: stride=0.5s needs the frame rate"):
        pipes["itc"]([{**annotations[0], "fps": 30}, annotations[1]], window=20, stride="0.5s")


def _bad_inputs(ann):
    kp, sc, shape = ann["keypoint"], ann["keypoint_score"], ann["img_shape"]
    return [
        ({"keypoint": kp[..., :1], "keypoint_score": sc, "img_shape": shape},
         r"field 'keypoint' must be \[M, T, 17, 2\]"),
        ({"keypoint": kp[:, :, :5], "img_shape": shape}, r"field 'keypoint' must be \[M, T, 17, 2\] .* got shape "
                                                          r"\(1, \d+, 5, 2\)"),
        ({"keypoint": kp.astype(bool), "img_shape": shape}, "field 'keypoint' must hold real numbers, got dtype bool"),
        ({"keypoint": kp.astype(np.float32) * 1e7, "img_shape": shape}, "field 'keypoint' holds a coordinate of "
                                                                         "magnitude"),
        ({"keypoint": kp[:, :0], "img_shape": shape}, "field 'keypoint' holds no frame"),
        ({"keypoint": kp, "keypoint_score": sc[:, 1:], "img_shape": shape}, "field 'keypoint_score' must be "
                                                                           r"\[M, T, V\]"),
        ({"keypoint": kp, "keypoint_score": sc}, "field 'img_shape' is missing"),
        ({"keypoint": kp, "img_shape": (0, 640)}, r"field 'img_shape' must be \(height, width\) > 0"),
        ({"keypoint": kp, "img_shape": shape, "fps": -1}, "field 'fps' must be a positive number"),
        ({"keypoints": kp, "img_shape": shape}, "the annotation has no field 'keypoint'"),
        ({**pose_row(ann), "num_person": kp.shape[1] + 1}, "field 'num_person' must be a positive int dividing"),
        (7, r"expected a pose annotation dict, a keypoint array \[M, T, V, 2\] or a video path, got int"),
    ]


@pytest.mark.parametrize("case", range(12))
def test_a_bad_input_is_one_line_naming_its_index_and_field(pipes, annotations, case):
    bad, message = _bad_inputs(annotations[0])[case]
    with pytest.raises(PoseDataError, match=f"^Input 1: {message}") as err:
        pipes["itc"]([annotations[0], bad, annotations[1]], batch_size=2)
    assert "\n" not in str(err.value)


def test_a_malformed_keypoint_array_names_the_field(pipes, annotations):
    ann = annotations[0]
    with pytest.raises(PoseDataError, match=r"^Input: field 'keypoint' must be \[M, T, 17, 2\] or \[T, 17, 2\]"):
        pipes["classifier"](ann["keypoint"][..., 0], img_shape=ann["img_shape"])
    with pytest.raises(PoseDataError, match=r"^Input: field 'keypoint_scores' must be \[M, T, V\]"):
        pipes["classifier"](ann["keypoint"], keypoint_scores=ann["keypoint_score"][:, :-1], img_shape=(480, 640))
    with pytest.raises(ValueError, match="keypoint_scores= goes with a single keypoint array"):
        pipes["classifier"]([ann["keypoint"]], keypoint_scores=ann["keypoint_score"], img_shape=(480, 640))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"window": 1.5}, "window must be a number of frames .* or of seconds"),
        ({"window": "0s"}, "window must be a number of frames"),
        ({"window": 10, "stride": 20}, r"stride \(20 frames\) must not exceed window \(10 frames\)"),
        ({"stride": 5}, "stride= needs window="),
        ({"top_k": 0}, "top_k must be a positive int, got 0"),
        ({"num_clips": True}, "num_clips must be a positive int"),
        ({"flip": 1}, "flip must be True or False"),
        ({"candidate_labels": "sit down"}, "candidate_labels must be a non-empty list of class names"),
        ({"candidate_labels": ["a", "b", "a"]}, r"candidate_labels repeats \['a'\]"),
        ({"hypothesis_template": "a person"}, "hypothesis_template must be a string with '{}'"),
    ],
)
def test_bad_parameters_are_one_clear_error(pipes, annotations, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipes["itc"](annotations[0], **kwargs)


def test_a_video_without_the_video_extra_names_the_extra(pipes, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "modeling_skeletonclip.extract_poses", None)  # as if not installed
    with pytest.raises(ImportError, match=r"^Input 0: '.*clip.mp4' is read as a video, which needs the video extra: "
                                          r"pip install 'skeletonclip\[video\]'"):
        pipes["itc"]([str(tmp_path / "clip.mp4")])


def test_a_video_file_is_recognised_from_its_poses(pipes, annotations, tmp_path):
    """A real video (the astronaut photo moving over 20 frames at 10 fps) through the real MediaPipe model."""
    from helpers import write_astronaut_video

    from modeling_skeletonclip.extract_poses import video_annotation

    path, _ = write_astronaut_video(str(tmp_path / "astronaut.mp4"), num_frames=20, fps=10)
    pipe = pipes["itc"]
    expected = video_annotation(path, "mediapipe")
    assert expected["fps"] == 10.0 and expected["total_frames"] == 20
    from_video, from_annotation = pipe([path, annotations[0]], top_k=10)  # a video among other inputs
    assert from_video == pipe(expected, top_k=10) and from_annotation == pipe(annotations[0], top_k=10)
    assert sorted(p["label"] for p in from_video) == sorted(NTU_CLASSES.values())
    assert np.isclose(sum(p["score"] for p in from_video), 1.0, atol=1e-5)
    timeline = pipe(os.fspath(tmp_path / "astronaut.mp4"), window="1s", stride="0.5s")  # seconds at the video's fps
    assert [(w["start_frame"], w["end_frame"], w["start"], w["end"]) for w in timeline] == [
        (0, 10, 0.0, 1.0), (5, 15, 0.5, 1.5), (10, 20, 1.0, 2.0)]
    assert all(len(w["predictions"]) == len(NTU_CLASSES) for w in timeline)
    with pytest.raises(ValueError, match=r"^Input: '.*poses.pkl' is not a video file \(.mp4, "):
        pipe(str(tmp_path / "poses.pkl"))
    # close() closes the MediaPipe graph the videos were estimated with; the next video starts a new one.
    (estimator,) = pipe._pose_estimators.values()
    pipe.close()
    with pytest.raises(ValueError, match="pose estimator 'mediapipe' is closed"):
        estimator(np.zeros((8, 8, 3), np.uint8))
    with pipe:
        assert pipe(path, top_k=10) == from_video
    assert pipe._pose_estimators == {}


# ----------------------------------------------------------------------------------------------------------------
# Timelines
# ----------------------------------------------------------------------------------------------------------------


def _first_frames(ann, frames):
    return {**ann, "keypoint": ann["keypoint"][:, :frames], "keypoint_score": ann["keypoint_score"][:, :frames]}


def test_windows_cover_the_input_and_score_as_the_sliced_input(pipes, annotations):
    pipe, ann = pipes["itc"], _first_frames(annotations[1], 50)
    timeline = pipe({**ann, "fps": 25.0}, window="0.8s", stride=15)  # 20 frames at 25 fps
    assert [(w["start_frame"], w["end_frame"]) for w in timeline] == [(0, 20), (15, 35), (30, 50)]
    assert [(w["start"], w["end"]) for w in timeline] == [(0.0, 0.8), (0.6, 1.4), (1.2, 2.0)]
    for entry in timeline:
        start, end = entry["start_frame"], entry["end_frame"]
        sliced = {key: ann[key][:, start:end] for key in ("keypoint", "keypoint_score")}
        assert entry["predictions"] == pipe({**ann, **sliced})
    # Frames without a frame rate: no times. Stride defaults to the window; the last window ends with the input.
    tiles = pipe(ann, window=20)
    assert [(w["start_frame"], w["end_frame"], w["start"], w["end"]) for w in tiles] == [
        (0, 20, None, None), (20, 40, None, None), (30, 50, None, None)]
    assert pipe(ann, window=20, fps=10.0)[0]["end"] == 2.0
    # Shorter than the window: one window over the whole input.
    short = pipe(ann, window=64)
    assert [(w["start_frame"], w["end_frame"]) for w in short] == [(0, 50)] and short[0]["predictions"] == pipe(ann)
    batched = pipe([ann, ann], window=20, batch_size=3)  # windows of several inputs share batches
    for timeline in batched:
        assert [w["start_frame"] for w in timeline] == [w["start_frame"] for w in tiles]
        for entry, expected in zip(timeline, tiles):
            assert_same_scores(entry["predictions"], expected["predictions"])


@pytest.fixture(scope="module")
def two_action_classifier():
    """A tiny classifier trained for a few seconds on two well-separated synthetic classes ("raise both arms",
    "squat down"), and its held-out clips of each class."""
    first, second = 1, 4
    data = make_synthetic_poses(num_train_per_class=20, num_val_per_class=10)
    annotations = {ann["frame_dir"]: ann for ann in data["annotations"]}

    def split(name):
        return [annotations[f] for f in data["split"][name] if annotations[f]["label"] in (first, second)]

    train = [{**pose_row(ann), "label": int(ann["label"] == second)} for ann in split("train")]
    config = SkeletonClipConfig(video_config=TINY_VIDEO, heatmap_config=TINY_HEATMAP, clip_len=16,
                                id2label={0: SYNTHETIC_CLASS_NAMES[first], 1: SYNTHETIC_CLASS_NAMES[second]})
    torch.manual_seed(0)
    model = SkeletonClipForActionRecognition(config)
    collate = PoseCollator(PoseClipTransform("train", clip_len=16, train_size=(16, 16), seed=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        batch = collate([train[i] for i in torch.randint(len(train), (16,), generator=generator).tolist()])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    held_out = split("val")
    pipe = pipeline(TASK, model=model)
    predicted = [predictions[0]["label"] for predictions in pipe(held_out, top_k=1, batch_size=len(held_out))]
    truth = [SYNTHETIC_CLASS_NAMES[ann["label"]] for ann in held_out]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth)])
    assert accuracy >= 0.9, f"the two classes are not separated (held-out accuracy {accuracy:.2f}): no timeline test"
    return pipe, held_out


def test_the_timeline_follows_two_actions_in_sequence(two_action_classifier):
    pipe, held_out = two_action_classifier
    window = 30
    first = next(a for a in held_out if a["label"] == 1 and a["keypoint"].shape[:2] >= (1, window)
                 and a["keypoint"].shape[0] == 1)
    second = next(a for a in held_out if a["label"] == 4 and a["keypoint"].shape[1] >= window
                  and a["keypoint"].shape[0] == 1)
    sequence = {key: np.concatenate([first[key], second[key]], axis=1) for key in ("keypoint", "keypoint_score")}
    sequence.update(img_shape=first["img_shape"], fps=30.0)
    timeline = pipe(sequence, window=window, stride=10)
    labels = [entry["predictions"][0]["label"] for entry in timeline]
    boundary = first["keypoint"].shape[1]
    inside_first = [e["predictions"][0]["label"] for e in timeline if e["end_frame"] <= boundary]
    inside_second = [e["predictions"][0]["label"] for e in timeline if e["start_frame"] >= boundary]
    assert inside_first and inside_second, labels
    assert set(inside_first) == {"raise both arms"} and set(inside_second) == {"squat down"}, labels
    assert timeline[-1]["end_frame"] == sequence["keypoint"].shape[1]


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints carry the pipeline
# ----------------------------------------------------------------------------------------------------------------

PIPELINE_CODE = {"configuration_skeletonclip.py", "modeling_skeletonclip.py", "objectives.py", "distributed.py",
                 "heatmaps.py", "pose_layouts.py", "fast_slowonly.py", "text_encoders.py", "pipeline_skeletonclip.py",
                 "pose_transforms.py", "pose_errors.py", "class_descriptions.py"}


@pytest.mark.parametrize("kind, auto_class", [("itc", "AutoModel"), ("classifier", "AutoModelForVideoClassification")])
def test_save_pretrained_names_the_pipeline_and_carries_its_code(pipes, tmp_path, kind, auto_class):
    pipes[kind].model.save_pretrained(tmp_path / "model")  # what the Trainer calls
    pipes[kind].save_pretrained(tmp_path / "pipe")
    for folder in ("model", "pipe"):
        config = json.load(open(tmp_path / folder / "config.json"))
        assert config["custom_pipelines"] == {
            TASK: {"impl": "pipeline_skeletonclip.SkeletonActionRecognitionPipeline", "pt": [auto_class]}}
        assert {name for name in os.listdir(tmp_path / folder) if name.endswith(".py")} == PIPELINE_CODE
    assert os.path.isfile(tmp_path / "pipe" / "tokenizer.json") == (kind != "classifier")


def test_round_trip_through_pipeline_without_a_task(pipes, annotations, tmp_path):
    for kind in ("pacl", "classifier"):
        pipes[kind].save_pretrained(tmp_path / kind)
        loaded = pipeline(model=str(tmp_path / kind), trust_remote_code=True)
        assert loaded.task == TASK and type(loaded.model).__name__ == type(pipes[kind].model).__name__
        assert loaded(annotations, num_clips=2, flip=True) == pipes[kind](annotations, num_clips=2, flip=True)


def test_a_classifier_checkpoint_loaded_as_the_contrastive_model_is_named(pipes, tmp_path, caplog):
    pipes["classifier"].model.save_pretrained(tmp_path)
    wrong = SkeletonClipModel.from_pretrained(tmp_path)
    with caplog.at_level("WARNING"):
        SkeletonActionRecognitionPipeline(model=wrong, tokenizer=pipes["itc"].tokenizer)
    assert ("saved as a SkeletonClipForActionRecognition (config.architectures): if it was loaded from that "
            "checkpoint, part of it is untrained; pass model=AutoModelForVideoClassification.from_pretrained(path)"
            in caplog.text)
    caplog.clear()
    with caplog.at_level("WARNING"):
        SkeletonActionRecognitionPipeline(model=pipes["itc"].model, tokenizer=pipes["itc"].tokenizer)
    assert "config.architectures" not in caplog.text


def test_push_to_hub_uploads_the_pipeline_code_and_names_it(pipes, monkeypatch):
    """No network: the hub API is replaced by a recorder; everything up to the upload runs for real."""
    uploaded = record_hub_uploads(monkeypatch)
    pipes["itc"].push_to_hub("someone/skeletonclip-pipeline")
    assert PIPELINE_CODE | {"config.json", "model.safetensors", "tokenizer.json"} <= set(uploaded)
    assert TASK in json.loads(uploaded["config.json"])["custom_pipelines"]


def test_a_fresh_process_runs_the_checkpoints_own_pipeline(pipes, annotations, tmp_path):
    """`pipeline(model=path, trust_remote_code=True)` from an empty folder, in a process that never imports the
    package: the pipeline class comes from the checkpoint, and its output is the in-process pipeline's."""
    kwargs = {"num_clips": 2, "flip": True}
    expected = {}
    for kind in ("itc", "classifier"):
        pipes[kind].model.save_pretrained(tmp_path / kind)
        expected[kind] = [pipes[kind](annotations, **kwargs), pipes[kind](annotations[1], window=20, fps=30.0)]
    np.savez(tmp_path / "inputs.npz", **{f"{key}{i}": ann[key] for i, ann in enumerate(annotations)
                                         for key in ("keypoint", "keypoint_score")})
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        from transformers import pipeline

        arrays = np.load({str(tmp_path / "inputs.npz")!r})
        annotations = [{{"keypoint": arrays[f"keypoint{{i}}"], "keypoint_score": arrays[f"keypoint_score{{i}}"],
                        "img_shape": (480, 640)}} for i in range({len(annotations)})]
        results = {{}}
        for kind in ("itc", "classifier"):
            pipe = pipeline(model={str(tmp_path)!r} + "/" + kind, trust_remote_code=True)
            assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
            assert type(pipe.model).__module__.startswith("transformers_modules"), type(pipe.model).__module__
            results[kind] = [pipe(annotations, **{kwargs!r}), pipe(annotations[1], window=20, fps=30.0)]
            pipe.save_pretrained({str(tmp_path)!r} + "/resaved_" + kind)  # the checkpoint's own code saves again
        assert "modeling_skeletonclip" not in sys.modules, "the package must not be imported"
        json.dump(results, open({str(tmp_path / "out.json")!r}, "w"))
        """
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="",
               OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script], cwd=empty, env=env, timeout=300, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.load(open(tmp_path / "out.json"))
    for kind in expected:
        resaved = tmp_path / f"resaved_{kind}"
        assert {name for name in os.listdir(resaved) if name.endswith(".py")} == PIPELINE_CODE
        assert TASK in json.load(open(resaved / "config.json"))["custom_pipelines"]
    for kind in expected:
        (batch, timeline), (expected_batch, expected_timeline) = got[kind], expected[kind]
        for predictions, expected_predictions in zip(batch + [w["predictions"] for w in timeline],
                                                     expected_batch + [w["predictions"] for w in expected_timeline]):
            assert_same_scores(predictions, expected_predictions)
        strip = [{k: v for k, v in w.items() if k != "predictions"} for w in timeline]
        assert strip == [{k: v for k, v in w.items() if k != "predictions"} for w in expected_timeline]
