"""What a training run writes for people to read: the per-class table, the confusion matrix and top confusions
(`evaluation_report.py`), the learning curves (`learning_curves.py`) and the model card (`model_card.py`, the
trainer's `create_model_card`), checked against independent computations, by opening the images and by parsing the
card back; and once end to end through the training command."""

import csv
import json
import logging
import os
import sys
from collections import Counter

import numpy as np
import pytest
from helpers import TINY_OVERRIDES, tiny_training_run
from huggingface_hub import ModelCard
from PIL import Image

from modeling_skeletonclip import evaluation_report
from modeling_skeletonclip.evaluation_report import write_evaluation_report
from modeling_skeletonclip.learning_curves import curve_rows, write_learning_curves
from modeling_skeletonclip.metrics import load_skeleton_accuracy
from modeling_skeletonclip.model_card import skeletonclip_model_card


NAMES = ["drink water", "eat meal/snack", "kicking something", "jump up", "sit down", "stand up", "a class with a "
         "long name | and a pipe that Markdown must escape"]


def log_probabilities(num_clips, names, seed=0, missing_class=None):
    """`(scores [N, L], labels [N])`: log-softmax of noisy scores that favour the true class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(names), num_clips)
    if missing_class is not None:
        labels[labels == missing_class] = (missing_class + 1) % len(names)
    logits = rng.normal(size=(num_clips, len(names)))
    logits[np.arange(num_clips), labels] += 1.5
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True)), labels


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_real_image(path, min_width, min_height):
    """The PNG opens, has at least this size and shows something: not one flat colour, not (almost) all white."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert width >= min_width and height >= min_height, (width, height)
    assert pixels.std() > 10
    assert (pixels < 200).mean() > 0.01  # ink beyond the antialiased text
    return width, height


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    scores, labels = log_probabilities(200, NAMES, missing_class=3)
    paths = write_evaluation_report(str(folder), "eval", scores, labels, NAMES)
    return folder, scores, labels, paths


def test_the_per_class_table_matches_bincount_and_the_metric(report):
    folder, scores, labels, paths = report
    predicted = scores.argmax(axis=1)
    clips = np.bincount(labels, minlength=len(NAMES))
    correct = np.bincount(labels[predicted == labels], minlength=len(NAMES))
    rows = read_csv(folder / "eval_class_accuracy.csv")
    assert [r["class"] for r in rows] == NAMES and [int(r["label"]) for r in rows] == list(range(len(NAMES)))
    assert [int(r["clips"]) for r in rows] == clips.tolist()
    assert [int(r["top1_correct"]) for r in rows] == correct.tolist()
    assert rows[3]["clips"] == "0" and rows[3]["accuracy"] == ""  # no clips: no accuracy
    accuracies = [float(r["accuracy"]) for r in rows if r["accuracy"]]
    expected = correct[clips > 0] / clips[clips > 0]
    np.testing.assert_allclose(accuracies, expected, atol=1e-6)

    metrics = load_skeleton_accuracy().compute(predictions=scores, references=labels)
    assert np.mean(accuracies) == pytest.approx(metrics["mean_class_accuracy"], abs=1e-6)
    assert correct.sum() / len(labels) == pytest.approx(metrics["top1_accuracy"])
    markdown = (folder / "eval_class_accuracy.md").read_text()
    assert f"Mean class accuracy: {100 * metrics['mean_class_accuracy']:.1f} %" in markdown
    assert "long name \\| and a pipe" in markdown and "| 3 | jump up | 0 | 0 | n/a |" in markdown


def test_top_confusions_are_the_most_frequent_wrong_pairs(report):
    folder, scores, labels, _ = report
    predicted = scores.argmax(axis=1)
    pairs = Counter((int(t), int(p)) for t, p in zip(labels, predicted) if t != p)
    listed = json.loads((folder / "eval_top_confusions.json").read_text())
    assert len(listed) == min(10, len(pairs))
    counts = [c["count"] for c in listed]
    assert counts == sorted(pairs.values(), reverse=True)[: len(listed)]  # the most frequent, in order
    for c in listed:
        t, p = NAMES.index(c["true"]), NAMES.index(c["predicted"])
        assert c["count"] == pairs[(t, p)]
        assert c["share"] == pytest.approx(pairs[(t, p)] / np.sum(labels == t))
    first = listed[0]
    count = f"{first['count']} clip" + ("s" if first["count"] != 1 else "")
    assert (folder / "eval_top_confusions.md").read_text().startswith(
        f"1. {first['true']} -> {first['predicted']}: {count} ({100 * first['share']:.1f} % of ")


def test_the_confusion_matrix_image_opens_and_grows_with_the_classes(report, tmp_path):
    folder, _, _, paths = report
    assert paths["confusion_matrix"] == str(folder / "eval_confusion_matrix.png")
    small = assert_real_image(paths["confusion_matrix"], 400, 400)
    names = [f"class number {i}" for i in range(60)]  # NTU60-sized
    scores, labels = log_probabilities(300, names, seed=1)
    big = write_evaluation_report(str(tmp_path), "predict", scores, labels, names)["confusion_matrix"]
    width, height = assert_real_image(big, 60 * 20, 60 * 20)  # at least 20 pixels a class: names stay legible
    assert width > 2 * small[0] and os.path.basename(big) == "predict_confusion_matrix.png"


def test_labels_outside_the_class_names_are_refused_with_the_sample(tmp_path):
    scores, labels = log_probabilities(5, NAMES)
    labels[2] = len(NAMES)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 7\) .*sample 2 has label 7"):
        write_evaluation_report(str(tmp_path), "eval", scores, labels, NAMES)
    with pytest.raises(ValueError, match="scores have 7 classes but there are 6 class names"):
        write_evaluation_report(str(tmp_path), "eval", scores, labels, NAMES[:6])


def test_many_classes_show_the_best_and_worst_rows_in_markdown():
    rows = [{"label": i, "class": f"c{i}", "clips": 10, "top1_correct": i % 11, "accuracy": (i % 11) / 10}
            for i in range(60)]
    rows[5] = {"label": 5, "class": "empty", "clips": 0, "top1_correct": 0, "accuracy": None}
    text = evaluation_report.class_accuracy_markdown(rows, max_rows=20)
    table = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table) == 20 and "| ... |" in text and "The 10 best and 10 worst of 60 classes" in text
    shown = [float(line.split("|")[5].strip(" %")) for line in table]
    # accuracies (i % 11) / 10: five classes at 100 %, five at 90 %, ..., six at 10 % and six at 0 %
    assert shown == [100.0] * 5 + [90.0] * 5 + [10.0] * 4 + [0.0] * 6
    assert "empty" not in text  # a class without clips has no rank


def block_matplotlib(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # `import` raises ImportError
    monkeypatch.setattr(evaluation_report, "_warned_no_matplotlib", False)


def test_without_matplotlib_the_tables_are_written_and_one_warning_given(tmp_path, monkeypatch, caplog):
    block_matplotlib(monkeypatch)
    scores, labels = log_probabilities(30, NAMES)
    with caplog.at_level(logging.WARNING):
        paths = write_evaluation_report(str(tmp_path), "eval", scores, labels, NAMES)
        curves = write_learning_curves(LOG_HISTORY, str(tmp_path))
    assert "confusion_matrix" not in paths and "learning_curves" not in curves
    assert sorted(os.listdir(tmp_path)) == ["eval_class_accuracy.csv", "eval_class_accuracy.md",
                                            "eval_top_confusions.json", "eval_top_confusions.md",
                                            "learning_curves.csv"]
    warnings = [r for r in caplog.records if "matplotlib is not installed" in r.getMessage()]
    assert len(warnings) == 1


# A resumed run's history (the checkpoint's entries, then the new ones), with loss parts, a step logged twice, the
# evaluation of each epoch and the end-of-training summary.
LOG_HISTORY = [
    {"loss": 2.5, "loss_itc": 2.0, "loss_itm": 0.5, "grad_norm": 3.0, "learning_rate": 1e-4, "epoch": 0.5, "step": 2},
    {"loss": 2.1, "loss_itc": 1.7, "loss_itm": 0.4, "grad_norm": 2.0, "learning_rate": 2e-4, "epoch": 1.0, "step": 4},
    {"eval_loss": 2.2, "eval_top1_accuracy": 0.25, "eval_top5_accuracy": 0.5, "eval_mean_class_accuracy": 0.2,
     "eval_runtime": 1.0, "epoch": 1.0, "step": 4},
    {"loss": 2.0, "loss_itc": 1.6, "loss_itm": 0.4, "grad_norm": 2.0, "learning_rate": 2e-4, "epoch": 1.0, "step": 4},
    {"loss": 1.5, "loss_itc": 1.2, "loss_itm": 0.3, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": 1.5, "step": 6},
    {"loss": 1.2, "loss_itc": 1.0, "loss_itm": 0.2, "grad_norm": 1.0, "learning_rate": 0.0, "epoch": 2.0, "step": 8},
    {"eval_loss": 1.4, "eval_top1_accuracy": 0.5, "eval_top5_accuracy": 0.75, "eval_mean_class_accuracy": 0.45,
     "epoch": 2.0, "step": 8},
    {"train_runtime": 10.0, "train_loss": 1.9, "epoch": 2.0, "step": 8},
]


def test_learning_curve_data_merge_steps_and_keep_the_loss_parts(tmp_path):
    paths = write_learning_curves(LOG_HISTORY, str(tmp_path), title="run")
    rows = read_csv(paths["learning_curves_csv"])
    assert list(rows[0]) == ["step", "epoch", "loss", "loss_itc", "loss_itm", "grad_norm", "learning_rate",
                             "eval_loss", "eval_top1_accuracy", "eval_top5_accuracy", "eval_mean_class_accuracy"]
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]
    assert rows[1]["loss"] == "2.0" and rows[1]["eval_top1_accuracy"] == "0.25"  # the last log of step 4, merged
    assert rows[0]["eval_loss"] == "" and rows[3]["eval_top5_accuracy"] == "0.75"
    assert "train_loss" not in rows[0]  # the summary is no point of a curve
    assert_real_image(paths["learning_curves"], 1000, 300)


def test_learning_curves_of_a_run_without_evaluation(tmp_path):
    history = [e for e in LOG_HISTORY if not any(k.startswith("eval_") for k in e)]
    columns, rows = curve_rows([{k: v for k, v in e.items() if not k.startswith("loss_")} for e in history])
    assert columns == ["step", "epoch", "loss", "grad_norm", "learning_rate"] and len(rows) == 4
    paths = write_learning_curves(history, str(tmp_path))
    assert_real_image(paths["learning_curves"], 1000, 300)
    assert write_learning_curves([{"train_runtime": 1.0, "step": 0}], str(tmp_path / "none")) == {}


def write_run_folder(folder, config, contrastive, recipe=None):
    """A model folder as the training command leaves it: results, reports, curves, optionally a recipe."""
    names = [config.id2label[i] for i in range(len(config.id2label))]
    scores, labels = log_probabilities(40, names)
    metrics = load_skeleton_accuracy().compute(predictions=scores, references=labels)
    (folder / "eval_results.json").write_text(json.dumps({f"eval_{k}": v for k, v in metrics.items()}
                                                         | {"eval_loss": 1.25, "epoch": 2.0}))
    write_evaluation_report(str(folder), "eval", scores, labels, names)
    write_learning_curves(LOG_HISTORY, str(folder))
    if recipe is not None:
        (folder / "training_recipe.json").write_text(json.dumps(recipe))
    return metrics


def test_the_contrastive_card_parses_back_with_its_data_and_links(tiny_config, tmp_path):
    recipe = {"preset": "small", "learning_rate": 0.001, "num_train_epochs": 20, "optim": "adamw_torch"}
    metrics = write_run_folder(tmp_path, tiny_config, True, recipe)
    card = skeletonclip_model_card(tiny_config, str(tmp_path), contrastive=True, dataset="ntu60_hrnet.pkl",
                                   model_id="someone/skeletonclip-ntu60")
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert data.license == "apache-2.0" and data.library_name == "transformers"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # the config's default text encoder
    assert data.pipeline_tag == "video-classification" and data.datasets == ["ntu60_hrnet.pkl"]
    assert {"skeleton-based-action-recognition", "pose", "posec3d", "skeletonclip"} <= set(data.tags)
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert results[("eval", "accuracy")] == pytest.approx(metrics["top1_accuracy"], abs=1e-4)
    assert results[("eval", "mean_class_accuracy")] == pytest.approx(metrics["mean_class_accuracy"], abs=1e-4)
    assert data.eval_results[0].task_type == "video-classification" and data.model_name == tmp_path.name

    text = loaded.text
    assert 'pipeline(task="skeleton-action-recognition", model="someone/skeletonclip-ntu60", trust_remote_code=True)' \
        in text and "skeletonclip predict --model_name_or_path someone/skeletonclip-ntu60 --video clip.mp4" in text
    assert "- **Preset**: `small`" in text and "| `preset` | small |" in text and "| `learning_rate` | 0.001 |" in text
    assert f"| Evaluation | 40 | {100 * metrics['top1_accuracy']:.1f} % |" in text
    assert "| 0 | drink water |" in text and "### Most frequent confusions" in text
    assert "skeletons only" in text and "not a benchmark" in text
    links = [part.split(")")[0] for part in text.split("](")[1:] if part.split(")")[0].endswith(".png")]
    assert sorted(links) == ["eval_confusion_matrix.png", "learning_curves.png"]
    assert all((tmp_path / link).is_file() for link in links)


def test_a_classifier_card_has_no_base_model_and_a_local_text_encoder_is_none(tiny_config, tmp_path):
    write_run_folder(tmp_path, tiny_config, False)
    card = skeletonclip_model_card(tiny_config, str(tmp_path), contrastive=False, dataset="poses.pkl")
    assert card.data.base_model is None and "base_model" not in card.content.split("---")[1]
    assert "PoseC3D classifier" in card.text and "No training recipe was recorded" in card.text
    assert skeletonclip_model_card(tiny_config, str(tmp_path), contrastive=True,
                                   base_model=str(tmp_path)).data.base_model is None  # a folder is no Hub id
    empty = tmp_path / "empty"
    empty.mkdir()
    bare = skeletonclip_model_card(tiny_config, str(empty), contrastive=False)
    assert bare.data.eval_results is None and "has not been evaluated" in bare.text and "![" not in bare.text


def test_push_to_hub_uploads_the_skeletonclip_card(tiny_config, tmp_path, monkeypatch):
    """The Trainer's push_to_hub writes the card through the overridden create_model_card (no network: the hub
    API is a recorder)."""
    import huggingface_hub
    import transformers.trainer

    from modeling_skeletonclip import SkeletonClipConfig, SkeletonClipForActionRecognition
    from modeling_skeletonclip.trainer import SkeletonClipTrainer, SkeletonClipTrainingArguments

    uploaded = {}

    class RecordingApi:
        def create_repo(self, repo_id, **kwargs):
            return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(self, repo_id, folder_path, **kwargs):
            uploaded.update({name: open(os.path.join(folder_path, name), "rb").read()
                             for name in os.listdir(folder_path) if os.path.isfile(os.path.join(folder_path, name))})
            return "commit"

    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: RecordingApi())
    write_run_folder(tmp_path, tiny_config, False)
    model = SkeletonClipForActionRecognition(SkeletonClipConfig(**tiny_config.to_diff_dict()))
    args = SkeletonClipTrainingArguments(output_dir=str(tmp_path), push_to_hub=True, hub_model_id="someone/tiny",
                                         report_to="none", use_cpu=True)
    trainer = SkeletonClipTrainer(model=model, args=args)
    trainer.push_to_hub(dataset="poses.pkl", tags=["extra-tag"])
    card = ModelCard(uploaded["README.md"].decode())
    assert card.data.pipeline_tag == "video-classification" and card.data.base_model is None
    assert "extra-tag" in card.data.tags and card.data.datasets == ["poses.pkl"] and card.data.model_name == "tiny"
    assert 'model="someone/tiny"' in card.text and "eval_confusion_matrix.png" in uploaded


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, torch_one_thread):
    """The training command once on tiny settings, with evaluation every epoch and labelled prediction."""
    from modeling_skeletonclip import run_training

    folder = tmp_path_factory.mktemp("tiny_run")
    run_args = tiny_training_run(str(folder))
    out = folder / "run"
    assert TINY_OVERRIDES in run_args(out)
    run_training.main(run_args(out, "--num_train_epochs", "2", "--do_eval", "--eval_split", "val",
                               "--eval_strategy", "epoch", "--do_predict", "--test_num_clips", "1",
                               "--test_flip", "false", "--save_strategy", "no"))
    return out


def test_a_training_run_writes_reports_curves_and_card(tiny_run):
    out = tiny_run
    files = set(os.listdir(out))
    for prefix in ("eval", "predict"):
        assert {f"{prefix}_class_accuracy.csv", f"{prefix}_class_accuracy.md", f"{prefix}_confusion_matrix.png",
                f"{prefix}_top_confusions.json", f"{prefix}_top_confusions.md"} <= files
    assert {"learning_curves.csv", "learning_curves.png", "README.md"} <= files

    # The final evaluation keeps evaluate()'s keys, and its table agrees with them.
    metrics = json.load(open(out / "eval_results.json"))
    assert set(metrics) == {"eval_loss", "eval_top1_accuracy", "eval_top5_accuracy", "eval_mean_class_accuracy",
                            "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}
    rows = read_csv(out / "eval_class_accuracy.csv")
    assert sum(int(r["clips"]) for r in rows) == 13  # one validation clip a class
    assert sum(int(r["top1_correct"]) for r in rows) / 13 == pytest.approx(metrics["eval_top1_accuracy"])
    assert np.mean([float(r["accuracy"]) for r in rows]) == pytest.approx(metrics["eval_mean_class_accuracy"])

    # The prediction report counts what predictions.csv lists.
    predictions = read_csv(out / "predictions.csv")
    right = Counter(p["label"] for p in predictions if p["top1_class"] == p["label"])
    table = read_csv(out / "predict_class_accuracy.csv")
    assert {r["class"]: int(r["top1_correct"]) for r in table} == {r["class"]: right[r["class"]] for r in table}

    curves = read_csv(out / "learning_curves.csv")
    assert [r["epoch"] for r in curves if r.get("eval_top1_accuracy")] == ["1.0", "2.0"]
    assert len([r for r in curves if r["loss"]]) == 6  # a log every step, 3 steps an epoch

    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "video-classification" and card.data.datasets == ["poses.pkl"]
    assert card.data.base_model is None  # the tests' text encoder is a local folder, no Hub id
    assert {r.dataset_split for r in card.data.eval_results} == {"eval", "predict"}
    assert "![Learning curves](learning_curves.png)" in card.text and "| `learning_rate` |" in card.text
    assert_real_image(out / "learning_curves.png", 1000, 300)
