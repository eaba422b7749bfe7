#!/usr/bin/env bash
# Issue 6 on one GPU in one call (~10 min): the encoder rows of scripts/benchmark.py with torch.compile (the fast
# path's fused-epilogue inference rows included, each checked against the plain path's output; last, the compiled
# row again with inductor's coordinate-descent tuning of its generated kernels), then the kernel breakdown of the
# compiled train step and of compiled fused inference (scripts/profile_encoder.py).
# Prepare once on the dev machine: bash scripts/device/prepare_packages.sh
# Then: run(command="bash scripts/device/issue6_check.sh", carry=[".whl"], timeout_s=600)
source "$(dirname "$0")/install_packages.sh"
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv
python3 -c "import torch, transformers, datasets; print(torch.__version__, transformers.__version__, datasets.__version__)"
timeout 420 python3 scripts/benchmark.py --rows encoder --compile --inductor-options coordinate_descent_tuning=True \
  --json "$OUT/bench_encoder.json" > "$OUT/bench_encoder.log" 2>&1
grep "done:\|rror\|no fused" "$OUT/bench_encoder.log" | tail -16
timeout 130 python3 scripts/profile_encoder.py --compile default --mode train --top 16 \
  --json "$OUT/prof_compiled_train.json" 2>&1 | grep -v -i warn | tail -28
timeout 100 python3 scripts/profile_encoder.py --compile default --mode inference --fused-epilogues --top 12 \
  --json "$OUT/prof_fused_inference.json" 2>&1 | grep -v -i warn | tail -24
