"""Learning curves of a training run from the Trainer's `state.log_history`: a CSV of the logged values and a PNG.

    from modeling_skeletonclip.learning_curves import write_learning_curves

    paths = write_learning_curves(trainer.state.log_history, "runs/demo")  # learning_curves.csv / .png

One CSV row per logged step (training and evaluation logs of the same step merged), with the columns that the run
logged: the training loss and its parts (`loss_itc`, `loss_itm`, ...), the gradient norm, the learning rate (of the
first parameter group, the video encoder's), the evaluation loss and accuracies. The image has three panels over
the epochs: losses, learning rate, evaluation accuracy (a note when the run did not evaluate). A run resumed from a
checkpoint carries the checkpoint's history, so its curves start at step 1; a step logged twice keeps its last value.
"""

import csv
import math
import os

from .evaluation_report import figure_class


TRAIN_KEYS = ("loss", "grad_norm", "learning_rate")
EVAL_KEYS = ("eval_loss", "eval_top1_accuracy", "eval_top5_accuracy", "eval_mean_class_accuracy")
# Evaluation accuracies: label and marker (distinct, so that equal curves stay visible).
ACCURACY_LABELS = {"eval_top1_accuracy": ("top-1", "o"), "eval_top5_accuracy": ("top-5", "s"),
                   "eval_mean_class_accuracy": ("mean class", "^")}


def is_loss_part(key: str) -> bool:
    return key.startswith("loss_")


def curve_rows(log_history: list[dict]) -> tuple[list[str], list[dict]]:
    """`(columns, rows)`: one row per logged step, sorted by step, holding `step`, `epoch` and the logged values of
    the columns. The end-of-training summary (`train_runtime`, the mean `train_loss`) is not a point of a curve."""
    by_step = {}
    for entry in log_history:
        if "step" not in entry or "train_runtime" in entry:
            continue
        values = {k: v for k, v in entry.items()
                  if (k in TRAIN_KEYS or k in EVAL_KEYS or is_loss_part(k)) and isinstance(v, (int, float))}
        if not values:
            continue
        row = by_step.setdefault(int(entry["step"]), {"step": int(entry["step"])})
        if entry.get("epoch") is not None:
            row["epoch"] = float(entry["epoch"])
        row.update(values)
    rows = [by_step[step] for step in sorted(by_step)]
    present = {key for row in rows for key in row}
    parts = sorted(k for k in present if is_loss_part(k))
    columns = ["step", "epoch"] + [k for k in ("loss", *parts, "grad_norm", "learning_rate", *EVAL_KEYS)
                                   if k in present]
    return columns, rows


def write_curve_csv(columns: list[str], rows: list[dict], path: str) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return path


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """`(x, y)` of the rows that hold a finite `key`: x is the epoch (or the step where no epoch was logged)."""
    points = [(row.get("epoch", row["step"]), row[key]) for row in rows
              if key in row and math.isfinite(float(row[key]))]
    return [p[0] for p in points], [p[1] for p in points]


def plot_learning_curves(rows: list[dict], path: str, title: str = "") -> str | None:
    """Draws losses, learning rate and evaluation accuracy over the epochs into the PNG `path`; returns `path`, or
    None without matplotlib."""
    new_figure = figure_class()
    if new_figure is None:
        return None
    x_label = "epoch" if any("epoch" in row for row in rows) else "step"
    figure = new_figure(figsize=(15, 4.5), dpi=100, layout="constrained")
    loss_axes, lr_axes, accuracy_axes = figure.subplots(1, 3)
    parts = sorted({k for row in rows for k in row if is_loss_part(k)})
    for key, style in [("loss", dict(color="C0", linewidth=1.8, label="training loss"))] + [
            (part, dict(linewidth=1.0, alpha=0.8, label=f"training {part}")) for part in parts] + [
            ("eval_loss", dict(color="C3", marker="o", linewidth=1.5, label="eval loss"))]:
        xs, ys = series(rows, key)
        if xs:
            loss_axes.plot(xs, ys, **style)
    loss_axes.set_title("Loss")
    xs, ys = series(rows, "learning_rate")
    if xs:
        lr_axes.plot(xs, ys, color="C2")
        lr_axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    lr_axes.set_title("Learning rate (video encoder group)")
    evaluated = False
    for key, (label, marker) in ACCURACY_LABELS.items():
        xs, ys = series(rows, key)
        if xs:
            accuracy_axes.plot(xs, [100 * y for y in ys], marker=marker, markerfacecolor="none", label=label)
            evaluated = True
    accuracy_axes.set_title("Evaluation accuracy (%)")
    if evaluated:
        accuracy_axes.set_ylim(0, 100)
        accuracy_axes.legend(loc="best")
    else:
        accuracy_axes.text(0.5, 0.5, "no evaluation during training\n(--eval_strategy epoch adds it)",
                           ha="center", va="center", transform=accuracy_axes.transAxes, color="0.4")
    for axes in (loss_axes, lr_axes, accuracy_axes):
        axes.set_xlabel(x_label)
        axes.grid(alpha=0.3)
    if loss_axes.has_data():
        loss_axes.legend(loc="best")
    if title:
        figure.suptitle(title)
    figure.savefig(path, format="png")
    return path


def write_learning_curves(log_history: list[dict], output_dir: str, title: str = "") -> dict[str, str]:
    """Writes `<output_dir>/learning_curves.csv` and (with matplotlib) `learning_curves.png`; returns `{kind: path}`
    of the files written (none when nothing was logged)."""
    columns, rows = curve_rows(log_history)
    if not rows:
        return {}
    os.makedirs(output_dir, exist_ok=True)
    paths = {"learning_curves_csv": write_curve_csv(columns, rows, os.path.join(output_dir, "learning_curves.csv"))}
    image = plot_learning_curves(rows, os.path.join(output_dir, "learning_curves.png"), title=title)
    if image is not None:
        paths["learning_curves"] = image
    return paths
