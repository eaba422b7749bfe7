"""ONNX export of the video side of a saved model: keypoints in, class probabilities out.

    skeletonclip export --model_name_or_path runs/synthetic_demo --output_dir runs/synthetic_demo_onnx
    skeletonclip export --model_name_or_path runs/demo --output_dir out --candidate_labels labels.txt \
        --hypothesis_template "a person doing {}"

The graph takes `keypoints [N, M, T, V, 2]` float32 (pixels of the `eval_size` frame, as `PoseClipTransform`
"test" produces them, views folded into N), `keypoint_scores [N, M, T, V]` float32 and `mirrored [N]` bool (the
flip-doubled views, whose rendered heatmaps are mirrored as pyskl mirrors them), renders the heatmaps with the
dense renderer and runs the encoder; it returns `probabilities [N, L]`, the softmax of the class logits (the
caller averages over views). N and M are dynamic, T is `clip_len`. A contrastive model's class texts are encoded
once here: their normalised embeddings are a constant of the graph, so inference needs neither the text encoder
nor a tokenizer. The folder also holds `skeletonclip_onnx.json` (class names, clip_len, eval_size, layout,
objective, versions) and the model's `config.json`; `onnx_runtime.OnnxSkeletonClip` runs it.
"""

import argparse
import json
import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .configuration_skeletonclip import SkeletonClipConfig
from .modeling_skeletonclip import SkeletonClipForActionRecognition, SkeletonClipModel
from .pipeline_skeletonclip import DEFAULT_CLIP_LEN


ONNX_FILE = "model.onnx"
METADATA_FILE = "skeletonclip_onnx.json"
INPUT_NAMES = ("keypoints", "keypoint_scores", "mirrored")
OUTPUT_NAME = "probabilities"
DEFAULT_OPSET = 18
# The batch of the example inputs the graph is recorded with (any other batch runs too: N is dynamic).
EXAMPLE_BATCH, EXAMPLE_PERSONS = 2, 2


class ExportedSkeletonClip(nn.Module):
    """`(keypoints [N, M, T, V, 2], keypoint_scores [N, M, T, V], mirrored [N] bool)` -> class probabilities `[N, L]`
    of `model` (eval mode): the classifier's softmax, or the contrastive model's softmax over `class_text_embeds
    [L, D]`."""

    def __init__(self, model, class_text_embeds: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.contrastive = isinstance(model, SkeletonClipModel)
        if self.contrastive:
            self.register_buffer("class_text_embeds", class_text_embeds.detach().float().clone())

    def forward(self, keypoints: torch.Tensor, keypoint_scores: torch.Tensor, mirrored: torch.Tensor) -> torch.Tensor:
        if self.contrastive:
            logits = self.model.score_all_classes(keypoints=keypoints, keypoint_scores=keypoint_scores,
                                                  mirrored=mirrored, class_text_embeds=self.class_text_embeds)
        else:
            logits = self.model(keypoints=keypoints, keypoint_scores=keypoint_scores, mirrored=mirrored,
                                return_dict=True).logits
        return logits.float().softmax(dim=-1)  # [N, L]


def load_saved_model(path: str):
    """The model saved in folder `path`, as the kind its config names (`architectures`), in eval mode."""
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path}: no config.json; --model_name_or_path must be a folder saved by "
                                "`skeletonclip train` (or save_pretrained).")
    config = SkeletonClipConfig.from_pretrained(path)
    classifier = "SkeletonClipForActionRecognition" in (config.architectures or [])
    model_class = SkeletonClipForActionRecognition if classifier else SkeletonClipModel
    return model_class.from_pretrained(path).eval()


def encode_class_texts(model: SkeletonClipModel, tokenizer, texts: list[str], chunk_size: int = 256) -> torch.Tensor:
    """Normalised text embeddings `[L, D]`, computed as the pipeline computes them (same chunks, same padding)."""
    embeds = []
    with torch.no_grad():
        for start in range(0, len(texts), chunk_size):
            batch = tokenizer(texts[start : start + chunk_size], padding=True, truncation=True,
                              max_length=model.config.text_max_length, return_tensors="pt")
            embeds.append(F.normalize(model.get_text_features(**batch).pooler_output, dim=-1))
    return torch.cat(embeds)


def _versions() -> dict:
    import onnx
    import onnxscript
    import transformers

    from modeling_skeletonclip import __version__

    return {"skeletonclip": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": onnx.__version__, "onnxscript": onnxscript.__version__}


def _example_inputs(config, clip_len: int, batch: int = EXAMPLE_BATCH, persons: int = EXAMPLE_PERSONS):
    """Keypoints inside the eval frame, some joints missing (score 0), and one view of two mirrored, for recording
    the graph."""
    height, width = config.heatmap_config.eval_size
    joints = config.heatmap_config.num_joints
    g = torch.Generator().manual_seed(0)
    keypoints = torch.rand(batch, persons, clip_len, joints, 2, generator=g) * torch.tensor([width - 1, height - 1])
    scores = torch.rand(batch, persons, clip_len, joints, generator=g)
    scores[scores < 0.2] = 0.0
    mirrored = torch.arange(batch) % 2 == 1
    return keypoints, scores, mirrored


def export_onnx(
    model_or_path,
    output_dir: str,
    candidate_labels: list[str] | None = None,
    hypothesis_template: str | None = None,
    opset: int = DEFAULT_OPSET,
    clip_len: int | None = None,
) -> str:
    """Writes `output_dir/model.onnx`, `skeletonclip_onnx.json` and `config.json`; returns the ONNX file's path.

    model_or_path: a `SkeletonClipModel` of any objective (with `model.tokenizer`, which encodes the class texts),
        a `SkeletonClipForActionRecognition`, or the folder of either saved by save_pretrained.
    candidate_labels / hypothesis_template: contrastive models only: the classes the graph scores (default the
        config's `id2label`) and how a label becomes its text (default `config.text_template`).
    clip_len: frames per clip the graph takes (default `config.clip_len`, 48 for configs without it).
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) translates with it)
    except ImportError as err:
        raise ImportError(f"ONNX export needs onnx and onnxscript: pip install 'skeletonclip[onnx]' ({err}).") from None
    model = load_saved_model(os.fspath(model_or_path)) if isinstance(model_or_path, (str, os.PathLike)) else model_or_path
    if not isinstance(model, (SkeletonClipModel, SkeletonClipForActionRecognition)):
        raise TypeError(f"export_onnx takes a SkeletonClipModel, a SkeletonClipForActionRecognition or a saved "
                        f"folder, got {type(model).__name__}.")
    was_training = model.training
    model.eval()
    config = model.config
    contrastive = isinstance(model, SkeletonClipModel)
    id2label = config.id2label or {}
    default_names = [id2label[i] for i in range(len(id2label))]
    if not contrastive and (candidate_labels is not None or hypothesis_template is not None):
        raise ValueError("candidate_labels and hypothesis_template need a contrastive SkeletonClipModel; the "
                         f"classifier scores its own classes: {default_names}.")
    class_names = list(candidate_labels) if candidate_labels is not None else default_names
    if not class_names or not all(isinstance(name, str) and name.strip() for name in class_names):
        raise ValueError(f"The classes to export must be a non-empty list of names, got {class_names!r} (the "
                         "config has no id2label: pass candidate_labels).")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"candidate_labels repeats a class: {class_names!r}.")
    class_text_embeds, template = None, None
    if contrastive:
        template = hypothesis_template if hypothesis_template is not None else config.text_template
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"hypothesis_template must be a string with '{{}}' where the label goes, got {template!r}.")
        if model.tokenizer is None:
            raise ValueError("The contrastive model needs its tokenizer (model.tokenizer) to encode the class texts; "
                             "a folder saved by save_pretrained carries one.")
        # A class with descriptions (config.class_descriptions) is their ensemble, as in the pipeline.
        class_text_embeds = model.encode_class_texts(config.class_text_lists(class_names, template), model.tokenizer)
    clip_len = int(clip_len if clip_len is not None else (getattr(config, "clip_len", None) or DEFAULT_CLIP_LEN))

    graph = ExportedSkeletonClip(model, class_text_embeds).eval()
    keypoints, scores, mirrored = _example_inputs(config, clip_len)
    clips, persons = torch.export.Dim("clips"), torch.export.Dim("persons")
    dynamic_shapes = {"keypoints": {0: clips, 1: persons}, "keypoint_scores": {0: clips, 1: persons},
                      "mirrored": {0: clips}}
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, ONNX_FILE)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Both inputs share the axes on purpose; the exporter says so for each.
            warnings.filterwarnings("ignore", message=".*shares the same shape constraints with another axis")
            program = torch.onnx.export(
                graph,
                (keypoints, scores, mirrored),
                dynamic_shapes=dynamic_shapes,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
    finally:
        model.train(was_training)
    program.save(path, external_data=False)
    onnx.checker.check_model(path, full_check=True)

    heatmap_config = config.heatmap_config
    metadata = {
        "class_names": class_names,
        "objective": config.objective if contrastive else "classifier",
        "hypothesis_template": template,
        "clip_len": clip_len,
        "eval_size": list(heatmap_config.eval_size),
        "layout": heatmap_config.layout,
        "num_joints": heatmap_config.num_joints,
        "inputs": {"keypoints": ["clips", "persons", clip_len, heatmap_config.num_joints, 2],
                   "keypoint_scores": ["clips", "persons", clip_len, heatmap_config.num_joints],
                   "mirrored": ["clips"]},
        "outputs": {OUTPUT_NAME: ["clips", len(class_names)]},
        "opset": opset,
        "versions": _versions(),
    }
    with open(os.path.join(output_dir, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2)
    config.to_json_file(os.path.join(output_dir, "config.json"))
    return path


def main(argv=None, prog="skeletonclip export"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export the video side of a saved model to ONNX: keypoints in, class probabilities out "
                    "(contrastive models: the class texts are encoded now and stored in the graph).",
    )
    parser.add_argument("--model_name_or_path", required=True, help="a folder saved by `skeletonclip train`")
    parser.add_argument("--output_dir", required=True, help="where model.onnx, skeletonclip_onnx.json and "
                                                            "config.json go")
    parser.add_argument("--candidate_labels", help="contrastive models: a text file of class names, one a line "
                                                   "(default: the model's classes)")
    parser.add_argument("--hypothesis_template", help="contrastive models: e.g. 'a person doing {}' (default: the "
                                                      "model's text_template)")
    parser.add_argument("--clip_len", type=int, help="frames per clip (default: the model's clip_len)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    args = parser.parse_args(argv)
    from .run_training import ArgumentError, read_candidate_labels

    labels = read_candidate_labels(args.candidate_labels) if args.candidate_labels else None
    if not os.path.isfile(os.path.join(args.model_name_or_path, "config.json")):
        raise ArgumentError(f"--model_name_or_path {args.model_name_or_path}: no config.json; a folder saved by "
                            "`skeletonclip train` (or save_pretrained) goes here.")
    path = export_onnx(args.model_name_or_path, args.output_dir, candidate_labels=labels,
                       hypothesis_template=args.hypothesis_template, opset=args.opset, clip_len=args.clip_len)
    print(f"Wrote {path}")
