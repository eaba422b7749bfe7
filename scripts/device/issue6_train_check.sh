#!/usr/bin/env bash
# Issue 6, the training target, on one GPU in one call (~8 min): why the compiled train step of the fast path
# (fast bf16 + torch.compile, batch 128, 48x56x56) takes ~165 ms. Each step is a separate process, so compare
# their wall-clock clips/s (printed outside the profiler) with each other, not with another day's table.
#  1. every inductor kernel's achieved memory bandwidth (inductor's profile_bandwidth; the card does ~3 TB/s):
#     which of the ~54 % of generated kernels (BatchNorm, max-pool, adds) run far below it;
#  2. the same step with inductor's coordinate-descent tuning of those kernels (minutes of compile time);
#  3. the kernel-category breakdown with more kernels listed than before;
#  0. first (30 s): the stem conv alone (its weight gradient is the largest kernel of the step, 15.2 ms, an sm80
#     "indexed" kernel): forward and forward + weight gradient with the padding in the conv (as now), with the
#     input zero-padded beforehand (which the fast path's input copy could do for free), in NCHW, and with the 7
#     horizontal taps unfolded into channels (a 7x1 conv over 120 channels).
# Prepare once on the dev machine: bash scripts/device/prepare_packages.sh
# Then: run(command="bash scripts/device/issue6_train_check.sh", carry=[".whl"], timeout_s=600)
source "$(dirname "$0")/install_packages.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 90 python3 - <<'PY'
import torch, torch.nn.functional as F
from torch.utils.benchmark import Timer
x = torch.rand(6144, 24, 56, 56, device="cuda", dtype=torch.bfloat16)
w = torch.randn(32, 24, 7, 7, device="cuda", dtype=torch.bfloat16, requires_grad=True)
cases = {"conv padding, NHWC": (x.contiguous(memory_format=torch.channels_last), 3),
         "input pre-padded, NHWC": (F.pad(x, (3, 3, 3, 3)).contiguous(memory_format=torch.channels_last), 0),
         "conv padding, NCHW": (x, 3)}
for name, (inp, pad) in cases.items():
    wl = w.detach().contiguous(memory_format=torch.channels_last if inp.is_contiguous(
        memory_format=torch.channels_last) else torch.contiguous_format).requires_grad_()
    fwd = lambda: F.conv2d(inp, wl, padding=pad)
    def fwd_wgrad():
        F.conv2d(inp, wl, padding=pad).sum().backward()
    t1 = Timer("f()", globals={"f": fwd}).blocked_autorange(min_run_time=1).median * 1e3
    t2 = Timer("f()", globals={"f": fwd_wgrad}).blocked_autorange(min_run_time=1).median * 1e3
    print(f"stem {name}: forward {t1:.2f} ms, forward + weight gradient (+ sum) {t2:.2f} ms")
# The 7 horizontal taps of the 17 real channels unfolded into 119 (-> 120) channels: a 7x1 conv with 5x the
# reduction per tap (the same FLOPs as 17 channels, 30 % fewer than 24), paid for with a 4.6 GB input.
def unfold_w():
    u = F.pad(x[:, :17], (3, 3)).unfold(3, 7, 1).permute(0, 4, 1, 2, 3).reshape(x.shape[0], 119, 56, 56)
    return F.pad(u, (0, 0, 0, 0, 0, 1)).contiguous(memory_format=torch.channels_last)
xu = unfold_w()
wu = torch.randn(32, 120, 7, 1, device="cuda", dtype=torch.bfloat16).contiguous(
    memory_format=torch.channels_last).requires_grad_()
def unf_wgrad():
    F.conv2d(xu, wu, padding=(3, 0)).sum().backward()
t0 = Timer("f()", globals={"f": unfold_w}).blocked_autorange(min_run_time=1).median * 1e3
t1 = Timer("f()", globals={"f": lambda: F.conv2d(xu, wu, padding=(3, 0))}).blocked_autorange(min_run_time=1).median * 1e3
t2 = Timer("f()", globals={"f": unf_wgrad}).blocked_autorange(min_run_time=1).median * 1e3
print(f"stem W-unfolded (120 ch, 7x1): building the input {t0:.2f} ms, forward {t1:.2f} ms, + weight gradient {t2:.2f} ms")
PY
timeout 140 python3 scripts/profile_encoder.py --compile default --mode train --steps 1 --warmup 0 --top 40 \
  --inductor-options profile_bandwidth=True,profile_bandwidth_output=$OUT/bandwidth.txt \
  --json "$OUT/prof_train_bandwidth.json" > "$OUT/prof_train_bandwidth.log" 2>&1
grep "wall-clock\|rror" "$OUT/prof_train_bandwidth.log" | head -5
# The file has one section per compiled-graph call (forward, backward, forward, ...), kernels sorted by time:
# the first forward and backward sections, 18 kernels each, and their summaries.
awk '/^TRITON KERNELS/{n++; c=0} n>=1 && n<=2 && c++<19' "$OUT/bandwidth.txt"
grep -m2 -A1 "^SUMMARY" "$OUT/bandwidth.txt"
timeout 280 python3 scripts/profile_encoder.py --compile default --mode train --top 40 \
  --inductor-options coordinate_descent_tuning=True --json "$OUT/prof_train_cd.json" 2>&1 | grep -v -i warn | head -12
timeout 100 python3 scripts/profile_encoder.py --compile default --mode train --top 40 \
  --json "$OUT/prof_train.json" 2>&1 | grep -v -i warn | head -12
