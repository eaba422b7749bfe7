#!/usr/bin/env python
"""Writes the synthetic COCO-17 pose dataset (pyskl pickle format) and its label map.

    python scripts/make_synthetic_poses.py --output data/synthetic/poses.pkl

writes data/synthetic/poses.pkl and data/synthetic/labels.txt (one class name per line), loadable with
``load_pose_dataset("data/synthetic/poses.pkl", label_map="data/synthetic/labels.txt")``.
"""

import argparse
import os

from modeling_skeletonclip.synthetic_poses import SYNTHETIC_CLASS_NAMES, write_synthetic_poses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="data/synthetic/poses.pkl", help="pickle to write")
    parser.add_argument("--label-map", default=None, help="class names file (default: labels.txt next to --output)")
    parser.add_argument("--num-train-per-class", type=int, default=30)
    parser.add_argument("--num-val-per-class", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--img-shape", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    args = parser.parse_args(argv)
    path = write_synthetic_poses(
        args.output,
        label_map_path=args.label_map,
        num_train_per_class=args.num_train_per_class,
        num_val_per_class=args.num_val_per_class,
        seed=args.seed,
        img_shape=tuple(args.img_shape),
    )
    label_map = args.label_map or os.path.join(os.path.dirname(os.path.abspath(path)), "labels.txt")
    n = len(SYNTHETIC_CLASS_NAMES)
    print(f"Wrote {path} ({os.path.getsize(path) / 2**20:.1f} MiB; {n} classes, "
          f"{n * args.num_train_per_class} train / {n * args.num_val_per_class} val clips) and {label_map}")


if __name__ == "__main__":
    main()
