#!/usr/bin/env python
"""Train and evaluate SkeletonCLIP models on pose pickles, the way transformers' examples train everything else.
Installed as the `skeletonclip train` command (`skeletonclip predict` runs it for prediction only).

    # the embedded defaults: synthetic poses (generated on first use) and the packaged text encoder, no network
    skeletonclip train

    # NTU60 XSub, contrastive model (see configs/ in the repository for the reference recipes)
    skeletonclip train --train_file ntu60_hrnet.pkl --train_split xsub_train \
        --eval_split xsub_val --label_map data/label_maps/ntu60.txt --output_dir runs/ntu60_xsub \
        --do_train --do_eval

    # a JSON file holding all arguments; later arguments override it
    skeletonclip train configs/ntu60_xsub_visece.json --per_device_train_batch_size 8

`python -m modeling_skeletonclip.run_training ARGS` and `python scripts/run_skeleton_clip.py ARGS` are the same.
"""

import csv
import dataclasses
import difflib
import json
import logging
import os
import reprlib
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import transformers
from safetensors import SafetensorError
from transformers import AutoTokenizer, HfArgumentParser, set_seed

from modeling_skeletonclip import (
    PoseClipTransform,
    PoseCollator,
    SkeletonClipConfig,
    SkeletonClipForActionRecognition,
    SkeletonClipModel,
    load_pose_dataset,
    training_recipes,
)
from modeling_skeletonclip.checkpoints import checkpoint_problem, last_complete_checkpoint
from modeling_skeletonclip.clip_dataset import PoseClipDataset
from modeling_skeletonclip.configuration_skeletonclip import SkeletonClipHeatmapConfig, SkeletonClipVideoConfig
from modeling_skeletonclip.evaluation_report import write_evaluation_report
from modeling_skeletonclip.learning_curves import write_learning_curves
from modeling_skeletonclip.metrics import load_skeleton_accuracy
from modeling_skeletonclip.objectives import warn_small_training_set
from modeling_skeletonclip.pose_dataset import PoseDataError
from modeling_skeletonclip.presets import preset_config
from modeling_skeletonclip.resources import (
    DEMO_RECIPE,
    cache_dir,
    packaged_data_file,
    packaged_recipe,
    packaged_recipes,
)
from modeling_skeletonclip.trainer import SkeletonClipTrainer, SkeletonClipTrainingArguments, TrainingError


logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_type: str = field(
        default="contrastive",
        metadata={"help": "'contrastive' (SkeletonClipModel, skeleton-text) or 'classifier' (the PoseC3D baseline)."},
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved SkeletonCLIP model (folder) to start from instead of a fresh one."}
    )
    text_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "BERT checkpoint name or folder for the text encoder; default: the packaged all-MiniLM-L6-v2."},
    )
    preset: str = field(
        default="auto", metadata={"help": "'full' (paper size), 'small' (CPU demo) or 'auto' (full on GPU, else small)."}
    )
    objective: str = field(default="itc", metadata={"help": "Training objective: itc, itc_itm, itc_momentum, pacl."})
    text_template: str = field(default="{}", metadata={"help": "How a class name becomes a text, e.g. 'a person {}'."})
    with_limbs: bool = field(default=False, metadata={"help": "Render limb heatmaps instead of joint heatmaps."})
    conv_impl: str | None = field(default=None, metadata={"help": "Video encoder implementation: conv3d or fast."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "JSON merged into the model config, e.g. '{\"projection_dim\": 128}'."}
    )


@dataclass
class DataArguments:
    train_file: str | None = field(
        default=None, metadata={"help": "pyskl-format pose pickle; none: the synthetic demo data (made on first use)."}
    )
    train_split: str | None = field(default=None, metadata={"help": "Split name for training (e.g. xsub_train)."})
    eval_split: str | None = field(default=None, metadata={"help": "Split name for evaluation (e.g. xsub_val)."})
    test_split: str | None = field(default=None, metadata={"help": "Split for --do_predict (default: eval_split)."})
    label_map: str | None = field(default=None, metadata={"help": "Class names, one per line (line i = label i-1)."})
    label_offset: int = field(default=0, metadata={"help": "Added to every label (-1 for 1-based pickles)."})
    class_split_file: str | None = field(
        default=None,
        metadata={"help": "Zero-shot JSON {'seen': [...], 'unseen': [...]}: train on seen, evaluate on unseen."},
    )
    candidate_labels: str | None = field(
        default=None, metadata={"help": "Text file of candidate class texts for --do_predict (open vocabulary)."}
    )
    class_descriptions: str | None = field(
        default=None,
        metadata={"help": "JSON {class name: [texts, ...]}: several texts per class, their embeddings averaged "
                  "(prompt ensembling) in training and evaluation, and saved with the model; classes it lacks use "
                  "the template text of their name."},
    )
    clip_len: int | None = field(default=None, metadata={"help": "Frames per clip (preset default: 48 full)."})
    eval_num_clips: int = field(default=1, metadata={"help": "Clips per video in evaluation."})
    test_num_clips: int = field(default=10, metadata={"help": "Clips per video in prediction (x2 with flip)."})
    test_flip: bool = field(default=True, metadata={"help": "Flip-double the prediction views."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation split."})
    predictions_format: str = field(default="csv", metadata={"help": "Format of --do_predict output: csv or json."})
    dataset_cache_dir: str | None = field(default=None, metadata={"help": "Where the Arrow cache of pickles lives."})

    def __post_init__(self):
        # Refused rather than replaced: `--clip_len 0` would otherwise mean the preset's length.
        for name in ("clip_len", "eval_num_clips", "test_num_clips", "max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1, got {value}.")


class ArgumentError(ValueError):
    """A bad command-line argument: reported as one line, without a traceback."""


def read_json(path: str, what: str):
    """The JSON value in `path`; an ArgumentError naming `what` and the file where it is not valid JSON."""
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ArgumentError(f"{what} {path} is not valid JSON: {err}") from err


def json_to_argv(path: str) -> list[str]:
    """A JSON file of arguments as command-line tokens, so that later command-line arguments override it. A bare
    file name that is not in the working directory may name a recipe shipped in the package (synthetic_demo.json)."""
    if not os.path.isfile(path):
        packaged = packaged_recipe(path)
        if packaged is None:
            recipes = ", ".join(packaged_recipes())
            raise ArgumentError(f"Argument file {path} does not exist (recipes in the package: {recipes}).")
        path = packaged
    data = read_json(path, "Argument file")
    if not isinstance(data, dict):
        raise ArgumentError(f"Argument file {path} must hold a JSON object of arguments, got {type(data).__name__}.")
    argv = []
    for key, value in data.items():
        argv.append(f"--{key}")
        if isinstance(value, list):
            argv.extend(str(v) for v in value)
        else:
            argv.append(json.dumps(value) if isinstance(value, dict) else str(value))
    return argv


def existing_data_file(path: str, flag: str) -> str:
    """`path` if it exists, else the package's copy of a `data/...` path (label maps, zero-shot class splits), so
    that recipes naming `data/label_maps/ntu60.txt` also run outside a checkout; else an error naming the file."""
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        raise ArgumentError(f"{flag} {path} is a folder, not a file.")
    packaged = packaged_data_file(path)
    if packaged is None:
        raise ArgumentError(f"{flag} {path} does not exist.")
    logger.info(f"{flag} {path}: not in the working directory, using the package's copy {packaged}")
    return packaged


def parse_args(argv, prog=None, description=None):
    """`[config.json] [--overrides ...]`; no arguments at all runs the synthetic demo (recipes/synthetic_demo.json).
    `prog` and `description` head the `--help` text (default: the program's file name, no description).

    A training run gets the default recipe of its model type (training_recipes.py) for every optimisation argument
    that neither the command line nor the JSON file gives; their names are in `training_args.defaulted_arguments`
    ("num_train_epochs" there: chosen from the training set's size once the data are read)."""
    parser = HfArgumentParser(
        (ModelArguments, DataArguments, SkeletonClipTrainingArguments), prog=prog, description=description
    )
    if not argv:
        argv = [DEMO_RECIPE]
    if argv[0].endswith(".json"):
        argv = json_to_argv(argv[0]) + list(argv[1:])
    parsed = parse_into_dataclasses(parser, argv)
    given = given_arguments(parser, argv)
    defaults = default_arguments(*parsed, given)
    if defaults:  # first, so that the given arguments override them
        parsed = parse_into_dataclasses(parser, arguments_to_argv(defaults) + list(argv))
    training_args = parsed[2]
    epochs_from_size = training_args.do_train and not given & {"num_train_epochs", "max_steps"}
    training_args.defaulted_arguments = tuple(defaults) + (("num_train_epochs",) if epochs_from_size else ())
    return parsed


def parse_into_dataclasses(parser, argv):
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as err:  # unknown arguments and bad values
        raise ArgumentError(str(err)) from err


def given_arguments(parser, argv) -> set[str]:
    """The destinations (dataclass field names) of the options in `argv`, resolved as argparse resolves them
    (`--no_x` sets `x`; an unambiguous prefix names its option)."""
    options = parser._option_string_actions
    given = set()
    for token in argv:
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        matches = [name] if name in options else [o for o in options if o.startswith(name)]
        if len(matches) == 1:
            given.add(options[matches[0]].dest)
    return given


def default_arguments(model_args, data_args, training_args, given: set[str]) -> dict:
    """The recipe values a training run takes because no argument gives them (none without --do_train)."""
    if not training_args.do_train:
        return {}
    batch = None if "per_device_train_batch_size" in given else training_recipes.CONTRASTIVE_RECIPE[
        "per_device_train_batch_size"]
    clips_per_step = training_recipes.clips_per_step(training_args, batch)
    kind = model_args.model_type
    if kind == "classifier" and given & set(training_recipes.OPTIMISER_ARGUMENTS) and training_args.optim != "sgd":
        kind = "contrastive"  # an AdamW-style optimisation was given: the rest of it comes from the AdamW recipe
    recipe = training_recipes.recipe_for(kind, clips_per_step, evaluates=training_args.do_eval,
                                         zero_shot=data_args.class_split_file is not None)
    evaluation = set(training_recipes.EVALUATION_RECIPE)
    if given & set(training_recipes.EVALUATION_ARGUMENTS):  # the group is taken whole or not at all
        recipe = {k: v for k, v in recipe.items() if k not in evaluation}
    return {k: v for k, v in recipe.items() if k not in given}


def arguments_to_argv(arguments: dict) -> list[str]:
    argv = []
    for key, value in arguments.items():
        if value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def synthetic_data(data_args):
    """The embedded default dataset: synthetic COCO-17 poses, generated once into the user cache (there may be no
    checkout to write into): `$SKELETONCLIP_CACHE/synthetic/`, by default `~/.cache/skeletonclip/synthetic/`."""
    folder = os.path.join(cache_dir(), "synthetic")
    path, labels = os.path.join(folder, "poses.pkl"), os.path.join(folder, "labels.txt")
    if os.path.isfile(path) and os.path.isfile(labels):
        logger.info(f"Using the synthetic pose dataset at {path} (SKELETONCLIP_CACHE moves it)")
    else:
        logger.info(f"Generating the synthetic pose dataset at {path} (SKELETONCLIP_CACHE moves it)")
        write_synthetic_demo(folder)
    data_args.train_file = path
    data_args.train_split = data_args.train_split or "train"
    data_args.eval_split = data_args.eval_split or "val"
    data_args.label_map = data_args.label_map or labels


def write_synthetic_demo(folder):
    """Writes poses.pkl and labels.txt through a temporary folder and renames them into place, so that processes
    started together (torchrun) never read a half-written file."""
    from modeling_skeletonclip.synthetic_poses import write_synthetic_poses

    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".generating-") as tmp:
        write_synthetic_poses(os.path.join(tmp, "poses.pkl"))
        os.replace(os.path.join(tmp, "labels.txt"), os.path.join(folder, "labels.txt"))
        os.replace(os.path.join(tmp, "poses.pkl"), os.path.join(folder, "poses.pkl"))


def load_data(data_args, training_args):
    if data_args.train_file is None:
        synthetic_data(data_args)
    if os.path.isdir(data_args.train_file):
        raise ArgumentError(f"--train_file {data_args.train_file} is a folder, not a pose pickle file.")
    if not os.path.isfile(data_args.train_file):
        raise ArgumentError(f"--train_file {data_args.train_file} does not exist.")
    if data_args.label_map is not None:
        data_args.label_map = existing_data_file(data_args.label_map, "--label_map")
    data_args.test_split = data_args.test_split or data_args.eval_split
    wanted = {}
    for flag, split, needed, action in (
        ("--train_split", data_args.train_split, training_args.do_train, "--do_train"),
        ("--eval_split", data_args.eval_split, training_args.do_eval, "--do_eval"),
        ("--test_split", data_args.test_split, training_args.do_predict, "--do_predict"),
    ):
        if needed and split is None:
            raise ArgumentError(f"{flag} is required with {action}.")
        if needed:
            wanted[flag] = split
    splits = sorted({s for s in wanted.values() if s})
    # Only the splits this run uses are converted (an NTU pickle also holds the other benchmark's splits).
    return load_pose_dataset(
        data_args.train_file,
        label_map=data_args.label_map,
        splits=splits,
        label_offset=data_args.label_offset,
        cache_dir=data_args.dataset_cache_dir,
    )


def read_class_split(path: str) -> tuple[list[int], list[int]]:
    """The `seen` and `unseen` class indices of a zero-shot split file; an ArgumentError naming the file and what is
    wrong with it otherwise."""
    split = read_json(path, "--class_split_file")
    if not isinstance(split, dict):
        raise ArgumentError(f"--class_split_file {path} must hold a JSON object {{'seen': [...], 'unseen': [...]}}.")
    classes = []
    for key in ("seen", "unseen"):
        value = split.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(c, int) and not isinstance(c, bool)
                                                                 for c in value):
            raise ArgumentError(f"--class_split_file {path}: {key!r} must be a non-empty list of class indices, "
                                f"got {value!r}.")
        classes.append(value)
    return classes[0], classes[1]


def apply_class_split(dataset, class_names, data_args, training_args):
    """Zero-shot: keep seen classes for training and unseen ones for evaluation, each relabelled 0..n-1."""
    seen, unseen = read_class_split(data_args.class_split_file)
    if set(seen) & set(unseen):
        raise ArgumentError(f"{data_args.class_split_file}: classes {sorted(set(seen) & set(unseen))} are both seen and unseen.")
    for c in seen + unseen:
        if not 0 <= c < len(class_names):
            raise ArgumentError(f"{data_args.class_split_file}: class {c} outside [0, {len(class_names)}).")

    out = {}
    if training_args.do_train:
        out[data_args.train_split] = restrict_remap(dataset[data_args.train_split], seen, class_names)
    for split_name in {data_args.eval_split, data_args.test_split} - {None}:
        out[split_name] = restrict_remap(dataset[split_name], unseen, class_names)
    return out, [class_names[c] for c in seen], [class_names[c] for c in unseen]


def restrict_remap(ds, classes, class_names):
    import datasets

    remap = np.full(len(class_names), -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    ds = ds.filter(lambda labels: [remap[label] >= 0 for label in labels], input_columns="label", batched=True)
    ds = ds.cast_column("label", datasets.Value("int64"))
    ds = ds.map(lambda labels: {"label": [int(remap[label]) for label in labels]}, input_columns="label", batched=True)
    return ds.cast_column("label", datasets.ClassLabel(names=[class_names[c] for c in classes]))


CONFIG_CLASSES = {
    None: SkeletonClipConfig,
    "video_config": SkeletonClipVideoConfig,
    "heatmap_config": SkeletonClipHeatmapConfig,
}


def check_config_keys(overrides: dict, prefix: str | None = None) -> None:
    """Unknown keys (typos) are refused: the config would keep them as inert attributes and train without them."""
    known = {f.name for f in dataclasses.fields(CONFIG_CLASSES[prefix])}
    for key, value in overrides.items():
        name = f"{prefix}.{key}" if prefix else key
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ArgumentError(f"--config_overrides: {name!r} is not a setting of {CONFIG_CLASSES[prefix].__name__}"
                                f"{hint}.")
        if prefix is None and key in CONFIG_CLASSES:
            if not isinstance(value, dict):
                raise ArgumentError(f"--config_overrides: {key!r} must be a JSON object, got {value!r}.")
            check_config_keys(value, key)


def model_config_kwargs(model_args) -> tuple[dict, int]:
    """The keyword arguments of a fresh model's config (preset, flags, `--config_overrides`) and the preset's clip
    length. The config they make is built once here, so that a value it refuses is reported before any data is
    read."""
    try:
        preset_kwargs, preset_clip_len = preset_config(model_args.preset)
    except ValueError as err:
        raise ArgumentError(str(err)) from err
    heatmap_config = dict(
        preset_kwargs["heatmap_config"], with_joints=not model_args.with_limbs, with_limbs=model_args.with_limbs
    )
    video_config = preset_kwargs["video_config"]
    if model_args.conv_impl:
        video_config["conv_impl"] = model_args.conv_impl
    config_kwargs = dict(
        video_config=video_config,
        heatmap_config=heatmap_config,
        text_template=model_args.text_template,
        objective=model_args.objective,
    )
    if model_args.config_overrides:
        try:
            overrides = json.loads(model_args.config_overrides)
        except json.JSONDecodeError as err:
            raise ArgumentError(f"--config_overrides is not valid JSON: {err}") from err
        if not isinstance(overrides, dict):
            raise ArgumentError(f"--config_overrides must be a JSON object of config settings, got {overrides!r}.")
        check_config_keys(overrides)
        if "text_config" in overrides and model_args.model_type == "contrastive":
            raise ArgumentError("--config_overrides: the text encoder's config comes from --text_model_name_or_path, "
                                "'text_config' cannot override it.")
        for key, value in overrides.items():  # sub-config dicts merge key by key
            if isinstance(value, dict) and isinstance(config_kwargs.get(key), dict):
                config_kwargs[key] = {**config_kwargs[key], **value}
            else:
                config_kwargs[key] = value
    try:
        SkeletonClipConfig(**config_kwargs)
    except Exception as err:  # the config's own validation: strict field types, validate_architecture
        raise ArgumentError(f"The model config refuses these settings: {err}") from err
    return config_kwargs, preset_clip_len


def build_model(model_args, class_names):
    config_kwargs, preset_clip_len = model_config_kwargs(model_args)
    if model_args.model_type not in ("contrastive", "classifier"):
        raise ArgumentError(f"--model_type must be 'contrastive' or 'classifier', got {model_args.model_type!r}.")
    id2label = dict(enumerate(class_names))
    if model_args.model_name_or_path:
        model_cls = SkeletonClipModel if model_args.model_type == "contrastive" else SkeletonClipForActionRecognition
        if not os.path.isdir(model_args.model_name_or_path):
            raise ArgumentError(f"--model_name_or_path {model_args.model_name_or_path} is not a folder.")
        model = model_cls.from_pretrained(model_args.model_name_or_path, id2label=id2label)
        tokenizer = None
        if model_args.model_type == "contrastive":
            tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
        return model, tokenizer, preset_clip_len

    config_kwargs.setdefault("id2label", id2label)
    if model_args.model_type == "contrastive":
        model, tokenizer = SkeletonClipModel.from_text_pretrained(model_args.text_model_name_or_path, **config_kwargs)
    else:
        model, tokenizer = SkeletonClipForActionRecognition(SkeletonClipConfig(**config_kwargs)), None
    return model, tokenizer, preset_clip_len


def static_person_count(*datasets):
    """The largest person count of the clips a run uses: with `--torch_compile` every batch is padded to it, so that
    the compiled model sees one shape (padded persons are NaN, i.e. missing, and render nothing)."""
    counts = [int(np.max(ds.with_format("numpy")["num_person"])) for ds in datasets if ds is not None and len(ds)]
    return max(counts) if counts else None


def drop_labels(collator):
    def collate(examples):
        batch = collator(examples)
        batch.pop("labels")
        return batch

    return collate


def compute_metrics_fn():
    metric = load_skeleton_accuracy()

    def compute_metrics(eval_pred):
        return metric.compute(predictions=eval_pred.predictions, references=eval_pred.label_ids)

    return compute_metrics


def write_predictions(path_prefix, fmt, frame_dirs, labels, scores, names, top_k=5):
    probs = np.exp(scores)  # the trainer hands log-probabilities averaged over views
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    rows = []
    for i, frame_dir in enumerate(frame_dirs):
        rows.append(
            {
                "frame_dir": frame_dir,
                "label": names[labels[i]] if labels is not None and 0 <= labels[i] < len(names) else "",
                "top_classes": [names[j] for j in order[i]],
                "top_probs": [round(float(probs[i, j]), 6) for j in order[i]],
            }
        )
    path = f"{path_prefix}.{fmt}"
    if fmt == "json":
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)
    else:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["frame_dir", "label"] + [f"top{k + 1}_{kind}" for k in range(top_k) for kind in ("class", "prob")])
            for row in rows:
                cells = [c for pair in zip(row["top_classes"], row["top_probs"]) for c in pair]
                writer.writerow([row["frame_dir"], row["label"]] + cells)
    return path


def main(argv=None):
    """Runs on `argv` (default: the command line). Bad arguments or data raise ArgumentError or PoseDataError, and
    training that cannot go on (a non-finite loss, a checkpoint that cannot be written) a TrainingError;
    `report_bad_input(main)` turns them into one line on stderr and exit status 2."""
    run(*parse_args(sys.argv[1:] if argv is None else argv))


def read_class_descriptions(path: str, class_names: list[str] | None = None) -> dict[str, list[str]]:
    """The {class name: [texts]} object of a --class_descriptions file; an ArgumentError naming the file and the
    class where it is not an object, a value is not a non-empty list of texts, or (with `class_names`) a class is
    not one of them."""
    from modeling_skeletonclip.class_descriptions import class_descriptions_problem

    descriptions = read_json(path, "--class_descriptions")
    problem = class_descriptions_problem(descriptions)
    if problem is not None:
        raise ArgumentError(f"--class_descriptions {path}: {problem}")
    if class_names is not None:
        known = set(class_names)
        for name in descriptions:
            if name not in known:
                close = difflib.get_close_matches(name, class_names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ArgumentError(f"--class_descriptions {path}: class {name!r} is not in the label map{hint}.")
    return descriptions


def use_class_descriptions(model, tokenizer, data_args, class_names: list[str], used_names: list[str]):
    """Stores the --class_descriptions of the label map's classes in the model's config (saved with it, so that the
    pipeline scores them by default) and logs how many of the classes this run uses fall back to their name."""
    descriptions = read_class_descriptions(data_args.class_descriptions, class_names)
    model.config.class_descriptions = {name: descriptions[name] for name in class_names if name in descriptions}
    missing = [name for name in used_names if name not in descriptions]
    logger.info(
        f"--class_descriptions {data_args.class_descriptions}: {len(used_names) - len(missing)} of the "
        f"{len(used_names)} classes of this run have descriptions; {len(missing)} fall back to the template text "
        f"of their name{': ' + reprlib.repr(missing) if missing else ''}."
    )
    limit = model.config.text_max_length
    texts = [t for name in used_names for t in descriptions.get(name, [])]
    too_long = sum(len(ids) > limit for ids in tokenizer(texts)["input_ids"]) if texts else 0
    if too_long:
        logger.warning(
            f"--class_descriptions: {too_long} of {len(texts)} descriptions are longer than text_max_length={limit} "
            "tokens and are truncated; raise it with --config_overrides '{\"text_max_length\": 48}' (a fresh model)."
        )


def read_candidate_labels(path: str) -> list[str]:
    path = existing_data_file(path, "--candidate_labels")
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ArgumentError(f"--candidate_labels {path} holds no class texts (one per line).")
    return names


def resume_checkpoint(training_args) -> str | None:
    """The checkpoint training resumes from: `--resume_from_checkpoint` if given (it must be complete), else the
    newest complete checkpoint in the output folder; newer folders that an interrupted write left incomplete are
    skipped with a warning."""
    if not training_args.do_train:
        return None
    if training_args.resume_from_checkpoint is not None:
        path = training_args.resume_from_checkpoint
        if not os.path.isdir(path):
            raise ArgumentError(f"--resume_from_checkpoint {path} is not a folder.")
        problem = checkpoint_problem(path)
        if problem is not None:
            raise ArgumentError(f"--resume_from_checkpoint {path} is not a complete checkpoint: {problem}.")
        return path
    if not os.path.isdir(training_args.output_dir):
        return None
    checkpoint = last_complete_checkpoint(training_args.output_dir)
    if checkpoint is not None:
        logger.info(f"Resuming from the last complete checkpoint {checkpoint}.")
    return checkpoint


def check_arguments(model_args, data_args, training_args):
    """What can be checked without reading the data, so that a bad argument stops the run before the data are
    converted or a model is trained. Returns the candidate texts of --candidate_labels (or None)."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ArgumentError(
            "Nothing to do: pass --do_train, --do_eval and/or --do_predict (or a recipe that sets them, e.g. "
            "synthetic_demo.json; with no arguments at all the command runs that demo)."
        )
    if data_args.predictions_format not in ("csv", "json"):
        raise ArgumentError(f"--predictions_format must be csv or json, got {data_args.predictions_format!r}.")
    if model_args.model_type not in ("contrastive", "classifier"):
        raise ArgumentError(f"--model_type must be 'contrastive' or 'classifier', got {model_args.model_type!r}.")
    model_config_kwargs(model_args)
    if data_args.class_split_file:
        data_args.class_split_file = existing_data_file(data_args.class_split_file, "--class_split_file")
        read_class_split(data_args.class_split_file)
    if data_args.class_descriptions:
        if model_args.model_type != "contrastive":
            raise ArgumentError("--class_descriptions needs the contrastive model (texts), not the classifier.")
        data_args.class_descriptions = existing_data_file(data_args.class_descriptions, "--class_descriptions")
        read_class_descriptions(data_args.class_descriptions)
    candidates = None
    if data_args.candidate_labels and training_args.do_predict:
        if model_args.model_type != "contrastive":
            raise ArgumentError("--candidate_labels needs the contrastive model (texts), not the classifier.")
        candidates = read_candidate_labels(data_args.candidate_labels)
    return candidates


def apply_recipe(training_args, model, num_train_clips: int) -> None:
    """Sets the epochs left to the training set's size, then logs the recipe the run trains with and writes it to
    `<output_dir>/training_recipe.json` (the model card shows it)."""
    defaulted = getattr(training_args, "defaulted_arguments", ())
    if "num_train_epochs" in defaulted:
        training_args.num_train_epochs = training_recipes.epochs_for(num_train_clips,
                                                                     training_recipes.clips_per_step(training_args))
    recipe = training_recipes.effective_recipe(training_args)
    kind = "contrastive" if isinstance(model, SkeletonClipModel) else "classifier"
    logger.info(f"Training recipe ({kind} model, {num_train_clips} training clips):\n"
                f"{training_recipes.describe_recipe(recipe, defaulted)}")
    if training_args.process_index == 0:
        with writing(f"the training recipe to {training_args.output_dir}"):
            os.makedirs(training_args.output_dir, exist_ok=True)
            with open(os.path.join(training_args.output_dir, "training_recipe.json"), "w") as f:
                json.dump(recipe, f, indent=2)


@contextmanager
def writing(what: str):
    """A failed write (full disk, file-size limit) of `what` becomes one TrainingError naming it."""
    try:
        yield
    except (OSError, RuntimeError, SafetensorError) as err:  # torch.save and safetensors raise their own types
        raise TrainingError(f"Could not write {what}: {type(err).__name__}: {err}") from err


def run(model_args, data_args, training_args):
    """Trains, evaluates and predicts as the parsed arguments say."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    candidate_names = check_arguments(model_args, data_args, training_args)
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin for on a CPU-only machine
    set_seed(training_args.seed)
    checkpoint = resume_checkpoint(training_args)

    dataset = load_data(data_args, training_args)
    first_split = next(iter(dataset.values()))
    class_names = list(first_split.features["label"].names)
    train_names = eval_names = class_names
    splits = dict(dataset)
    if data_args.class_split_file:
        splits, train_names, eval_names = apply_class_split(dataset, class_names, data_args, training_args)

    model, tokenizer, preset_clip_len = build_model(model_args, train_names)
    # --clip_len, else the length a loaded model was trained on, else the preset's.
    clip_len = next(n for n in (data_args.clip_len, model.config.clip_len, preset_clip_len) if n is not None)
    if training_args.do_train:
        model.config.clip_len = clip_len  # saved with the model: the pipeline samples clips of this length
    heatmap_cfg = model.config.heatmap_config
    transform_kwargs = dict(
        clip_len=clip_len,
        train_size=tuple(heatmap_cfg.train_size),
        eval_size=tuple(heatmap_cfg.eval_size),
        layout=heatmap_cfg.layout,
    )

    def take(ds, n):
        return ds.select(range(min(n, len(ds)))) if n is not None else ds

    train_dataset = eval_dataset = test_dataset = None
    if training_args.do_train:
        train_split = take(splits[data_args.train_split], data_args.max_train_samples)
        # Seeded: each clip's augmentation depends on (seed, epoch, index) only, so resuming is exact.
        train_dataset = PoseClipDataset(
            train_split, PoseClipTransform("train", seed=training_args.seed, **transform_kwargs),
            seed=training_args.seed,
        )
    if training_args.do_train:
        apply_recipe(training_args, model, len(train_dataset))
    if training_args.do_eval:
        eval_split = take(splits[data_args.eval_split], data_args.max_eval_samples)
        eval_dataset = PoseClipDataset(
            eval_split, PoseClipTransform("val", num_clips=data_args.eval_num_clips, **transform_kwargs)
        )
    if training_args.do_predict:
        test_split = take(splits[data_args.test_split], data_args.max_eval_samples)
        test_dataset = PoseClipDataset(
            test_split,
            PoseClipTransform(
                "test", num_clips=data_args.test_num_clips, flip_double=data_args.test_flip, **transform_kwargs
            ),
        )

    is_contrastive = isinstance(model, SkeletonClipModel)
    static_persons = None
    if training_args.torch_compile:
        used = [d.dataset if d is not None else None for d in (train_dataset, eval_dataset, test_dataset)]
        static_persons = static_person_count(*used)
        logger.info(f"--torch_compile: every batch is padded to {static_persons} persons and texts to "
                    f"{model.config.text_max_length} tokens (one compiled shape).")
    train_texts = None
    if is_contrastive:
        if data_args.class_descriptions:
            used_names = list(dict.fromkeys(train_names + eval_names))
            use_class_descriptions(model, tokenizer, data_args, class_names, used_names)
        # Several texts per class where the config has descriptions (the collator then pairs clips with them all).
        train_texts = (model.config.class_text_lists(train_names) if model.config.class_descriptions
                       else model.config.class_texts(train_names))
    train_collator = PoseCollator(
        tokenizer=tokenizer if is_contrastive else None,
        class_texts=train_texts,
        text_max_length=model.config.text_max_length,
        static_persons=static_persons,
    )
    trainer = SkeletonClipTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=train_collator,
        eval_data_collator=PoseCollator(static_persons=static_persons),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(),
        class_names=eval_names if is_contrastive else None,
    )

    output_dir = training_args.output_dir
    if training_args.do_train:
        warn_small_training_set(model.config, len(train_dataset), training_args)
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        with writing(f"the trained model to {output_dir}"):
            trainer.save_model()  # model, config with auto_map, code files and (as processing_class) the tokenizer
            trainer.log_metrics("train", train_result.metrics)
            trainer.save_metrics("train", train_result.metrics)
            trainer.save_state()
            if trainer.is_world_process_zero():
                write_learning_curves(trainer.state.log_history, output_dir, title=os.path.basename(output_dir))

    if training_args.do_eval:
        output = trainer.evaluate_with_predictions(eval_dataset)  # evaluate(), and the scores for the report
        metrics = output.metrics
        trainer.log_metrics("eval", metrics)
        with writing(f"the evaluation results to {output_dir}"):
            trainer.save_metrics("eval", metrics)
            if trainer.is_world_process_zero() and output.predictions is not None:  # none with prediction_loss_only
                write_evaluation_report(output_dir, "eval", output.predictions, output.label_ids, eval_names)

    if training_args.do_predict:
        names = eval_names
        if candidate_names is not None:
            names = candidate_names
            trainer.class_names = names
            # The clips' own labels do not index the candidate texts: predict without them.
            trainer.eval_data_collator = drop_labels(PoseCollator(static_persons=static_persons))
        output = trainer.predict(test_dataset)
        labels = output.label_ids if candidate_names is None else None
        with writing(f"the predictions to {output_dir}"):
            if labels is not None:
                trainer.log_metrics("predict", output.metrics)
                trainer.save_metrics("predict", output.metrics)
                if trainer.is_world_process_zero() and output.predictions is not None:
                    write_evaluation_report(output_dir, "predict", output.predictions, labels, names)
            if trainer.is_world_process_zero():
                path = write_predictions(
                    os.path.join(output_dir, "predictions"),
                    data_args.predictions_format,
                    list(test_dataset.dataset["frame_dir"]),
                    labels,
                    output.predictions,
                    names,
                )
                logger.info(f"Wrote per-clip top-5 predictions to {path}")

    if trainer.is_world_process_zero() and training_args.do_train:
        # The card's base model is the config's text encoder (none for the classifier).
        kwargs = {"dataset": os.path.basename(data_args.train_file)}
        if training_args.push_to_hub:
            trainer.push_to_hub(**kwargs)
        else:
            with writing(f"the model card to {output_dir}"):
                trainer.create_model_card(**kwargs)


def report_bad_input(main_function, *args, **kwargs) -> int:
    """Calls `main_function`; bad arguments or bad data, and training that cannot go on (TrainingError), become one
    line on stderr and exit status 2 (as argparse's own errors), without a traceback. Returns the exit status."""
    try:
        main_function(*args, **kwargs)
    except (ArgumentError, PoseDataError, TrainingError) as err:
        # One line even when the message quotes a multi-line one (the config's validation errors).
        message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(report_bad_input(main))
