"""Several texts per class (CLIP's prompt ensembling): the averaged class embedding against an independent reference,
one description per class against the plain path, the training targets and their gradients, the pipeline and the
training command; the packaged description files and the published SynSE zero-shot split."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_HEATMAP, TINY_TEXT, TINY_VIDEO, random_keypoints, synthetic_pose_files, tiny_command_args
from transformers import pipeline

from modeling_skeletonclip import (
    PoseClipTransform,
    PoseCollator,
    SkeletonClipConfig,
    SkeletonClipModel,
    SkeletonClipTrainer,
    SkeletonClipTrainingArguments,
)
from modeling_skeletonclip.objectives import one_text_per_group
from modeling_skeletonclip.resources import PACKAGE_DIR, packaged_data_file
from modeling_skeletonclip.synthetic_poses import SYNTHETIC_CLASS_NAMES, make_synthetic_poses

CLASSES = {0: "drink water", 1: "eat meal/snack", 2: "kicking something", 3: "jump up"}
TEMPLATE = "a person doing {}"
# Two classes with descriptions, two without (they fall back to the template text of their name).
DESCRIPTIONS = {
    "drink water": ["a person drinks from a cup", "a hand raises a glass to the mouth"],
    "jump up": ["a person jumps", "both feet leave the ground", "a person leaps into the air"],
}
TASK = "skeleton-action-recognition"

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_model(objective="itc", descriptions=None, tokenizer=None, **config_kwargs):
    """A tiny contrastive model (seeded weights) with `descriptions` as its `class_descriptions`."""
    torch.manual_seed(0)
    config = SkeletonClipConfig(video_config=TINY_VIDEO, text_config=TINY_TEXT, heatmap_config=TINY_HEATMAP,
                                frame_embed_dim=24, projection_dim=16, id2label=CLASSES, objective=objective,
                                text_template=TEMPLATE, class_descriptions=descriptions, clip_len=8,
                                momentum_queue_size=64, **config_kwargs)
    model = SkeletonClipModel(config)
    model.tokenizer = tokenizer
    return model


def class_text_lists(descriptions=DESCRIPTIONS):
    """Each class's texts, written out independently of the config."""
    return [descriptions.get(name, [TEMPLATE.format(name)]) for name in CLASSES.values()]


def reference_class_embeds(model, tokenizer, text_lists):
    """Each text encoded on its own by the model's text tower, normalised; per class the mean, normalised."""
    classes = []
    with torch.no_grad():
        for texts in text_lists:
            embeds = [F.normalize(model.get_text_features(**tokenizer([text], return_tensors="pt")).pooler_output[0],
                                  dim=0) for text in texts]
            classes.append(F.normalize(torch.stack(embeds).mean(dim=0), dim=0))
    return torch.stack(classes)  # [L, D]


def trainer_for(model, tokenizer, tmp_path):
    args = SkeletonClipTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", disable_tqdm=True)
    return SkeletonClipTrainer(model=model, args=args, processing_class=tokenizer)


def clips(labels, seed=0):
    """Transformed clips as the collator takes them: `[views=1, M=1, T=8, V=17, 2]` keypoints in a 16x16 frame."""
    keypoints, scores = random_keypoints(len(labels), frames=8, views=1, seed=seed)
    return [{"keypoints": keypoints[i].numpy(), "keypoint_scores": scores[i].numpy(), "label": label}
            for i, label in enumerate(labels)]


# ----------------------------------------------------------------------------------------------------------------
# Evaluation: the averaged class embedding
# ----------------------------------------------------------------------------------------------------------------


def test_evaluation_embeds_each_class_as_the_normalised_mean_of_its_texts(minilm_tokenizer, tmp_path):
    model = tiny_model(descriptions=DESCRIPTIONS).eval()
    got = trainer_for(model, minilm_tokenizer, tmp_path).encode_class_texts(model)  # [4, D]
    expected = reference_class_embeds(model, minilm_tokenizer, class_text_lists())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    names_only = reference_class_embeds(model, minilm_tokenizer, [[TEMPLATE.format(n)] for n in CLASSES.values()])
    assert not torch.allclose(got[0], names_only[0], atol=1e-3)  # the descriptions, not the name, were encoded
    torch.testing.assert_close(got[1], names_only[1], rtol=1e-5, atol=1e-6)  # no entry: the template text


def test_one_description_per_class_equal_to_the_template_text_is_the_plain_path(minilm_tokenizer, tmp_path):
    single = {name: [TEMPLATE.format(name)] for name in CLASSES.values()}
    plain, ensembled = tiny_model().eval(), tiny_model(descriptions=single).eval()
    assert torch.equal(trainer_for(ensembled, minilm_tokenizer, tmp_path).encode_class_texts(ensembled),
                       trainer_for(plain, minilm_tokenizer, tmp_path).encode_class_texts(plain))


# ----------------------------------------------------------------------------------------------------------------
# Training: targets, losses, gradients
# ----------------------------------------------------------------------------------------------------------------


def test_the_collator_pairs_every_clip_with_all_texts_of_its_class(minilm_tokenizer):
    collator = PoseCollator(tokenizer=minilm_tokenizer, class_texts=tiny_model(descriptions=DESCRIPTIONS)
                            .config.class_text_lists(), text_max_length=16)
    batch = collator(clips([3, 1, 0]))
    assert batch["text_groups"].tolist() == [0, 0, 0, 1, 2, 2]
    texts = DESCRIPTIONS["jump up"] + [TEMPLATE.format("eat meal/snack")] + DESCRIPTIONS["drink water"]
    assert batch["input_ids"].tolist() == minilm_tokenizer(texts, padding=True)["input_ids"]
    plain = PoseCollator(tokenizer=minilm_tokenizer, class_texts=list(CLASSES.values()), text_template=TEMPLATE)
    assert "text_groups" not in plain(clips([3, 1, 0]))


def test_the_contrastive_loss_with_ensembles_is_the_hand_computation(minilm_tokenizer):
    model = tiny_model(descriptions=DESCRIPTIONS).eval()  # eval: no dropout, the same heatmaps for both sides
    labels = [0, 3, 0, 1]  # two clips share class 0: label-aware targets
    collator = PoseCollator(tokenizer=minilm_tokenizer, class_texts=class_text_lists(), text_max_length=16)
    batch = collator(clips(labels))
    with torch.no_grad():
        loss = model(**batch).loss
        video = F.normalize(model.get_video_features(batch["keypoints"], batch["keypoint_scores"]).pooler_output,
                            dim=-1)  # [4, D]
    texts = reference_class_embeds(model, minilm_tokenizer, [class_text_lists()[label] for label in labels])
    logits = (video @ texts.t() / model.temperature.detach()).double()  # [clips, texts]
    same = torch.tensor([[float(a == b) for b in labels] for a in labels], dtype=torch.double)
    targets = same / same.sum(dim=1, keepdim=True)  # symmetric here: texts are paired with clips
    video_to_text = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    text_to_video = -(targets * logits.t().log_softmax(dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(loss.double(), (video_to_text + text_to_video) / 2, rtol=1e-5, atol=1e-6)


OBJECTIVES = [("itc", {}), ("itc_itm", {}), ("itc_momentum", {}), ("pacl", {}),
              ("pacl", {"pacl_training": "in_batch"})]


def training_step(model, batch, tokenizer, seed=0):
    """The loss of one training forward (the Trainer's `training_inputs` first), with a fixed seed."""
    model.train()
    torch.manual_seed(seed)
    return model(**model.training_inputs(dict(batch), tokenizer)).loss


@pytest.mark.parametrize("objective, extra", OBJECTIVES, ids=[o + "".join(e.values()) for o, e in OBJECTIVES])
def test_one_template_description_per_class_trains_as_the_plain_path(minilm_tokenizer, objective, extra):
    single = {name: [TEMPLATE.format(name)] for name in CLASSES.values()}
    plain = tiny_model(objective, **extra)
    ensembled = tiny_model(objective, descriptions=single, **extra)
    examples = clips([0, 3, 0, 1])
    plain_batch = PoseCollator(tokenizer=minilm_tokenizer, class_texts=list(CLASSES.values()), text_max_length=16,
                               text_template=TEMPLATE)(examples)
    ensemble_batch = PoseCollator(tokenizer=minilm_tokenizer, class_texts=ensembled.config.class_text_lists(),
                                  text_max_length=16)(examples)
    assert "text_groups" in ensemble_batch
    for step in range(2):  # the second step sees the momentum queues the first filled
        assert torch.equal(training_step(ensembled, ensemble_batch, minilm_tokenizer, step),
                           training_step(plain, plain_batch, minilm_tokenizer, step))


@pytest.mark.parametrize("objective, extra", OBJECTIVES, ids=[o + "".join(e.values()) for o, e in OBJECTIVES])
def test_gradients_reach_the_text_encoder_through_every_description(minilm_tokenizer, objective, extra):
    model = tiny_model(objective, descriptions=DESCRIPTIONS, **extra)
    batch = PoseCollator(tokenizer=minilm_tokenizer, class_texts=model.config.class_text_lists(),
                         text_max_length=16)(clips([0, 3, 0, 1]))
    loss = training_step(model, batch, minilm_tokenizer)
    assert torch.isfinite(loss)
    loss.backward()
    grads = model.text_model.embeddings.word_embeddings.weight.grad  # [vocab, hidden]
    for word in ("cup", "glass", "feet", "leaps"):  # each in one description only
        (token,) = minilm_tokenizer(word, add_special_tokens=False)["input_ids"]
        assert grads[token].abs().sum() > 0, word


def test_itm_matches_each_slot_through_one_of_its_own_descriptions_drawn_at_random():
    groups = torch.tensor([0, 0, 1, 1, 1, 2])
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([one_text_per_group(groups, 3, generator) for _ in range(300)])  # [300, 3]
    assert (groups[draws] == torch.arange(3)).all()  # always a text of the slot itself
    assert [sorted(set(draws[:, g].tolist())) for g in range(3)] == [[0, 1], [2, 3, 4], [5]]  # every one drawn


def test_forward_refuses_text_groups_that_leave_a_clip_without_text(minilm_tokenizer):
    model = tiny_model(descriptions=DESCRIPTIONS).eval()
    batch = PoseCollator(tokenizer=minilm_tokenizer, class_texts=class_text_lists(),
                         text_max_length=16)(clips([1, 2]))  # one text each
    batch["text_groups"] = torch.tensor([0, 0])
    with pytest.raises(ValueError, match=r"`text_groups` gives groups \[1\] no text"):
        model(**batch)


# ----------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------


def pose_row(annotation):
    """A pyskl annotation as a row of `load_pose_dataset` (what the transforms take)."""
    m, t, v, _ = annotation["keypoint"].shape
    return {"keypoint": annotation["keypoint"].reshape(m * t, v, 2),
            "keypoint_score": annotation["keypoint_score"].reshape(m * t, v), "num_person": m,
            "img_shape": annotation["img_shape"], "label": 0}


@pytest.fixture(scope="module")
def annotation():
    return make_synthetic_poses(num_train_per_class=0, num_val_per_class=1)["annotations"][0]


def as_scores(predictions):
    return {p["label"]: p["score"] for p in predictions}


def test_the_pipeline_scores_the_models_descriptions_by_default(minilm_tokenizer, annotation):
    model = tiny_model(descriptions=DESCRIPTIONS, tokenizer=minilm_tokenizer).eval()
    pipe = pipeline(TASK, model=model)
    got = as_scores(pipe(annotation, top_k=4))
    transform = PoseClipTransform("test", clip_len=8, num_clips=1, flip_double=False, eval_size=(16, 16))
    clip = transform(pose_row(annotation))
    with torch.no_grad():
        logits = model.score_all_classes(keypoints=torch.from_numpy(clip["keypoints"])[None],
                                         keypoint_scores=torch.from_numpy(clip["keypoint_scores"])[None],
                                         class_text_embeds=reference_class_embeds(model, minilm_tokenizer,
                                                                                  class_text_lists()))
    np.testing.assert_allclose([got[name] for name in CLASSES.values()], logits.softmax(dim=-1)[0], rtol=1e-5,
                               atol=1e-7)
    # The same texts given as a dict of candidate labels; `class_descriptions={}` scores the plain names.
    assert as_scores(pipe(annotation, candidate_labels=dict(zip(CLASSES.values(), class_text_lists())),
                          top_k=4)) == got
    plain = as_scores(pipe(annotation, class_descriptions={}, top_k=4))
    assert plain == as_scores(pipeline(TASK, model=tiny_model(tokenizer=minilm_tokenizer).eval())(annotation, top_k=4))
    assert not np.allclose([plain[n] for n in CLASSES.values()], [got[n] for n in CLASSES.values()], atol=1e-6)
    # The template applies to classes without descriptions only.
    templated = as_scores(pipe(annotation, candidate_labels=["drink water", "sit down"], hypothesis_template="{}"))
    texts = [DESCRIPTIONS["drink water"], ["sit down"]]
    with torch.no_grad():
        logits = model.score_all_classes(keypoints=torch.from_numpy(clip["keypoints"])[None],
                                         keypoint_scores=torch.from_numpy(clip["keypoint_scores"])[None],
                                         class_text_embeds=reference_class_embeds(model, minilm_tokenizer, texts))
    np.testing.assert_allclose([templated["drink water"], templated["sit down"]], logits.softmax(dim=-1)[0],
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"candidate_labels": {"sit down": []}}, "candidate_labels (a dict of descriptions): class 'sit down' must "
                                                 "have a non-empty list of non-empty texts, got []."),
        ({"candidate_labels": {"sit down": "a person sits"}}, "class 'sit down' must have a non-empty list"),
        ({"class_descriptions": ["a person sits"]}, "class_descriptions must be an object mapping class names to "
                                                    "lists of texts, got list."),
        ({"class_descriptions": {"jump up": ["ok", 3]}}, "class 'jump up' must have a non-empty list of non-empty "
                                                         "texts, got ['ok', 3]."),
    ],
)
def test_bad_descriptions_in_the_pipeline_are_one_clear_error(minilm_tokenizer, annotation, kwargs, message):
    pipe = pipeline(TASK, model=tiny_model(tokenizer=minilm_tokenizer).eval())
    with pytest.raises(ValueError) as err:
        pipe(annotation, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_a_saved_model_keeps_its_descriptions_in_a_fresh_process(minilm_tokenizer, annotation, tmp_path):
    """`pipeline(model=path, trust_remote_code=True)` in a process that never imports the package scores the
    descriptions saved in the config."""
    model = tiny_model(descriptions=DESCRIPTIONS, tokenizer=minilm_tokenizer).eval()
    model.save_pretrained(tmp_path / "model")
    assert json.load(open(tmp_path / "model" / "config.json"))["class_descriptions"] == DESCRIPTIONS
    pipe = pipeline(TASK, model=model)
    expected, plain = pipe(annotation, top_k=4), pipe(annotation, top_k=4, class_descriptions={})
    np.savez(tmp_path / "input.npz", keypoint=annotation["keypoint"], keypoint_score=annotation["keypoint_score"])
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        from transformers import pipeline

        arrays = np.load({str(tmp_path / "input.npz")!r})
        annotation = {{"keypoint": arrays["keypoint"], "keypoint_score": arrays["keypoint_score"],
                       "img_shape": {tuple(annotation["img_shape"])!r}}}
        pipe = pipeline(model={str(tmp_path / "model")!r}, trust_remote_code=True)
        assert "modeling_skeletonclip" not in sys.modules, "the package must not be imported"
        json.dump(pipe(annotation, top_k=4), open({str(tmp_path / "out.json")!r}, "w"))
        """
    )
    (tmp_path / "empty").mkdir()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), PYTHONPATH="",
               OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path / "empty", env=env, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    got = as_scores(json.load(open(tmp_path / "out.json")))
    names = list(CLASSES.values())
    np.testing.assert_allclose([got[n] for n in names], [as_scores(expected)[n] for n in names], rtol=1e-5, atol=1e-7)
    assert not np.allclose([got[n] for n in names], [as_scores(plain)[n] for n in names], atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# The training command
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def script():
    from modeling_skeletonclip import run_training

    return run_training


@pytest.fixture(scope="module")
def poses(tmp_path_factory):
    return synthetic_pose_files(str(tmp_path_factory.mktemp("poses")), num_train_per_class=1)


def tiny_args(poses, output_dir, *extra):
    return tiny_command_args(poses, output_dir, "--save_strategy", "no", *extra)


def write_json(path, value):
    path.write_text(json.dumps(value))
    return str(path)


@pytest.mark.parametrize(
    "value, message",
    [
        (["raise one arm"], "must be an object mapping class names to lists of texts, got list."),
        ({"bow": "a person bows"}, "class 'bow' must have a non-empty list of non-empty texts, got 'a person bows'."),
        ({"bow": []}, "class 'bow' must have a non-empty list of non-empty texts, got []."),
        ({"bow": ["a person bows", ""]}, "class 'bow' must have a non-empty list of non-empty texts, got ['a person "
                                         "bows', '']."),
    ],
)
def test_a_malformed_descriptions_file_is_one_line_naming_the_file_and_class(script, poses, tmp_path, value,
                                                                             message):
    path = write_json(tmp_path / "descriptions.json", value)
    with pytest.raises(script.ArgumentError) as err:
        script.main(tiny_args(poses, tmp_path / "out", "--do_train", "--class_descriptions", path))
    assert str(err.value) == f"--class_descriptions {path}: {message}"
    assert not os.path.exists(str(tmp_path / "out") + "_cache")  # refused before the data were read


def test_a_class_outside_the_label_map_is_named(script, poses, tmp_path):
    path = write_json(tmp_path / "descriptions.json", {"bow": ["a person bows"], "raise one armm": ["an arm up"]})
    with pytest.raises(script.ArgumentError) as err:
        script.main(tiny_args(poses, tmp_path / "out", "--do_train", "--class_descriptions", path))
    assert str(err.value) == (f"--class_descriptions {path}: class 'raise one armm' is not in the label map (did you "
                              "mean 'raise one arm'?).")


def test_the_classifier_refuses_descriptions(script, poses, tmp_path):
    path = write_json(tmp_path / "descriptions.json", {"bow": ["a person bows"]})
    with pytest.raises(script.ArgumentError, match="--class_descriptions needs the contrastive model"):
        script.main(tiny_args(poses, tmp_path / "out", "--do_train", "--model_type", "classifier",
                              "--class_descriptions", path))


def test_zero_shot_training_with_descriptions_saves_them_and_names_the_fallbacks(script, poses, tmp_path, caplog):
    described = {name: [f"a person who is seen to {name}"] * 2 for name in SYNTHETIC_CLASS_NAMES[:4]}
    path = write_json(tmp_path / "descriptions.json", described)
    out = tmp_path / "zs"
    with caplog.at_level(logging.INFO, logger="modeling_skeletonclip.run_training"):
        script.main(tiny_args(poses, out, "--do_train", "--do_eval", "--max_steps", "1",
                              "--class_split_file", "data/zero_shot/synthetic_10_3.json",
                              "--class_descriptions", path))
    # Seen and unseen classes with descriptions: 4 (0 and 3 of them unseen); the 9 others fall back to their name.
    assert (f"--class_descriptions {path}: 4 of the 13 classes of this run have descriptions; 9 fall back to the "
            "template text of their name") in caplog.text
    config = json.load(open(out / "config.json"))
    assert config["class_descriptions"] == described
    assert len(config["id2label"]) == 10
    assert 0 <= json.load(open(out / "eval_results.json"))["eval_top1_accuracy"] <= 1


# ----------------------------------------------------------------------------------------------------------------
# Packaged files
# ----------------------------------------------------------------------------------------------------------------


def label_map(name):
    with open(os.path.join(PACKAGE_DIR, "data", "label_maps", name)) as f:
        return [line.strip() for line in f if line.strip()]


@pytest.mark.parametrize("name, classes", [("ntu60.json", label_map("ntu60.txt")),
                                           ("synthetic.json", SYNTHETIC_CLASS_NAMES)])
def test_the_packaged_descriptions_cover_their_classes_within_the_token_limit(script, minilm_tokenizer, name,
                                                                              classes):
    path = packaged_data_file(f"data/class_descriptions/{name}")
    assert path is not None
    descriptions = script.read_class_descriptions(path, list(classes))  # well formed, every class in the label map
    assert list(descriptions) == list(classes) and all(2 <= len(texts) <= 3 for texts in descriptions.values())
    limit = SkeletonClipConfig().text_max_length
    lengths = [len(ids) for texts in descriptions.values() for ids in minilm_tokenizer(texts)["input_ids"]]
    assert max(lengths) <= limit  # none is truncated by the default model


def test_the_synse_split_is_the_published_one():
    from modeling_skeletonclip.run_training import read_class_split

    path = packaged_data_file("data/zero_shot/ntu60_55_5_synse.json")
    assert path is not None
    seen, unseen = read_class_split(path)
    names = label_map("ntu60.txt")
    assert [names[c] for c in unseen] == ["reading", "writing", "put on a hat/cap", "jump up",
                                          "touch other person's pocket"]
    assert sorted(seen + unseen) == list(range(60)) and len(seen) == 55
    assert "SynSE" in json.load(open(path))["description"]


def test_models_built_from_one_seed_start_equal():
    """The comparisons above build their two models from one seed: they start with equal weights."""
    a, b = tiny_model(), tiny_model(descriptions=DESCRIPTIONS)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
