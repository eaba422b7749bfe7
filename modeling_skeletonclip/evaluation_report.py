"""Evaluation reports: class scores, true labels and class names in, files a person can read out.

    from modeling_skeletonclip.evaluation_report import write_evaluation_report

    paths = write_evaluation_report("runs/demo", "eval", scores, labels, class_names)  # scores [N, L], labels [N]

writes, in the output folder and named after the prefix (`eval_`, `predict_`):

- `<prefix>_class_accuracy.csv` / `.md`: clips, top-1 correct clips and top-1 accuracy of every class;
- `<prefix>_confusion_matrix.png`: row-normalised confusions (true class down, predicted class across), with the
  clip count in each non-empty cell for up to `ANNOTATED_CLASSES` classes;
- `<prefix>_top_confusions.json` / `.md`: the most frequent wrong predictions (true -> predicted, count, share of
  the true class's clips).

A prediction is the highest-scoring class, ties going to the lower class index (as the accuracy metric ranks).
Images are drawn with matplotlib's Agg canvas (no display, no global backend switch); without matplotlib they are
skipped with one warning and the tables are still written.
"""

import csv
import json
import logging
import os

import numpy as np


logger = logging.getLogger(__name__)

# Up to this many classes the confusion matrix prints the count in every non-empty cell.
ANNOTATED_CLASSES = 30
# Class names longer than this are shortened on the image axes (the tables keep them whole).
MAX_AXIS_LABEL = 32
TOP_CONFUSIONS = 10

_warned_no_matplotlib = False


def figure_class():
    """matplotlib's `Figure`, drawn on an Agg canvas (works without a display); None, with one warning per process,
    when matplotlib is not installed."""
    global _warned_no_matplotlib
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        if not _warned_no_matplotlib:
            logger.warning("matplotlib is not installed: report images (confusion matrix, learning curves) are "
                           "skipped; the CSV and Markdown files are still written. `pip install matplotlib` adds them.")
            _warned_no_matplotlib = True
        return None

    def new_figure(**kwargs):
        figure = Figure(**kwargs)
        FigureCanvasAgg(figure)
        return figure

    return new_figure


def predicted_classes(scores) -> np.ndarray:
    """`[N]` index of the highest score of every row of `scores [N, L]` (the first on ties)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [N, L] class scores, got shape {scores.shape}.")
    return np.argmax(scores, axis=1)


def check_labels(labels, num_samples: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (num_samples,):
        raise ValueError(f"labels must be [N] = [{num_samples}] class indices, got shape {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}.")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(f"labels must lie in [0, {num_classes}) (one per class name): sample {bad[0]} has label "
                         f"{labels[bad[0]]}.")
    return labels.astype(np.int64)


def confusion_matrix(predicted, labels, num_classes: int) -> np.ndarray:
    """`[L, L]` clip counts: row = true class, column = predicted class."""
    predicted, labels = np.asarray(predicted, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def class_accuracy_rows(confusion: np.ndarray, class_names: list[str]) -> list[dict]:
    """One row per class: `label` (index), `class`, `clips`, `top1_correct` and `accuracy` (None for a class
    without clips: it has no accuracy, and the mean class accuracy leaves it out)."""
    rows = []
    for index, name in enumerate(class_names):
        clips, correct = int(confusion[index].sum()), int(confusion[index, index])
        rows.append({"label": index, "class": name, "clips": clips, "top1_correct": correct,
                     "accuracy": correct / clips if clips else None})
    return rows


def mean_class_accuracy(rows: list[dict]) -> float:
    """The mean of the per-class accuracies over the classes that have clips."""
    values = [row["accuracy"] for row in rows if row["accuracy"] is not None]
    return float(np.mean(values)) if values else 0.0


def top_confusions(confusion: np.ndarray, class_names: list[str], k: int = TOP_CONFUSIONS) -> list[dict]:
    """The `k` most frequent wrong (true, predicted) pairs, most clips first (then the larger share of the true
    class, then the class order): `true`, `predicted`, `count`, `share` (count / clips of the true class)."""
    clips = confusion.sum(axis=1)
    pairs = [(int(confusion[t, p]), t, p) for t, p in zip(*np.nonzero(confusion)) if t != p]
    pairs.sort(key=lambda pair: (-pair[0], -pair[0] / clips[pair[1]], pair[1], pair[2]))
    return [{"true": class_names[t], "predicted": class_names[p], "count": count, "share": count / int(clips[t])}
            for count, t, p in pairs[:k]]


def markdown_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def class_accuracy_markdown(rows: list[dict], max_rows: int | None = None) -> str:
    """The per-class table in Markdown. With `max_rows` and more classes than that, the `max_rows // 2` best and
    worst classes with clips (by accuracy, then clips), with a line saying how many are left out."""
    shown, note = rows, ""
    if max_rows is not None and len(rows) > max_rows:
        ranked = sorted((r for r in rows if r["accuracy"] is not None),
                        key=lambda r: (-r["accuracy"], -r["clips"], r["label"]))
        half = max(1, max_rows // 2)
        best, worst = ranked[:half], ranked[half:][-half:]
        shown = best + [None] + worst if len(ranked) > 2 * half else ranked
        note = (f"\n\nThe {len(best)} best and {len(worst)} worst of {len(rows)} classes; every class is in the "
                "CSV file.") if len(ranked) > 2 * half else ""
    lines = ["| # | Class | Clips | Top-1 correct | Top-1 accuracy |", "|---:|---|---:|---:|---:|"]
    for row in shown:
        if row is None:
            lines.append("| ... | ... | | | |")
            continue
        lines.append(f"| {row['label']} | {markdown_cell(row['class'])} | {row['clips']} | {row['top1_correct']} | "
                     f"{percent(row['accuracy'])} |")
    return "\n".join(lines) + note


def top_confusions_markdown(confusions: list[dict]) -> str:
    if not confusions:
        return "No clip was confused with another class."
    return "\n".join(f"{i}. {markdown_cell(c['true'])} -> {markdown_cell(c['predicted'])}: {clips(c['count'])} "
                     f"({percent(c['share'])} of {markdown_cell(c['true'])})" for i, c in enumerate(confusions, 1))


def clips(count: int) -> str:
    return f"{count} clip" if count == 1 else f"{count} clips"


def short_label(name: str, limit: int = MAX_AXIS_LABEL) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


def plot_confusion_matrix(confusion: np.ndarray, class_names: list[str], path: str, title: str = "") -> str | None:
    """Draws the row-normalised confusion matrix into the PNG `path`; returns `path`, or None without matplotlib.
    The figure grows with the class count so that every class name stays readable (120 classes: ~30 inches)."""
    new_figure = figure_class()
    if new_figure is None:
        return None
    num_classes = len(class_names)
    clips = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, clips, out=np.zeros(confusion.shape, dtype=np.float64), where=clips > 0)
    annotate = num_classes <= ANNOTATED_CLASSES
    cell = 0.42 if annotate else 0.22  # inches per class
    label_font = 8 if annotate else 7
    side = max(4.0, cell * num_classes)
    figure = new_figure(figsize=(side + 3.0, side + 2.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(num_classes)
    names = [short_label(name) for name in class_names]
    axes.set_xticks(ticks, names, rotation=90, fontsize=label_font)
    axes.set_yticks(ticks, names, fontsize=label_font)
    axes.set_xlabel("Predicted class")
    axes.set_ylabel("True class")
    axes.set_title(title or "Confusion matrix (share of each true class's clips)")
    if annotate:
        for t, p in zip(*np.nonzero(confusion)):
            colour = "white" if shares[t, p] > 0.5 else "black"
            axes.text(p, t, str(confusion[t, p]), ha="center", va="center", fontsize=7, color=colour)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.04 if annotate else 0.02, pad=0.01)
    colorbar.set_label("share of the true class")
    figure.savefig(path, format="png")
    return path


def write_evaluation_report(output_dir: str, prefix: str, scores, labels, class_names: list[str],
                            top_k_confusions: int = TOP_CONFUSIONS) -> dict[str, str]:
    """Writes the per-class table, the confusion matrix and the top confusions of `scores [N, L]` against
    `labels [N]` (indices into `class_names`) as `<output_dir>/<prefix>_*`. Returns `{kind: path}` of the files
    written (no `confusion_matrix` without matplotlib)."""
    scores = np.asarray(scores)
    predicted = predicted_classes(scores)
    if scores.shape[1] != len(class_names):
        raise ValueError(f"scores have {scores.shape[1]} classes but there are {len(class_names)} class names.")
    labels = check_labels(labels, scores.shape[0], len(class_names))
    confusion = confusion_matrix(predicted, labels, len(class_names))
    rows = class_accuracy_rows(confusion, class_names)
    confusions = top_confusions(confusion, class_names, top_k_confusions)

    os.makedirs(output_dir, exist_ok=True)
    base = os.path.join(output_dir, prefix + "_")
    paths = {"class_accuracy_csv": base + "class_accuracy.csv", "class_accuracy_md": base + "class_accuracy.md",
             "top_confusions_json": base + "top_confusions.json", "top_confusions_md": base + "top_confusions.md"}
    with open(paths["class_accuracy_csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "class", "clips", "top1_correct", "accuracy"])
        for row in rows:
            accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.6f}"
            writer.writerow([row["label"], row["class"], row["clips"], row["top1_correct"], accuracy])
    with open(paths["class_accuracy_md"], "w") as f:
        f.write(class_accuracy_markdown(rows) + "\n\n"
                f"Mean class accuracy: {percent(mean_class_accuracy(rows))} over "
                f"{sum(r['accuracy'] is not None for r in rows)} classes with clips; {int(labels.size)} clips.\n")
    with open(paths["top_confusions_json"], "w") as f:
        json.dump(confusions, f, indent=1)
    with open(paths["top_confusions_md"], "w") as f:
        f.write(top_confusions_markdown(confusions) + "\n")
    image = plot_confusion_matrix(confusion, class_names, base + "confusion_matrix.png",
                                  title=f"Confusion matrix ({prefix}, {int(labels.size)} clips, row-normalised)")
    if image is not None:
        paths["confusion_matrix"] = image
    return paths
