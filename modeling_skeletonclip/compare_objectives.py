"""Train and evaluate every training objective for several seeds on one dataset and tabulate the results. Installed
as the `skeletonclip compare` command.

    # the synthetic demo data, every contrastive objective, 3 seeds, 5 epochs each (the default training arguments)
    skeletonclip compare --output_dir runs/compare --seeds 0 1 2

    # a dataset of your own, with the PoseC3D classifier as a baseline; arguments after -- go to every training run
    skeletonclip compare --output_dir runs/compare_ntu --objectives itc pacl classifier -- \
        configs/ntu60_xsub_visece.json --num_train_epochs 24

    # a settings sweep: each named JSON is merged into --config_overrides of every run
    skeletonclip compare --objectives pacl --settings softmax='{"pacl_weighting": "softmax"}' \
        sigmoid='{"pacl_weighting": "sigmoid"}'

Each run trains in `OUTPUT_DIR/<objective>/seed<k>/` (`OUTPUT_DIR/<objective>/<setting>/seed<k>/` with --settings)
and keeps its model there. A run is one child process of the training command, so that its peak memory is its own:
the CUDA peak of allocated memory on a GPU, else the process's peak resident set size (which includes Python, torch
and the data, not only the model). A run whose folder holds its evaluation results is not repeated; an interrupted
run resumes from its newest complete checkpoint (the training command does that by itself). The comparison is
written as `comparison.md`, `comparison.csv` (mean and sample standard deviation over seeds), `runs.csv` (one row a
run) and `comparison.png` (bars with error bars).
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

from modeling_skeletonclip.resources import DEMO_RECIPE, PACKAGE_DIR
from modeling_skeletonclip.run_training import ArgumentError


CONTRASTIVE_OBJECTIVES = ("itc", "itc_itm", "itc_momentum", "pacl")
BASELINE = "classifier"  # the PoseC3D classifier (`--model_type classifier`)
# Training arguments when none follow `--`: the synthetic demo recipe shortened to a CPU-friendly length.
DEFAULT_TRAIN_ARGS = ("--num_train_epochs", "5")
# Set per run by the comparison; refused in the arguments after `--`.
RESERVED_TRAIN_ARGS = ("--output_dir", "--seed", "--objective", "--model_type")
RUN_STATS = "run_stats.json"  # written by a run's child process after it finished: its peak memory
METRICS = (  # (column, label in the table, key of eval_results.json / train_results.json / run_stats.json)
    ("top1", "top-1 (%)", "eval_top1_accuracy"),
    ("top5", "top-5 (%)", "eval_top5_accuracy"),
    ("mean_class", "mean class acc. (%)", "eval_mean_class_accuracy"),
    ("train_minutes", "training time (min)", "train_runtime"),
    ("peak_memory_mib", "peak memory (MiB)", "peak_memory_mib"),
)
PERCENT_COLUMNS = ("top1", "top5", "mean_class")


class CompareError(ArgumentError):
    """A bad argument of the comparison or a run that failed: reported as one line (as the training command's)."""


def parse_settings(settings: list[str] | None) -> dict[str, dict]:
    """`["NAME=JSON", ...]` -> `{NAME: dict}`; an error naming the setting where one is malformed."""
    parsed = {}
    for item in settings or []:
        name, sep, text = item.partition("=")
        if not sep or not name or "/" in name or name in (".", ".."):
            raise CompareError(
                f"--settings {item!r}: expected NAME=JSON, e.g. sigmoid='{{\"pacl_weighting\": \"sigmoid\"}}'."
            )
        value = json_object(text, f"--settings {name}")
        if name in parsed:
            raise CompareError(f"--settings {name} is given twice.")
        parsed[name] = value
    return parsed


def json_object(text: str, what: str) -> dict:
    """The JSON object in `text`; a CompareError naming `what` when it is not valid JSON or not an object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CompareError(f"{what}: not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise CompareError(f"{what}: must be a JSON object of config settings, got {value!r}.")
    return value


def split_config_overrides(train_args: list[str]) -> tuple[list[str], dict]:
    """`train_args` without `--config_overrides` and its JSON value (merged with each setting's)."""
    rest, overrides = [], {}
    i = 0
    while i < len(train_args):
        arg = train_args[i]
        if arg == "--config_overrides" or arg.startswith("--config_overrides="):
            if "=" in arg:
                text = arg.split("=", 1)[1]
            elif i + 1 < len(train_args):
                text, i = train_args[i + 1], i + 1
            else:
                raise CompareError("--config_overrides after -- needs a JSON value.")
            value = json_object(text, "--config_overrides after --")
            overrides = merge_overrides(overrides, value)
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def merge_overrides(base: dict, extra: dict) -> dict:
    """`extra` over `base`, sub-config dicts (`video_config`, ...) merged key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def run_arguments(objective: str, seed: int, run_dir: str, train_args: list[str], overrides: dict) -> list[str]:
    """The training command's arguments of one run: a recipe (the first of `train_args` if it is a JSON file, else
    the synthetic demo recipe), `train_args`, then what the comparison sets."""
    train_args = list(train_args)
    recipe = train_args.pop(0) if train_args and train_args[0].endswith(".json") else DEMO_RECIPE
    argv = [recipe, *train_args, "--output_dir", run_dir, "--seed", str(seed), "--do_train", "true",
            "--do_eval", "true"]
    if objective == BASELINE:
        argv += ["--model_type", "classifier"]
    else:
        argv += ["--objective", objective]
    if overrides:
        argv += ["--config_overrides", json.dumps(overrides)]
    return argv


def read_json_file(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def run_is_complete(run_dir: str) -> bool:
    """Evaluated and measured: `eval_results.json` and the run's memory record are there."""
    return all(read_json_file(os.path.join(run_dir, name)) is not None for name in ("eval_results.json", RUN_STATS))


def train_one(stats_path: str, argv: list[str]) -> int:
    """The child process of one run: the training command on `argv`, then its peak memory into `stats_path`."""
    import resource

    import torch

    from modeling_skeletonclip import run_training

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    status = run_training.report_bad_input(lambda: run_training.run(*run_training.parse_args(argv)))
    if status:
        return status
    if torch.cuda.is_available():
        stats = {"peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20, "memory": "cuda_max_allocated"}
    else:
        # Linux reports ru_maxrss in KiB.
        stats = {"peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "memory": "peak_rss"}
    with open(stats_path + ".tmp", "w") as f:
        json.dump(stats, f)
    os.replace(stats_path + ".tmp", stats_path)
    return 0


_CHILD = (
    "import sys; from modeling_skeletonclip.compare_objectives import train_one; "
    "sys.exit(train_one(sys.argv[1], sys.argv[2:]))"
)


def launch_run(run_dir: str, argv: list[str]) -> float:
    """Runs one training in a child process, its output appended to `run_dir/train.log`; returns its wall time."""
    os.makedirs(run_dir, exist_ok=True)
    env = dict(os.environ)
    # The child imports this very package, wherever it was imported from.
    package_root = os.path.dirname(PACKAGE_DIR)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    log_path = os.path.join(run_dir, "train.log")
    start = time.perf_counter()
    with open(log_path, "a") as log:
        status = subprocess.call(
            [sys.executable, "-c", _CHILD, os.path.join(run_dir, RUN_STATS), *argv],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    if status != 0:
        with open(log_path) as f:
            tail = [line.strip() for line in f.read().splitlines() if line.strip()][-1:]
        raise CompareError(f"the run in {run_dir} failed (exit status {status}): {' '.join(tail)} (log: {log_path})")
    return time.perf_counter() - start


def run_record(run_dir: str) -> dict:
    """One run's numbers: accuracies in %, the Trainer's training time in minutes (for a run resumed from a
    checkpoint: the time since resuming), peak memory in MiB and its kind."""
    eval_results = read_json_file(os.path.join(run_dir, "eval_results.json")) or {}
    train_results = read_json_file(os.path.join(run_dir, "train_results.json")) or {}
    stats = read_json_file(os.path.join(run_dir, RUN_STATS)) or {}
    sources = {**eval_results, **train_results, **stats}
    record = {}
    for column, _, key in METRICS:
        value = sources.get(key)
        if value is None:
            record[column] = float("nan")
        elif column in PERCENT_COLUMNS:
            record[column] = 100.0 * float(value)
        elif column == "train_minutes":
            record[column] = float(value) / 60.0
        else:
            record[column] = float(value)
    record["memory"] = stats.get("memory", "")
    return record


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); the deviation of a single value is NaN."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def summarize(records: list[dict]) -> list[dict]:
    """One row per (objective, setting), in the order of `records`: mean and std of each metric over seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["objective"], record["setting"]), []).append(record)
    rows = []
    for (objective, setting), group in groups.items():
        row = {"objective": objective, "setting": setting, "seeds": len(group),
               "memory": "/".join(sorted({r["memory"] for r in group if r["memory"]}))}
        for column, _, _ in METRICS:
            row[f"{column}_mean"], row[f"{column}_std"] = mean_std([r[column] for r in group])
        rows.append(row)
    return rows


def format_cell(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    with_settings = any(row["setting"] for row in rows)
    header = ["objective"] + (["setting"] if with_settings else []) + ["seeds"] + [label for _, label, _ in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        cells = [row["objective"]] + ([row["setting"]] if with_settings else []) + [str(row["seeds"])]
        for column, _, _ in METRICS:
            digits = 2 if column == "train_minutes" else (0 if column == "peak_memory_mib" else 1)
            cells.append(format_cell(row[f"{column}_mean"], row[f"{column}_std"], digits))
        lines.append("| " + " | ".join(cells) + " |")
    kinds = {row["memory"] for row in rows if row["memory"]}
    notes = {"cuda_max_allocated": "CUDA max allocated", "peak_rss": "peak resident set size of the run's process"}
    lines.append("")
    lines.append(
        "Mean ± sample standard deviation over seeds. Training time: the Trainer's train_runtime. Peak memory: "
        + (", ".join(notes.get(k, k) for k in sorted(kinds)) or "n/a") + "."
    )
    return "\n".join(lines) + "\n"


def write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(path: str, rows: list[dict]) -> str | None:
    """Bars of the three accuracies and of the training time, with std error bars; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import numpy as np

    names = [row["objective"] + (f"\n{row['setting']}" if row["setting"] else "") for row in rows]
    x = np.arange(len(rows))
    fig, (ax_acc, ax_time) = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(rows) + 4), 4.5),
                                          gridspec_kw={"width_ratios": [3, 2]})
    width = 0.27
    for i, (column, label, _) in enumerate(m for m in METRICS if m[0] in PERCENT_COLUMNS):
        means = [row[f"{column}_mean"] for row in rows]
        stds = [0.0 if math.isnan(row[f"{column}_std"]) else row[f"{column}_std"] for row in rows]
        ax_acc.bar(x + (i - 1) * width, means, width, yerr=stds, capsize=3, label=label.replace(" (%)", ""))
    ax_acc.set_xticks(x, names)
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_ylim(0, 112)  # room for the legend above 100 %
    ax_acc.legend(loc="upper center", ncol=3, fontsize=8)
    ax_acc.set_title("evaluation accuracy (mean ± std over seeds)")
    means = [row["train_minutes_mean"] for row in rows]
    stds = [0.0 if math.isnan(row["train_minutes_std"]) else row["train_minutes_std"] for row in rows]
    ax_time.bar(x, means, 0.6, yerr=stds, capsize=3, color="tab:gray")
    ax_time.set_xticks(x, names)
    ax_time.set_ylabel("minutes")
    ax_time.set_title("training time")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def compare_objectives(
    objectives=CONTRASTIVE_OBJECTIVES,
    seeds=(0, 1, 2),
    output_dir: str = "runs/compare",
    train_args: list[str] | None = None,
    settings: dict[str, dict] | None = None,
    log=None,
    train: bool = True,
) -> list[dict]:
    """Trains and evaluates each objective (and each setting) for each seed, one child process a run, skipping runs
    already complete; writes the comparison files into `output_dir` and returns its rows (see `summarize`).

    `train_args` go to every run (default: `DEFAULT_TRAIN_ARGS` on the synthetic demo data); `settings` maps a name
    to config settings merged into the runs' `--config_overrides`. With `train=False` only the complete runs are
    tabulated and the others are listed as missing.
    """
    log = log or (lambda line: print(line, flush=True))
    objectives, seeds = list(objectives), [int(s) for s in seeds]
    unknown = [o for o in objectives if o not in CONTRASTIVE_OBJECTIVES + (BASELINE,)]
    if unknown or not objectives:
        choices = ", ".join(CONTRASTIVE_OBJECTIVES + (BASELINE,))
        raise CompareError(f"--objectives: unknown {unknown}; choose from {choices}.")
    if not seeds or len(set(seeds)) != len(seeds):
        raise CompareError(f"--seeds must be distinct seeds, got {seeds}.")
    train_args = list(DEFAULT_TRAIN_ARGS if train_args is None else train_args)
    for arg in train_args:
        if arg.split("=", 1)[0] in RESERVED_TRAIN_ARGS:
            raise CompareError(f"{arg.split('=', 1)[0]} is set by the comparison for each run; leave it out after --.")
    train_args, base_overrides = split_config_overrides(train_args)
    settings = settings or {"": {}}

    runs = [(objective, setting, seed) for objective in objectives for setting in settings for seed in seeds]
    records = []
    for number, (objective, setting, seed) in enumerate(runs, start=1):
        run_dir = os.path.join(output_dir, objective, *([setting] if setting else []), f"seed{seed}")
        name = f"[{number}/{len(runs)}] {objective}{' ' + setting if setting else ''} seed {seed}"
        if run_is_complete(run_dir):
            status = "done before"
        elif not train:
            log(f"{name}: missing (not complete in {run_dir})")
            continue
        else:
            overrides = merge_overrides(base_overrides, settings[setting])
            argv = run_arguments(objective, seed, run_dir, train_args, overrides)
            log(f"{name}: training in {run_dir}")
            seconds = launch_run(run_dir, argv)
            status = f"trained in {seconds / 60:.1f} min"
        record = {"objective": objective, "setting": setting, "seed": seed, **run_record(run_dir)}
        records.append(record)
        log(f"{name}: {status}; top-1 {record['top1']:.1f} %, mean class {record['mean_class']:.1f} %")

    if not records:
        raise CompareError(f"No complete run in {output_dir} to tabulate.")
    os.makedirs(output_dir, exist_ok=True)
    write_csv(os.path.join(output_dir, "runs.csv"), records)
    rows = summarize(records)
    write_csv(os.path.join(output_dir, "comparison.csv"), rows)
    table = markdown_table(rows)
    with open(os.path.join(output_dir, "comparison.md"), "w") as f:
        f.write(table)
    picture = plot(os.path.join(output_dir, "comparison.png"), rows)
    log("\n" + table)
    log(f"Wrote comparison.md, comparison.csv, runs.csv{', comparison.png' if picture else ''} to {output_dir}"
        + ("" if picture else " (no plot: matplotlib is not installed)"))
    return rows


def build_parser(prog=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train and evaluate training objectives x seeds on one dataset; writes a table (Markdown, CSV) "
        "and a bar plot. Arguments after -- go to every training run (default: "
        f"{' '.join(DEFAULT_TRAIN_ARGS)} on the synthetic demo data).",
        usage=f"{prog or 'compare'} [--objectives ...] [--seeds ...] [--output_dir DIR] [--settings NAME=JSON ...] "
        "[-- TRAINING ARGUMENTS]",
    )
    parser.add_argument("--objectives", nargs="+", default=list(CONTRASTIVE_OBJECTIVES),
                        choices=list(CONTRASTIVE_OBJECTIVES + (BASELINE,)),
                        help="objectives to train; 'classifier' is the PoseC3D baseline (default: the four objectives)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    parser.add_argument("--output_dir", default="runs/compare", help="where the runs and the tables go")
    parser.add_argument("--settings", nargs="+", metavar="NAME=JSON",
                        help="named config settings, each merged into --config_overrides of every run (a sweep)")
    parser.add_argument("--table_only", action="store_true",
                        help="train nothing: tabulate the runs already complete in --output_dir")
    return parser


def main(argv=None, prog=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    train_args = None
    if "--" in argv:
        split = argv.index("--")
        argv, train_args = argv[:split], argv[split + 1:]
    args = build_parser(prog).parse_args(argv)
    compare_objectives(args.objectives, args.seeds, args.output_dir, train_args, parse_settings(args.settings),
                       train=not args.table_only)


if __name__ == "__main__":
    from modeling_skeletonclip.run_training import report_bad_input

    sys.exit(report_bad_input(main))
