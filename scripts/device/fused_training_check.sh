#!/usr/bin/env bash
# Issue 6, the training target, on one GPU in one call (~9.5 min): the two levers built without a GPU, measured.
#  - fused conv-BN training (`fused_training=True`: BN statistics in the conv epilogue, BN-apply + ReLU in the next
#    conv's prologue and weight gradient, ReLU mask + BN-backward sums in the data gradient; cuDNN graphs via
#    cudnn-frontend). Never run on a GPU before: the first step says which graphs cuDNN supports and how long each
#    took to build (runtime compilation, once per conv shape and batch size: the first steps are slow).
#  - the unfolded stem (`unfold_stem=True`: the 7x7 stem over 17 -> 24 channels as a 7x1 conv over 120 channels).
#  1. (<= 1.5 min) scripts/check_fused_training.py --ops-only: every graph on the full-size shapes at batch 128 (the
#     unfolded stem too) against its torch reference (exits 1 beyond bf16 rounding), its time against the plain
#     conv, and how long cuDNN took to build it. (Not the encoder step: it would build ~60 graphs for its own batch
#     size, and the benchmark's fused rows check their train output against the plain path anyway.)
#  2. (<= 6.5 min) the train rows, batch 128, 48x56x56: conv3d fp32 (reference), conv3d bf16 channels-last (the
#     targets' baseline: >= 1,000 clips/s and >= 3x it), fast bf16, fast bf16 fused conv-BN (eager: builds the
#     graphs), then compiled: fast, fused conv-BN, unfolded stem, both. Each option row reports its train output
#     against the plain fast path. JSON rewritten after each row, so a timeout keeps what was measured;
#  3. (what is left of ~9.5 min) the kernel breakdown of the compiled step with both options.
# Prepare once on the dev machine: bash scripts/device/prepare_packages.sh (it fetches nvidia-cudnn-frontend too)
# Then: run(command="bash scripts/device/fused_training_check.sh", carry=[".whl"], timeout_s=600)
source "$(dirname "$0")/install_packages.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 90 python3 scripts/check_fused_training.py --batch 128 --ops-only --json "$OUT/fused_check.json" 2>&1 \
  | grep -v -i warn
timeout 390 python3 scripts/benchmark.py --rows encoder --compile --train-only --json "$OUT/bench_train.json" \
  --encoder-rows "^fast bf16$|fused conv-BN|compile" 2>&1 | grep -v -i warn | tail -16
left=$((570 - SECONDS))
if [ "$left" -gt 45 ]; then
  timeout "$left" python3 scripts/profile_encoder.py --compile default --mode train --fused-training --unfold-stem \
    --top 30 --json "$OUT/prof_train_fused.json" 2>&1 | grep -v -i warn | head -45
else
  echo "no time left for the kernel breakdown ($left s)"
fi
