#!/usr/bin/env python
"""Convert a pyskl PoseC3D checkpoint into a SkeletonClipForActionRecognition folder: the `skeletonclip
convert-pyskl` command as a script, with the same arguments.

    python scripts/convert_pyskl_checkpoint.py slowonly_r50_ntu60_xsub_joint.pth out/posec3d-ntu60-joint \
        --label_map data/label_maps/ntu60.txt

The code is modeling_skeletonclip/convert_pyskl.py; the package must be installed (scripts/setup_env.sh installs
it editable into .venv).
"""

from modeling_skeletonclip.convert_pyskl import main


if __name__ == "__main__":
    main()
