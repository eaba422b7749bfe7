"""The model card (README.md) of a trained SkeletonCLIP model, built with huggingface_hub's `ModelCard`.

    from modeling_skeletonclip.model_card import skeletonclip_model_card

    card = skeletonclip_model_card(model.config, "runs/demo", contrastive=True, dataset="ntu60_hrnet.pkl")
    card.save("runs/demo/README.md")

The card data (YAML header) hold the license, the base model (the pretrained text encoder of a contrastive model),
`pipeline_tag: video-classification`, tags, the training data's name and, when the folder holds evaluation results,
a `model-index` of them. The body describes the model from its config and reads the rest from the output folder:
`training_recipe.json` (the effective training arguments), `eval_results.json` / `predict_results.json`, the
per-class tables and top confusions of `evaluation_report.py`, and the images (linked relatively, so they show on
the Hub and in a local Markdown viewer alike).
"""

import csv
import json
import os
import re

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_skeletonclip import DEFAULT_TEXT_ENCODER
from .evaluation_report import (
    ANNOTATED_CLASSES,
    class_accuracy_markdown,
    markdown_cell,
    percent,
    top_confusions_markdown,
)


LICENSE = "apache-2.0"  # the project's (setup.cfg)
PIPELINE_TAG = "video-classification"
TAGS = ["skeleton-based-action-recognition", "pose", "posec3d", "skeletonclip"]
TASK_NAME = "Skeleton-based action recognition"
# Evaluation results of the card, in the order of the metrics table: (metric key, model-index type, name).
METRICS = [
    ("top1_accuracy", "accuracy", "Top-1 accuracy"),
    ("top5_accuracy", "top_5_accuracy", "Top-5 accuracy"),
    ("mean_class_accuracy", "mean_class_accuracy", "Mean class accuracy"),
]
# Result files of the training command: (file prefix, metric key prefix, title). Prediction metrics are the
# Trainer's `test_*`.
SPLITS = [("eval", "eval", "Evaluation"), ("predict", "test", "Prediction (test-time views)")]
# Training arguments shown when the folder has no training_recipe.json.
RECIPE_FALLBACK_KEYS = ["num_train_epochs", "max_steps", "per_device_train_batch_size", "learning_rate",
                        "weight_decay", "optim", "lr_scheduler_type", "warmup_steps", "max_grad_norm", "seed"]
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def base_model_name(text_encoder_name_or_path: str | None) -> str | None:
    """The Hub id of a text encoder: the packaged default is `sentence-transformers/all-MiniLM-L6-v2`; a local
    folder is no Hub id (None)."""
    if not text_encoder_name_or_path:
        return None
    if text_encoder_name_or_path == DEFAULT_TEXT_ENCODER:
        return f"sentence-transformers/{DEFAULT_TEXT_ENCODER}"
    if os.path.exists(text_encoder_name_or_path) or not _HUB_ID.match(text_encoder_name_or_path):
        return None
    return text_encoder_name_or_path


def read_json_file(path: str):
    """The JSON value of `path`, or None where the file is missing or not valid JSON (a card is still written)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_class_accuracy(path: str) -> list[dict] | None:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    return [{"label": int(r["label"]), "class": r["class"], "clips": int(r["clips"]),
             "top1_correct": int(r["top1_correct"]), "accuracy": float(r["accuracy"]) if r["accuracy"] else None}
            for r in rows]


def split_metrics(output_dir: str) -> dict[str, dict]:
    """`{split: {metric: value}}` of the `<split>_results.json` files in the folder (keys without the prefix)."""
    found = {}
    for split, key_prefix, _ in SPLITS:
        results = read_json_file(os.path.join(output_dir, f"{split}_results.json"))
        if isinstance(results, dict):
            found[split] = {k[len(key_prefix) + 1:]: v for k, v in results.items() if k.startswith(key_prefix + "_")}
    return found


def eval_results(metrics: dict[str, dict], model_name: str, dataset: str | None) -> list[EvalResult]:
    results = []
    for split, _, _ in SPLITS:
        for key, metric_type, metric_name in METRICS:
            value = metrics.get(split, {}).get(key)
            if isinstance(value, (int, float)):
                results.append(EvalResult(
                    task_type=PIPELINE_TAG, task_name=TASK_NAME, dataset_type=dataset or "custom",
                    dataset_name=dataset or "custom", dataset_split=split, metric_type=metric_type,
                    metric_name=metric_name, metric_value=round(float(value), 4),
                ))
    return results


def value_cell(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return markdown_cell(json.dumps(value))
    return markdown_cell(value)


def recipe_section(output_dir: str, training_args) -> str:
    recipe = read_json_file(os.path.join(output_dir, "training_recipe.json"))
    source = "`training_recipe.json` (the effective arguments of `skeletonclip train`)"
    if not isinstance(recipe, dict):
        if training_args is None:
            return "No training recipe was recorded (`training_recipe.json` is missing)."
        recipe = {key: getattr(training_args, key) for key in RECIPE_FALLBACK_KEYS if hasattr(training_args, key)}
        recipe = {k: (v.value if hasattr(v, "value") else v) for k, v in recipe.items()}
        source = "the training arguments"
    lines = [f"From {source}:", "", "| Argument | Value |", "|---|---|"]
    lines += [f"| `{markdown_cell(key)}` | {value_cell(value)} |" for key, value in recipe.items()]
    return "\n".join(lines)


def metrics_section(metrics: dict[str, dict], output_dir: str) -> str:
    if not metrics:
        return "This model has not been evaluated (no `eval_results.json` or `predict_results.json`)."
    lines = ["| Split | Clips | Top-1 | Top-5 | Mean class | Loss |", "|---|---:|---:|---:|---:|---:|"]
    for split, _, title in SPLITS:
        if split not in metrics:
            continue
        m = metrics[split]
        cells = [percent(m.get(key)) if isinstance(m.get(key), (int, float)) else "n/a" for key, _, _ in METRICS]
        loss = f"{m['loss']:.4f}" if isinstance(m.get("loss"), (int, float)) else "n/a"
        rows = read_class_accuracy(os.path.join(output_dir, f"{split}_class_accuracy.csv"))
        clips = sum(r["clips"] for r in rows) if rows else ""
        lines.append(f"| {title} | {clips} | {' | '.join(cells)} | {loss} |")
    return "\n".join(lines)


def model_description(config, contrastive: bool) -> list[str]:
    video, heatmap = config.video_config, config.heatmap_config
    inputs = " and ".join(kind for kind, used in (("joint", heatmap.with_joints), ("limb", heatmap.with_limbs))
                          if used)
    joints = (heatmap.layout or {}).get("num_joints", 17)
    layout = "COCO-17" if joints == 17 else f"{joints}"
    lines = [
        f"- **Input**: 2D poses ({layout} keypoints of every person in the clip), rendered as "
        f"{inputs} heatmap volumes of {config.clip_len or 'the pipeline default of 48'} frames "
        f"({heatmap.train_size[0]}x{heatmap.train_size[1]} pixels in training, "
        f"{heatmap.eval_size[0]}x{heatmap.eval_size[1]} in evaluation).",
        f"- **Video encoder**: PoseC3D SlowOnly ResNet3D (base width {video.base_channels}, stage widths "
        f"{list(video.stage_planes)}, blocks {list(video.stage_blocks)}).",
    ]
    if contrastive:
        lines += [
            f"- **Objective**: `{config.objective}`: skeleton-text contrastive learning; a clip is classified by the "
            f"similarity of its embedding ({config.projection_dim} dimensions) to the embedding of each class text "
            f"(template `{config.text_template}`), so other class names can be given at inference.",
            f"- **Text encoder**: `{config.text_encoder_name_or_path}` (BERT; its weights are saved with the model).",
        ]
    else:
        lines.append("- **Objective**: PoseC3D classifier: a linear head over the pooled video features, trained with "
                     "cross-entropy over a fixed set of classes.")
    return lines


def classes_line(class_names: list[str]) -> str:
    shown = ", ".join(markdown_cell(n) for n in class_names[:12])
    more = f", ... ({len(class_names) - 12} more, see `config.json` `id2label`)" if len(class_names) > 12 else ""
    return f"- **Classes** ({len(class_names)}): {shown}{more}"


def usage_section(model_id: str, contrastive: bool) -> str:
    open_vocabulary = ('\nrecognise("clip.mp4", candidate_labels=["drinking", "waving"], '
                       'hypothesis_template="a person {}")  # other classes') if contrastive else ""
    return f"""```python
from transformers import pipeline

recognise = pipeline(task="skeleton-action-recognition", model="{model_id}", trust_remote_code=True)
recognise("clip.mp4")    # poses from the video (MediaPipe): [{{"label": ..., "score": ...}}, ...]
recognise(annotation)    # a pyskl annotation dict, or keypoints [M, T, V, 2]{open_vocabulary}
```

With the `skeletonclip` package (`pip install "skeletonclip[video]"`), on a local copy of this folder:

```bash
skeletonclip predict --model_name_or_path {model_id} --video clip.mp4 --output_dir predictions
skeletonclip predict --model_name_or_path {model_id} --video videos/ --window 2s --stride 1s --save_video
```"""


LIMITATIONS = """\
- The model sees skeletons only: 2D keypoints from a pose estimator (MediaPipe by default for videos, or the poses
  of the training pickle). Objects, scene and appearance are invisible to it, so actions that differ only in what
  is held or touched are confused, and the quality of its input is the quality of the pose estimator: missed or
  swapped persons, occlusion and unusual viewpoints lower accuracy.
- Poses from another estimator or keypoint layout than the training data's (e.g. MediaPipe on videos after
  training on HRNet poses) shift the input distribution; expect lower accuracy than the table above.
- Accuracy on the synthetic demo data (the default training set of `skeletonclip train`) shows that training works;
  it is not a benchmark result and says nothing about real videos.
- Intended for research and prototyping of action recognition from poses; not for decisions about people
  (surveillance, identification, health or safety judgements)."""


def evaluation_details(output_dir: str) -> list[str]:
    """The per-class table, top confusions and confusion matrix of the first split with a report in the folder."""
    for split, _, title in SPLITS:
        rows = read_class_accuracy(os.path.join(output_dir, f"{split}_class_accuracy.csv"))
        if rows is None:
            continue
        parts = [f"### Per-class accuracy ({title.lower()})", "",
                 class_accuracy_markdown(rows, max_rows=None if len(rows) <= ANNOTATED_CLASSES else 20)]
        confusions = read_json_file(os.path.join(output_dir, f"{split}_top_confusions.json"))
        if isinstance(confusions, list):
            parts += ["", "### Most frequent confusions", "", top_confusions_markdown(confusions)]
        image = f"{split}_confusion_matrix.png"
        if os.path.isfile(os.path.join(output_dir, image)):
            parts += ["", "### Confusion matrix", "", f"![Confusion matrix ({title.lower()})]({image})"]
        return parts
    return []


def skeletonclip_model_card(
    config,
    output_dir: str,
    contrastive: bool,
    model_name: str | None = None,
    model_id: str | None = None,
    base_model: str | None = None,
    dataset: str | list[str] | None = None,
    tags: list[str] | None = None,
    license: str | None = None,
    language: str | list[str] | None = None,
    training_args=None,
) -> ModelCard:
    """The card of the model with `config` saved in `output_dir`. `contrastive`: a SkeletonClipModel (else the
    classifier, which has no base model). `model_id`: how users load it (Hub repo id; default the folder);
    `base_model` defaults to the config's text encoder, and is left out unless it is a Hub id (not a local folder);
    `training_args` fill the recipe table when the folder has no training_recipe.json."""
    model_name = model_name or os.path.basename(os.path.normpath(output_dir))
    model_id = model_id or output_dir
    if contrastive:
        base_model = base_model_name(base_model or config.text_encoder_name_or_path)
    else:
        base_model = None
    datasets = [dataset] if isinstance(dataset, str) else list(dataset or [])
    metrics = split_metrics(output_dir)
    card_tags = list(TAGS) + [t for t in (tags or []) if t not in TAGS]
    data = ModelCardData(
        license=license or LICENSE,
        language=language,
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=card_tags,
        base_model=base_model,
        datasets=datasets or None,
        model_name=model_name,
        eval_results=eval_results(metrics, model_name, datasets[0] if datasets else None) or None,
    )
    class_names = [config.id2label[i] for i in sorted(config.id2label)]
    kind = "contrastive skeleton-text model" if contrastive else "PoseC3D classifier"
    about = [f"# {model_name}", "",
             f"A SkeletonCLIP {kind} for skeleton-based action recognition: it recognises human actions from 2D "
             "pose sequences (keypoints), not from pixels.", ""]
    about += model_description(config, contrastive)
    recipe = read_json_file(os.path.join(output_dir, "training_recipe.json"))
    if isinstance(recipe, dict) and recipe.get("preset"):
        about.append(f"- **Preset**: `{markdown_cell(recipe['preset'])}` (model size of `skeletonclip train`).")
    if contrastive and base_model:
        about.append(f"- **Base model**: [{base_model}](https://huggingface.co/{base_model}) (the text encoder).")
    about.append(classes_line(class_names))
    if datasets:
        about.append(f"- **Training data**: `{'`, `'.join(datasets)}`.")
    sections = about + ["", "## How to use", "", usage_section(model_id, contrastive),
                        "", "## Training recipe", "", recipe_section(output_dir, training_args),
                        "", "## Evaluation", "", metrics_section(metrics, output_dir)]
    details = evaluation_details(output_dir)
    if details:
        sections += [""] + details
    if os.path.isfile(os.path.join(output_dir, "learning_curves.png")):
        sections += ["", "## Learning curves", "",
                     "Training loss, learning rate and evaluation accuracy per epoch (the values are in "
                     "`learning_curves.csv`).", "", "![Learning curves](learning_curves.png)"]
    sections += ["", "## Intended use and limitations", "", LIMITATIONS, ""]
    body = "\n".join(sections)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
