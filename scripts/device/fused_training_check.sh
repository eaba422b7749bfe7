#!/usr/bin/env bash
# Issue 6, the training target, on one GPU in one call (~8 min): the fused conv-BN training path
# (`fast_video_encoder_forward(..., fused_training=True)`: BN statistics in the conv epilogue, BN-apply + ReLU in
# the next conv's prologue and weight gradient, ReLU mask + BN-backward sums in the data gradient; cuDNN graphs via
# cudnn-frontend). Never run on a GPU before this: the first step says which graphs cuDNN supports. cuDNN builds
# (and may runtime-compile) one graph per conv shape and batch size on first use: the first steps are slow.
#  1. (~1 min) scripts/check_fused_training.py: every graph on the full-size shapes against its torch reference, the
#     variant cuDNN took (or why none), and the whole encoder's bf16 train step fused vs plain (exits 1 if they
#     differ beyond bf16 rounding);
#  2. (~4 min) the encoder train rows with compile, batch 128, 48x56x56: conv3d fp32 / bf16 channels-last, fast,
#     fast fused conv-BN, compiled fast, compiled fast fused conv-BN (the targets: >= 1,000 clips/s, >= 3x conv3d
#     bf16 channels-last);
#  3. (~1.5 min) the kernel breakdown of the compiled fused train step.
# Prepare once on the dev machine: bash scripts/device/prepare_packages.sh (it fetches nvidia-cudnn-frontend too)
# Then: run(command="bash scripts/device/fused_training_check.sh", carry=[".whl"], timeout_s=600)
source "$(dirname "$0")/install_packages.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 150 python3 scripts/check_fused_training.py --batch 8 --json "$OUT/fused_check.json" 2>&1 | grep -v -i warn
timeout 300 python3 scripts/benchmark.py --rows encoder --compile --train-only --json "$OUT/bench_train.json" \
  2>&1 | grep -v -i warn | tail -16
timeout 90 python3 scripts/profile_encoder.py --compile default --mode train --fused-training --top 30 \
  --json "$OUT/prof_train_fused.json" 2>&1 | grep -v -i warn | head -45
