#!/usr/bin/env bash
# Issue 6 inference rows on one GPU in one short call (~3 min): every encoder row of scripts/benchmark.py with
# torch.compile, inference only (no train steps), so the fused-epilogue rows are measured against the conv3d bf16
# channels-last path in the same run. Prepare once on the dev machine: bash scripts/device/prepare_packages.sh
# Then: run(command="bash scripts/device/issue6_inference.sh", carry=[".whl"], timeout_s=300)
source "$(dirname "$0")/install_packages.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 250 python3 scripts/benchmark.py --rows encoder --compile --inference-only \
  --json "$OUT/bench_inference.json" > "$OUT/bench_inference.log" 2>&1
grep "done:\|rror\|no fused" "$OUT/bench_inference.log" | tail -12
