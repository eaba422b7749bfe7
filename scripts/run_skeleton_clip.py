#!/usr/bin/env python
"""Train and evaluate SkeletonCLIP models: the `skeletonclip train` command as a script, with the same arguments.

    python scripts/run_skeleton_clip.py                                      # the synthetic demo
    python scripts/run_skeleton_clip.py configs/ntu60_xsub_visece.json       # a recipe (overrides may follow)
    torchrun --nproc_per_node 2 scripts/run_skeleton_clip.py ARGS

The code is modeling_skeletonclip/run_training.py; the package must be installed (scripts/setup_env.sh installs it
editable into .venv).
"""

import sys

from modeling_skeletonclip.run_training import main, report_bad_input


if __name__ == "__main__":
    sys.exit(report_bad_input(main))
