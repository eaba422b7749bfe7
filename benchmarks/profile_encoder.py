#!/usr/bin/env python
"""Where the video encoder's time goes: a kernel-time breakdown of one configuration, by category.

`benchmark.py` says how fast each configuration is; this script says why, so that the next optimisation
targets the largest term. It runs a few train steps (forward + backward + AdamW) or inference passes of the
SlowOnly encoder under `torch.profiler` and sums the self time of every kernel (GPU) or operator (CPU) into
categories: convolution (cuDNN / cuBLAS / oneDNN), batch norm, pooling, elementwise, optimizer, inductor-generated
kernels (torch.compile's fused code), other.

Usage:
  python benchmarks/profile_encoder.py                              # GPU: fast bf16, train, batch 128, 48x56x56
  python benchmarks/profile_encoder.py --compile default --mode inference
  python benchmarks/profile_encoder.py --impl conv3d --channels-last --json prof.json --trace trace.json
  python benchmarks/profile_encoder.py --quick                      # CPU smoke run (reduced encoder)

Flags:
  --impl fast|conv3d   the encoder path; --fp32 turns bf16 autocast off; --channels-last: channels_last_3d
                       input and weights (the conv3d path's fast layout).
  --compile MODE       torch.compile mode (default, reduce-overhead, max-autotune-no-cudagraphs, max-autotune).
  --channel-multiple N the fast path's input-channel padding (default: its own, 8 on CUDA).
  --fused-epilogues    the fast path's fused conv-bias(-add)-ReLU ops (inference only).
  --inductor-options K=V[,K=V]  torch._inductor.config settings while compiling (e.g. coordinate_descent_tuning=True).
  --mode train|inference, --batch / --frames / --size, --steps (profiled) / --warmup, --top (kernels listed).
  --json PATH          categories and top kernels as JSON; --trace PATH: a Chrome trace of the profiled steps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import torch
from torch.profiler import ProfilerActivity, profile

# Run from a checkout: the checkout's package, and tests/helpers.py (random keypoints, the heatmap oracle).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [path for path in (_ROOT, os.path.join(_ROOT, "tests")) if path not in sys.path]

from benchmark import (  # noqa: E402
    COMPILE_MODES,
    REDUCED_VIDEO,
    EncoderVariant,
    encoder_steps,
    machine_description,
    parse_inductor_options,
    seconds_per_iter,
    sync,
)

from modeling_skeletonclip.configuration_skeletonclip import SkeletonClipVideoConfig  # noqa: E402
from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipVideoEncoder  # noqa: E402

# First match wins. Inductor's kernels come first: their names carry the ops they fused ("..._batch_norm_...") but
# the point of them is that several ops became one kernel.
CATEGORIES = (
    # On CPU the generated C++ kernels are not profiler events of their own: their time is the self time of the
    # "## Call CompiledFxGraph ... ##" region.
    ("inductor-generated", r"^triton_|cpp_fused|^graph_\d+_|CompiledFxGraph"),
    ("batch norm", r"batch_norm|bn_fw|bn_bw"),
    ("pooling", r"pool"),
    ("optimizer", r"adam|multi_tensor|foreach|_fused_"),
    ("convolution", r"conv|gemm|xmma|cutlass|nvjet|cudnn|wgrad|dgrad|fprop|AddPadding"),
    ("elementwise", r"elementwise|add|mul|relu|threshold|copy|fill|clamp|where|sqrt|div|sub|neg|pow|sum|mean"),
)


def categorize(name: str) -> str:
    for category, pattern in CATEGORIES:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return category
    return "other"


def kernel_times(prof, device: torch.device) -> dict[str, float]:
    """Self time in ms of every kernel (CUDA) or operator (CPU) in the profile, by name."""
    times = {}
    for event in prof.key_averages():
        if device.type == "cuda":
            ms = event.self_device_time_total / 1e3
        else:
            # Profiler bookkeeping ("ProfilerStep", "Optimizer.step#..." wrappers) has self time too; keep aten ops
            # and compiled kernels.
            if event.key.startswith(("ProfilerStep", "Optimizer.", "Torch-Compiled Region", "CompiledFunction")):
                continue
            ms = event.self_cpu_time_total / 1e3
        if ms > 0:
            times[event.key] = times.get(event.key, 0.0) + ms
    return times


def breakdown(times: dict[str, float], steps: int, top: int) -> dict:
    total = sum(times.values())
    categories = {}
    for name, ms in times.items():
        categories[categorize(name)] = categories.get(categorize(name), 0.0) + ms
    per_step = {name: ms / steps for name, ms in sorted(categories.items(), key=lambda item: -item[1])}
    kernels = sorted(times.items(), key=lambda item: -item[1])[:top]
    return {
        "total_ms_per_step": total / steps,
        "categories_ms_per_step": per_step,
        "categories_share": {name: ms * steps / total for name, ms in per_step.items()} if total else {},
        "top_kernels_ms_per_step": [
            {"name": name, "category": categorize(name), "ms_per_step": ms / steps} for name, ms in kernels
        ],
    }


def profile_encoder(args) -> dict:
    device = torch.device(args.device)
    config = SkeletonClipVideoConfig(conv_impl="conv3d", **(REDUCED_VIDEO if args.quick else {}))
    torch.manual_seed(0)
    base = SkeletonClipVideoEncoder(config)
    x = torch.rand(args.batch, config.in_channels, args.frames, args.size, args.size, device=device)
    variant = EncoderVariant(args.impl, args.impl, not args.fp32, args.channels_last, args.compile,
                             args.channel_multiple, args.fused_epilogues, tuple(args.inductor_options))
    with torch._inductor.config.patch(dict(variant.inductor_options)):  # compilation happens in the first steps
        return _profile_encoder(args, base, x, device, variant)


def _profile_encoder(args, base, x, device, variant) -> dict:
    encoder, train_step, inference = encoder_steps(base, x, device, variant)
    encoder.train(args.mode == "train")
    step = train_step if args.mode == "train" else inference
    # Wall-clock time outside the profiler (whose bookkeeping slows the host side), warm-up and compilation first.
    wall_seconds = seconds_per_iter(step, device, args.steps, args.warmup + (2 if args.compile else 0))
    activities = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        sync(device)
    if args.trace:
        prof.export_chrome_trace(args.trace)
    result = breakdown(kernel_times(prof, device), args.steps, args.top)
    result["wall_ms_per_step"] = 1e3 * wall_seconds
    result["clips_per_s"] = args.batch / wall_seconds
    result["machine"] = machine_description(device)
    result["settings"] = {
        key: getattr(args, key)
        for key in ("impl", "mode", "batch", "frames", "size", "steps", "compile", "channels_last", "channel_multiple",
                    "fused_epilogues", "inductor_options")
    }
    result["settings"]["precision"] = "fp32" if args.fp32 else "bf16 autocast"
    return result


def print_breakdown(result: dict) -> None:
    settings = result["settings"]
    compiled = f" + torch.compile({settings['compile']})" if settings["compile"] else ""
    print(f"\n{result['machine']}: encoder {settings['impl']} {settings['precision']}{compiled}, {settings['mode']}, "
          f"batch {settings['batch']}, {settings['frames']}x{settings['size']}x{settings['size']}")
    if settings["inductor_options"]:
        print("inductor options: " + ", ".join(f"{key}={value}" for key, value in settings["inductor_options"]))
    print(f"wall-clock time per step: {result['wall_ms_per_step']:.2f} ms ({result['clips_per_s']:,.1f} clips/s, "
          "outside the profiler)")
    print(f"profiled time per step: {result['total_ms_per_step']:.2f} ms (kernel self times; profiler overhead "
          "included on CPU)")
    print(f"{'category':<22} {'ms/step':>10} {'share':>7}")
    for name, ms in result["categories_ms_per_step"].items():
        print(f"{name:<22} {ms:>10.2f} {100 * result['categories_share'][name]:>6.1f}%")
    print(f"\ntop {len(result['top_kernels_ms_per_step'])} kernels (ms/step, category, name):")
    for kernel in result["top_kernels_ms_per_step"]:
        print(f"{kernel['ms_per_step']:>9.2f}  {kernel['category']:<20} {kernel['name'][:110]}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--impl", choices=("fast", "conv3d"), default="fast")
    parser.add_argument("--fp32", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", choices=COMPILE_MODES)
    parser.add_argument("--channel-multiple", type=int)
    parser.add_argument("--fused-epilogues", action="store_true")
    parser.add_argument("--inductor-options", type=parse_inductor_options, default=[])
    parser.add_argument("--mode", choices=("train", "inference"), default="train")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json")
    parser.add_argument("--trace")
    args = parser.parse_args(argv)
    defaults = dict(batch=2, frames=16, size=32) if args.quick else dict(batch=128, frames=48, size=56)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.channel_multiple is not None and args.channel_multiple < 1:
        parser.error(f"--channel-multiple must be >= 1, got {args.channel_multiple}")
    for flag, value in (("--channel-multiple", args.channel_multiple), ("--fused-epilogues", args.fused_epilogues)):
        if value not in (None, False) and args.impl != "fast":
            parser.error(f"{flag} applies to --impl fast only")
    if args.inductor_options and not args.compile:
        parser.error("--inductor-options applies to compiled code: add --compile MODE")
    if args.fused_epilogues and args.mode != "inference":
        parser.error("--fused-epilogues is an inference option: add --mode inference")
    return args


def main(argv=None):
    args = parse_args(argv)
    result = profile_encoder(args)
    print_breakdown(result)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
