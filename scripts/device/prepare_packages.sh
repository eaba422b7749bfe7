#!/usr/bin/env bash
# Downloads, on the dev machine, the pinned Python packages that the GPU machine's image lacks or has too old
# (its transformers 5.17 lacks SubConfigSpec; no datasets/evaluate; no cudnn-frontend for the fused conv-BN
# training graphs), as Python 3.12 x86-64 wheels into .whl/
# (git-ignored). A device call then carries ".whl" and installs them with --target (scripts/device/*.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  transformers==5.23.0 huggingface_hub==2.4.0 tokenizers==0.23.3 datasets==5.2.0 evaluate==0.4.6 \
  httpx2==2.16.2 httpcore2==2.16.2 anyio==4.16.0 h11==0.16.0 idna==3.20 truststore==0.10.5 \
  dill==0.4.1 multiprocess==0.70.19 fsspec==2026.9.0 nvidia-cudnn-frontend==1.14.0
ls .whl
