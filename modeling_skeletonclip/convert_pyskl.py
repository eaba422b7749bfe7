#!/usr/bin/env python
r"""Convert a pyskl PoseC3D (ResNet3dSlowOnly + I3DHead) checkpoint into a SkeletonClipForActionRecognition folder.

    skeletonclip convert-pyskl slowonly_r50_ntu60_xsub_joint.pth out/posec3d-ntu60-joint \
        --label_map data/label_maps/ntu60.txt

Our module names follow pyskl's, so the mapping is a prefix change: `backbone.` -> `video_encoder.`,
`cls_head.fc_cls.` -> `classifier.`. Every tensor must land somewhere and every model tensor must be filled.
"""

import argparse
import os
import sys

import torch

from modeling_skeletonclip import SkeletonClipConfig, SkeletonClipForActionRecognition
from modeling_skeletonclip.resources import packaged_data_file


PREFIXES = {"backbone.": "video_encoder.", "cls_head.fc_cls.": "classifier."}


def convert_pyskl_state_dict(state_dict: dict) -> dict:
    """pyskl key names -> ours. Raises on any key that has no place in the model."""
    converted, unknown = {}, []
    for key, tensor in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key  # saved from DataParallel/DDP
        for old, new in PREFIXES.items():
            if key.startswith(old):
                converted[new + key[len(old):]] = tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"Keys with no place in SkeletonClipForActionRecognition: {unknown[:10]}")
    return converted


def config_for(state_dict: dict, class_names: list[str] | None) -> SkeletonClipConfig:
    """Reads the architecture off the tensors: input channels, widths, blocks per stage, class count."""
    in_channels = state_dict["video_encoder.conv1.conv.weight"].shape[1]
    base_channels = state_dict["video_encoder.conv1.conv.weight"].shape[0]
    stage_blocks, stage_planes, i = [], [], 1
    while f"video_encoder.layer{i}.0.conv1.conv.weight" in state_dict:
        blocks = 0
        while f"video_encoder.layer{i}.{blocks}.conv1.conv.weight" in state_dict:
            blocks += 1
        stage_blocks.append(blocks)
        stage_planes.append(state_dict[f"video_encoder.layer{i}.0.conv1.conv.weight"].shape[0])
        i += 1
    inflate = [int(state_dict[f"video_encoder.layer{s + 1}.0.conv1.conv.weight"].shape[2] == 3) for s in range(i - 1)]
    num_classes = state_dict["classifier.weight"].shape[0]
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"The label map has {len(class_names)} names but the checkpoint has {num_classes} classes.")
    names = class_names or [f"class_{c}" for c in range(num_classes)]
    # 17 input channels: joints; otherwise limbs of COCO-17 (pyskl's limb models also have 17 channels, so the
    # caller states which with --limbs).
    return SkeletonClipConfig(
        video_config={
            "in_channels": in_channels,
            "base_channels": base_channels,
            "stage_blocks": stage_blocks,
            "stage_planes": stage_planes,
            "inflate": inflate,
        },
        id2label=dict(enumerate(names)),
    )


def convert(checkpoint_path, output_dir, label_map=None, limbs=False):
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except Exception as err:  # mmcv checkpoints may hold objects in "meta"; refuse rather than unpickle them
        raise ValueError(f"{checkpoint_path}: could not read it as a weights-only torch checkpoint ({err}).") from err
    state_dict = convert_pyskl_state_dict(checkpoint.get("state_dict", checkpoint))
    names = None
    if label_map:
        if not os.path.isfile(label_map):
            packaged = packaged_data_file(label_map)  # data/label_maps/... outside a checkout: the package's copy
            if packaged is None:
                raise FileNotFoundError(f"--label_map {label_map} does not exist.")
            label_map = packaged
        with open(label_map) as f:
            names = [line.strip() for line in f if line.strip()]
    config = config_for(state_dict, names)
    config.heatmap_config.with_joints = not limbs
    config.heatmap_config.with_limbs = limbs
    model = SkeletonClipForActionRecognition(config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ValueError(f"Checkpoint does not fit the model: missing {missing[:10]}, unexpected {unexpected[:10]}.")
    model.save_pretrained(output_dir)
    return model


def main(argv=None, prog=None):
    """Runs on `argv` (default: the command line); errors in the checkpoint or the label map exit with status 2."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="pyskl .pth checkpoint")
    parser.add_argument("output_dir")
    parser.add_argument("--label_map", help="class names, one per line (e.g. data/label_maps/ntu60.txt)")
    parser.add_argument("--limbs", action="store_true", help="the checkpoint was trained on limb heatmaps")
    args = parser.parse_args(argv)
    try:
        convert(args.checkpoint, args.output_dir, args.label_map, args.limbs)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"Saved SkeletonClipForActionRecognition to {args.output_dir}")


if __name__ == "__main__":
    main()
