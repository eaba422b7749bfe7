"""The `skeletonclip` command in-process: dispatch, help, the error contract (one line on stderr, exit status 2)
and `predict` on a model that `train` saved. The installed console script is tested in test_installed_command.py."""

import csv
import json
import os

import pytest
from helpers import TINY_OVERRIDES as TINY

from modeling_skeletonclip.cli import main
from modeling_skeletonclip.synthetic_poses import write_synthetic_poses



@pytest.fixture(scope="module")
def data_args(tmp_path_factory):
    folder = tmp_path_factory.mktemp("poses")
    write_synthetic_poses(str(folder / "poses.pkl"), num_train_per_class=1, num_val_per_class=1)
    return ["--train_file", str(folder / "poses.pkl"), "--label_map", str(folder / "labels.txt"),
            "--train_split", "train", "--eval_split", "val", "--dataset_cache_dir", str(folder / "cache")]


def run_args(output_dir):
    return ["--output_dir", str(output_dir), "--preset", "small", "--config_overrides", TINY, "--clip_len", "8",
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8", "--report_to", "none",
            "--use_cpu", "true", "--disable_tqdm", "true", "--save_strategy", "no"]


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: skeletonclip")
    for command in ("train", "predict", "convert-pyskl", "extract-poses", "merge-poses", "stream", "export",
                    "visualize", "compare"):
        assert f"\n  {command} " in out


def test_no_command_prints_the_help_and_fails(capsys):
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_unknown_command_is_one_line(capsys):
    assert main(["fit"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: unknown command 'fit'; choose from train, predict, convert-pyskl, extract-poses, merge-poses, "
        "stream, export, visualize, compare (skeletonclip --help)"
    ]


@pytest.mark.parametrize("command, flag", [("train", "--train_file"), ("predict", "--model_name_or_path"),
                                           ("convert-pyskl", "--label_map"), ("extract-poses", "--target_fps"),
                                           ("merge-poses", "--output"), ("stream", "--camera"),
                                           ("export", "--candidate_labels"), ("visualize", "--frame_dir"),
                                           ("compare", "--objectives")])
def test_command_help_is_its_parsers_help(capsys, command, flag):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: skeletonclip {command} ") and flag in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--do_train", "--no_such_flag", "1"],
         "error: Some specified arguments are not used by the HfArgumentParser: ['--no_such_flag', '1']"),
        (["train", "no_such_recipe.json"],
         "error: Argument file no_such_recipe.json does not exist (recipes in the package: synthetic_demo.json)."),
        (["predict", "--output_dir", "out"],
         "error: skeletonclip predict needs --model_name_or_path: a folder saved by `skeletonclip train`."),
        (["predict"],  # no arguments would be the demo recipe, which trains: the model is still required first
         "error: skeletonclip predict needs --model_name_or_path: a folder saved by `skeletonclip train`."),
    ],
)
def test_bad_arguments_are_one_line_and_exit_status_2(capsys, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [message]


def test_predict_refuses_to_train(capsys, tmp_path):
    assert main(["predict", "--model_name_or_path", str(tmp_path), "--do_train"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "skeletonclip predict does not train" in err[0] and "--do_train false" in err[0]


def test_train_then_predict_with_the_saved_model(data_args, tmp_path, capsys):
    model_dir, predictions_dir = tmp_path / "model", tmp_path / "predictions"
    assert main(["train", *data_args, *run_args(model_dir), "--do_train", "--max_steps", "1"]) == 0
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(os.listdir(model_dir))
    assert main(["predict", *data_args, *run_args(predictions_dir), "--model_name_or_path", str(model_dir),
                 "--test_num_clips", "1"]) == 0
    files = set(os.listdir(predictions_dir))
    assert "predictions.csv" in files and "model.safetensors" not in files  # predicted, did not train
    rows = list(csv.DictReader(open(predictions_dir / "predictions.csv")))
    assert len(rows) == 13  # the val split: one clip per class
    assert json.load(open(predictions_dir / "predict_results.json"))["test_top1_accuracy"] >= 0
