"""The training script (modeling_skeletonclip/run_training.py, `skeletonclip train`) end to end on tiny settings:
arguments, training, resuming, prediction, zero-shot."""

import csv
import json
import os

import pytest
from helpers import REPO_ROOT, synthetic_pose_files, tiny_command_args as tiny_args




@pytest.fixture(scope="module")
def script():
    from modeling_skeletonclip import run_training

    return run_training


@pytest.fixture(scope="module")
def poses(tmp_path_factory):
    return synthetic_pose_files(str(tmp_path_factory.mktemp("poses")), num_train_per_class=2)




@pytest.mark.parametrize(
    "extra, message",
    [
        (["--do_train", "--train_file", "/no/such.pkl"], "--train_file /no/such.pkl does not exist"),
        (["--do_train", "--label_map", "/no/labels.txt"], "--label_map /no/labels.txt does not exist"),
        # under data/ but neither in the working directory nor in the package
        (["--do_train", "--label_map", "data/label_maps/ntu9.txt"], "--label_map data/label_maps/ntu9.txt does not"),
        (["--do_train", "--class_split_file", "data/zero_shot/no.json"], "--class_split_file data/zero_shot/no.json"),
        (["--do_train", "--preset", "huge"], "--preset must be one of"),
        (["--do_train", "--model_type", "gan"], "--model_type must be"),
        (["--do_train", "--config_overrides", "{bad"], "--config_overrides is not valid JSON"),
        (["--do_train", "--no_such_flag", "1"], "no_such_flag"),
    ],
)
def test_bad_arguments_are_one_clear_error(script, poses, tmp_path, extra, message):
    with pytest.raises(script.ArgumentError) as err:
        script.main(tiny_args(poses, tmp_path / "out", *extra))
    assert message in str(err.value)


def test_the_script_reports_a_bad_argument_as_one_line_and_exit_status_2(tmp_path, monkeypatch, capsys):
    """scripts/run_skeleton_clip.py, the thin wrapper, keeps the command line's error contract."""
    import runpy
    import sys

    path = os.path.join(REPO_ROOT, "scripts", "run_skeleton_clip.py")
    monkeypatch.setattr(sys, "argv", [path, "--do_train", "--no_such_flag", "1", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(path, run_name="__main__")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: Some specified arguments are not used by the HfArgumentParser: ['--no_such_flag', '1']"
    ]


def test_a_json_argument_file_that_does_not_exist_names_the_packaged_recipes(script):
    with pytest.raises(script.ArgumentError, match=r"Argument file nope.json does not exist \(recipes in the package: "
                                                   r"synthetic_demo.json\)"):
        script.parse_args(["nope.json"])


def test_no_arguments_is_the_packaged_demo_recipe_and_its_name_takes_overrides(script, tmp_path):
    model_args, data_args, training_args = script.parse_args([])
    assert training_args.do_train and training_args.do_eval and data_args.train_file is None  # synthetic data
    assert training_args.output_dir == "runs/synthetic_demo"
    _, _, training_args = script.parse_args(["synthetic_demo.json", "--output_dir", str(tmp_path), "--do_eval", "0"])
    assert training_args.output_dir == str(tmp_path) and training_args.do_train and not training_args.do_eval


def test_synthetic_demo_data_is_generated_once_into_the_user_cache(script, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SKELETONCLIP_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "synthetic"
    data_args = script.DataArguments()
    with caplog.at_level("INFO"):
        script.synthetic_data(data_args)
    assert data_args.train_file == str(folder / "poses.pkl") and data_args.label_map == str(folder / "labels.txt")
    assert (data_args.train_split, data_args.eval_split) == ("train", "val")
    assert sorted(os.listdir(folder)) == ["labels.txt", "poses.pkl"]  # no temporary folder left behind
    assert f"Generating the synthetic pose dataset at {folder / 'poses.pkl'}" in caplog.text
    mtime = os.path.getmtime(folder / "poses.pkl")
    caplog.clear()
    with caplog.at_level("INFO"):
        script.synthetic_data(script.DataArguments())
    assert os.path.getmtime(folder / "poses.pkl") == mtime
    assert f"Using the synthetic pose dataset at {folder / 'poses.pkl'}" in caplog.text


def test_unknown_split_names_the_file_and_the_splits_it_has(script, poses, tmp_path):
    with pytest.raises(ValueError) as err:
        script.main(tiny_args(poses, tmp_path / "out", "--do_train", "--train_split", "nope"))
    assert "no split named ['nope']" in str(err.value) and poses[0] in str(err.value) and "'train'" in str(err.value)


def test_label_map_too_short_names_the_file(script, poses, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("one\ntwo\n")
    with pytest.raises(ValueError) as err:
        script.main(tiny_args(poses, tmp_path / "out", "--do_train", "--label_map", str(short)))
    assert poses[0] in str(err.value) and "label" in str(err.value)


def test_train_evaluate_predict_and_save(script, poses, tmp_path):
    out = tmp_path / "run"
    script.main(tiny_args(poses, out, "--do_train", "--do_eval", "--do_predict", "--num_train_epochs", "1",
                          "--test_num_clips", "2", "--save_strategy", "no"))
    files = set(os.listdir(out))
    assert {"model.safetensors", "config.json", "tokenizer.json", "modeling_skeletonclip.py", "README.md",
            "eval_results.json", "predictions.csv"} <= files
    config = json.load(open(out / "config.json"))
    assert config["clip_len"] == 8 and "skeleton-action-recognition" in config["custom_pipelines"]  # for the pipeline
    metrics = json.load(open(out / "eval_results.json"))
    assert 0.0 <= metrics["eval_top1_accuracy"] <= 1.0 and "eval_mean_class_accuracy" in metrics
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 13  # one val clip per class
    probs = [float(rows[0][f"top{k}_prob"]) for k in range(1, 6)]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    names = open(poses[1]).read().split("\n")
    assert rows[0]["top1_class"] in names and rows[0]["label"] in names


def test_zero_shot_split_and_open_vocabulary_prediction(script, poses, tmp_path):
    out = tmp_path / "zs"
    candidates = tmp_path / "candidates.txt"
    candidates.write_text("sit down\nstand up\nwave\n")
    script.main(tiny_args(poses, out, "--do_train", "--do_eval", "--num_train_epochs", "1", "--save_strategy", "no",
                          "--class_split_file", "data/zero_shot/synthetic_10_3.json"))  # the packaged copy
    config = json.load(open(out / "config.json"))
    assert len(config["id2label"]) == 10  # trained on the seen classes only
    assert json.load(open(out / "eval_results.json"))["eval_top1_accuracy"] >= 0  # evaluated on the 3 unseen classes
    script.main(tiny_args(poses, tmp_path / "zs_pred", "--do_predict", "--model_name_or_path", str(out),
                          "--candidate_labels", str(candidates), "--predictions_format", "json", "--test_num_clips", "1"))
    rows = json.load(open(tmp_path / "zs_pred" / "predictions.json"))
    assert len(rows) == 13 and set(rows[0]["top_classes"]) == {"sit down", "stand up", "wave"}


@pytest.mark.slow
def test_resume_from_checkpoint_gives_identical_results(script, poses, tmp_path):
    import shutil

    from safetensors.torch import load_file

    common = ["--do_train", "--num_train_epochs", "2", "--save_strategy", "epoch", "--dataloader_num_workers", "0"]
    script.main(tiny_args(poses, tmp_path / "full", *common))
    checkpoints = sorted((d for d in os.listdir(tmp_path / "full") if d.startswith("checkpoint-")),
                         key=lambda d: int(d.split("-")[1]))
    assert len(checkpoints) == 2
    # An interrupted run: only the first epoch's checkpoint exists; the script finds it and resumes.
    shutil.copytree(tmp_path / "full" / checkpoints[0], tmp_path / "resumed" / checkpoints[0])
    script.main(tiny_args(poses, tmp_path / "resumed", *common))
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] == b[key]).all(), key


@pytest.mark.slow
def test_torch_compile_trains_with_one_shape_per_graph(script, poses, tmp_path, monkeypatch):
    """`--torch_compile` through the Trainer: batches padded to one person count and text length, the heatmap
    renderer left eager, so no graph recompiles while training (compiling takes ~2 min on 2 CPU cores)."""
    import torch._dynamo

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    out = tmp_path / "run"
    script.main(tiny_args(poses, out, "--do_train", "--max_train_samples", "16", "--max_steps", "3",
                          "--torch_compile", "true", "--save_strategy", "no"))
    counters = {k: dict(v) for k, v in torch._dynamo.utils.counters.items()}
    print(counters)
    assert counters["stats"]["unique_graphs"] > 0  # the model was compiled
    # The only graph break is the eager renderer.
    assert counters["graph_break"] and all("render_heatmaps" in reason for reason in counters["graph_break"])
    assert not counters.get("recompiles"), counters.get("recompiles")
    state = json.load(open(out / "trainer_state.json"))
    assert state["global_step"] == 3
    torch._dynamo.reset()


def test_bf16_flag_trains_under_autocast_and_renders_bf16_heatmaps(script, poses, tmp_path, monkeypatch):
    import torch

    import modeling_skeletonclip.modeling_skeletonclip as modeling

    dtypes = []
    render = modeling._render_heatmaps_eager

    def recording_render(*args, **kwargs):
        heatmaps = render(*args, **kwargs)
        dtypes.append(heatmaps.dtype)
        return heatmaps

    monkeypatch.setattr(modeling, "_render_heatmaps_eager", recording_render)
    out = tmp_path / "run"
    script.main(tiny_args(poses, out, "--do_train", "--max_steps", "2", "--bf16", "true", "--save_strategy", "no",
                          "--logging_steps", "1"))
    assert dtypes and set(dtypes) == {torch.bfloat16}
    losses = [h["loss"] for h in json.load(open(out / "trainer_state.json"))["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)
