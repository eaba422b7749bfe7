"""`skeletonclip compare`: objectives x seeds through the training command, resumable, with a table of mean ± std
over the runs' own results and a bar plot."""

import csv
import json
import os
import statistics

import numpy as np
import pytest
from helpers import tiny_training_run

from modeling_skeletonclip.cli import main
from modeling_skeletonclip.compare_objectives import (
    CompareError,
    compare_objectives,
    parse_settings,
    run_arguments,
    split_config_overrides,
)


def write_run(folder, top1, top5, mean_class, runtime, memory):
    """A finished run's result files, as the training command and the run's child process write them."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "eval_results.json"), "w") as f:
        json.dump({"epoch": 2.0, "eval_top1_accuracy": top1, "eval_top5_accuracy": top5,
                   "eval_mean_class_accuracy": mean_class}, f)
    with open(os.path.join(folder, "train_results.json"), "w") as f:
        json.dump({"epoch": 2.0, "train_runtime": runtime}, f)
    with open(os.path.join(folder, "run_stats.json"), "w") as f:
        json.dump({"peak_memory_mib": memory, "memory": "peak_rss"}, f)


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_table_matches_the_runs(output_dir, expected_groups):
    """comparison.csv and comparison.md hold the mean and sample std of each group's eval_results.json files."""
    rows = {row["objective"]: row for row in read_rows(os.path.join(output_dir, "comparison.csv"))}
    assert set(rows) == set(expected_groups)
    markdown = open(os.path.join(output_dir, "comparison.md")).read()
    for objective, folders in expected_groups.items():
        results = [json.load(open(os.path.join(folder, "eval_results.json"))) for folder in folders]
        for column, key in (("top1", "eval_top1_accuracy"), ("top5", "eval_top5_accuracy"),
                            ("mean_class", "eval_mean_class_accuracy")):
            values = [100 * r[key] for r in results]
            assert float(rows[objective][f"{column}_mean"]) == pytest.approx(statistics.mean(values), abs=1e-9)
            assert float(rows[objective][f"{column}_std"]) == pytest.approx(statistics.stdev(values), abs=1e-9)
        top1 = [100 * r["eval_top1_accuracy"] for r in results]
        cell = f"{statistics.mean(top1):.1f} ± {statistics.stdev(top1):.1f}"
        assert f"| {objective} | {len(folders)} | {cell} |" in markdown
        runtimes = [json.load(open(os.path.join(folder, "train_results.json")))["train_runtime"] / 60
                    for folder in folders]
        assert float(rows[objective]["train_minutes_mean"]) == pytest.approx(statistics.mean(runtimes))


def assert_plot_is_not_blank(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)[..., :3]  # [H, W, 3] in [0, 1]
    assert image.shape[0] > 200 and image.shape[1] > 400
    colored = (image.max(axis=-1) - image.min(axis=-1)) > 0.2  # bars are coloured; text and axes are grey
    assert colored.mean() > 0.01


def test_finished_runs_are_not_repeated_and_the_table_is_their_mean_and_std(tmp_path):
    numbers = {("itc", 0): (0.5, 0.9, 0.45, 60.0, 800.0), ("itc", 1): (0.7, 1.0, 0.65, 90.0, 820.0),
               ("pacl", 0): (0.2, 0.6, 0.25, 30.0, 700.0), ("pacl", 1): (0.3, 0.8, 0.3, 45.0, 710.0)}
    for (objective, seed), values in numbers.items():
        write_run(tmp_path / objective / f"seed{seed}", *values)
    before = {path: os.stat(path).st_mtime_ns for path in tmp_path.rglob("*.json")}
    lines = []
    rows = compare_objectives(["itc", "pacl"], [0, 1], str(tmp_path), [], log=lines.append)

    assert {path: os.stat(path).st_mtime_ns for path in tmp_path.rglob("*.json")} == before
    assert not list(tmp_path.rglob("train.log"))  # no run was started
    assert [line.split(":")[0] for line in lines[:4]] == ["[1/4] itc seed 0", "[2/4] itc seed 1", "[3/4] pacl seed 0",
                                                          "[4/4] pacl seed 1"]
    assert all("done before" in line for line in lines[:4])
    assert [row["objective"] for row in rows] == ["itc", "pacl"]
    assert rows[0]["top1_mean"] == pytest.approx(60.0) and rows[0]["top1_std"] == pytest.approx(14.142135623730951)
    assert rows[0]["peak_memory_mib_mean"] == pytest.approx(810.0)
    assert_table_matches_the_runs(tmp_path, {o: [tmp_path / o / f"seed{s}" for s in (0, 1)] for o in ("itc", "pacl")})
    per_run = read_rows(tmp_path / "runs.csv")
    assert [(r["objective"], r["seed"], float(r["top1"])) for r in per_run] == [
        ("itc", "0", 50.0), ("itc", "1", 70.0), ("pacl", "0", 20.0), ("pacl", "1", 30.0)]
    assert "peak resident set size" in (tmp_path / "comparison.md").read_text()
    assert_plot_is_not_blank(tmp_path / "comparison.png")


def test_settings_sweep_runs_go_in_their_own_folders(tmp_path):
    for setting, top1 in (("softmax", 0.4), ("sigmoid", 0.6)):
        write_run(tmp_path / "pacl" / setting / "seed0", top1, 1.0, top1, 10.0, 500.0)
    rows = compare_objectives(["pacl"], [0], str(tmp_path), [], settings=parse_settings(
        ['softmax={"pacl_weighting": "softmax"}', 'sigmoid={"pacl_weighting": "sigmoid"}']), log=lambda line: None)
    assert [(r["setting"], r["top1_mean"]) for r in rows] == [("softmax", pytest.approx(40.0)),
                                                              ("sigmoid", pytest.approx(60.0))]
    assert np.isnan(rows[0]["top1_std"])  # one seed: no deviation
    assert "| pacl | softmax | 1 | 40.0 |" in (tmp_path / "comparison.md").read_text()


def test_table_only_tabulates_the_complete_runs_and_names_the_missing(tmp_path, capsys):
    write_run(tmp_path / "itc" / "seed0", 0.5, 0.9, 0.5, 60.0, 800.0)
    (tmp_path / "itc" / "seed1").mkdir()  # started, not finished
    assert main(["compare", "--output_dir", str(tmp_path), "--objectives", "itc", "pacl", "--seeds", "0", "1",
                 "--table_only"]) == 0
    out = capsys.readouterr().out
    assert "[2/4] itc seed 1: missing" in out and "[4/4] pacl seed 1: missing" in out
    assert not (tmp_path / "itc" / "seed1" / "train.log").exists()
    assert "| itc | 1 | 50.0 |" in (tmp_path / "comparison.md").read_text()
    assert main(["compare", "--output_dir", str(tmp_path / "none"), "--table_only"]) == 2
    assert capsys.readouterr().err.strip() == f"error: No complete run in {tmp_path / 'none'} to tabulate."


def test_run_arguments_recipe_overrides_and_reserved_arguments(tmp_path):
    argv = run_arguments("itc_momentum", 3, "out/itc_momentum/seed3", ["--num_train_epochs", "1"], {"momentum": 0.99})
    assert argv[0].endswith("synthetic_demo.json") and argv[1:3] == ["--num_train_epochs", "1"]
    assert argv[argv.index("--output_dir") + 1] == "out/itc_momentum/seed3" and argv[argv.index("--seed") + 1] == "3"
    assert argv[argv.index("--objective") + 1] == "itc_momentum"
    assert json.loads(argv[argv.index("--config_overrides") + 1]) == {"momentum": 0.99}
    baseline = run_arguments("classifier", 0, "o", ["my_recipe.json", "--max_steps", "2"], {})
    assert baseline[:3] == ["my_recipe.json", "--max_steps", "2"] and "--objective" not in baseline
    assert baseline[baseline.index("--model_type") + 1] == "classifier"

    rest, overrides = split_config_overrides(["--config_overrides", '{"video_config": {"base_channels": 8}}',
                                              "--max_steps", "1"])
    assert rest == ["--max_steps", "1"] and overrides == {"video_config": {"base_channels": 8}}

    with pytest.raises(CompareError, match="--seed is set by the comparison"):
        compare_objectives(["itc"], [0], str(tmp_path), ["--seed", "4"])
    with pytest.raises(CompareError, match="unknown"):
        compare_objectives(["itm"], [0], str(tmp_path), [])
    with pytest.raises(CompareError, match="NAME=JSON"):
        parse_settings(["sigmoid"])
    with pytest.raises(CompareError, match="--settings bad: must be a JSON object"):
        parse_settings(["bad=[1]"])


@pytest.mark.slow  # the child process imports torch and transformers: over 20 s on a loaded machine
def test_a_failed_run_is_one_line_naming_its_log(tmp_path, capsys):
    status = main(["compare", "--output_dir", str(tmp_path), "--objectives", "itc", "--seeds", "0", "--",
                   "--train_file", str(tmp_path / "missing.pkl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert "the run in" in err[0] and "missing.pkl does not exist" in err[0] and "train.log" in err[0]
    assert not (tmp_path / "itc" / "seed0" / "run_stats.json").exists()


@pytest.mark.slow
def test_compare_trains_two_objectives_two_seeds_then_resumes_without_training(tmp_path):
    run_args = tiny_training_run(tmp_path / "data")
    args = run_args("unused")
    for flag in ("--output_dir", "--seed"):
        i = args.index(flag)
        del args[i:i + 2]
    args += ["--eval_split", "val", "--max_steps", "2", "--save_strategy", "no", "--per_device_eval_batch_size", "8"]
    output_dir = tmp_path / "compare"
    command = ["compare", "--output_dir", str(output_dir), "--objectives", "itc", "itc_momentum", "--seeds", "0", "1",
               "--", *args]
    assert main(command) == 0
    folders = {o: [output_dir / o / f"seed{s}" for s in (0, 1)] for o in ("itc", "itc_momentum")}
    for folder in folders["itc"] + folders["itc_momentum"]:
        assert (folder / "model.safetensors").is_file() and (folder / "eval_results.json").is_file()
        stats = json.loads((folder / "run_stats.json").read_text())
        assert stats["memory"] == "peak_rss" and 100 < stats["peak_memory_mib"] < 20000
    assert json.loads((folders["itc_momentum"][0] / "config.json").read_text())["objective"] == "itc_momentum"
    assert_table_matches_the_runs(output_dir, folders)
    assert_plot_is_not_blank(output_dir / "comparison.png")
    # The training command's warning for itc_momentum on a small training set (12 clips, a queue of 65536).
    assert "itc_momentum on this training set" in (folders["itc_momentum"][0] / "train.log").read_text()
    assert "itc_momentum on this training set" not in (folders["itc"][0] / "train.log").read_text()

    # Again: nothing trains. Then one run loses its results (interrupted before evaluating): only it runs again.
    models = {path: os.stat(path).st_mtime_ns for path in output_dir.rglob("model.safetensors")}
    assert main(command) == 0
    assert {path: os.stat(path).st_mtime_ns for path in output_dir.rglob("model.safetensors")} == models
    (folders["itc_momentum"][1] / "eval_results.json").unlink()
    assert main(command) == 0
    changed = [path for path in output_dir.rglob("model.safetensors") if os.stat(path).st_mtime_ns != models[path]]
    assert changed == [folders["itc_momentum"][1] / "model.safetensors"]
    assert_table_matches_the_runs(output_dir, folders)
