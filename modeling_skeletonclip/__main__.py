"""`python -m modeling_skeletonclip COMMAND ARGS` is the `skeletonclip` command, e.g. under `torchrun -m`."""

import sys

from modeling_skeletonclip.cli import main


if __name__ == "__main__":
    sys.exit(main())
