#!/usr/bin/env python
"""Checks the fused conv-BN training path (`fast_video_encoder_forward(..., fused_training=True)`) on this machine.

1. Each op of `fused_conv_bn` on the convolution shapes of the full-size SlowOnly encoder (48x56x56): the cuDNN
   graph (where cudnn-frontend is installed and cuDNN supports it) against the op's torch reference, with the
   variant cuDNN took or why it took none.
   On CUDA also each op's time against the plain cuDNN convolution it replaces (same shapes, no fusion): where
   the fused graph costs about what the plain convolution does, the BatchNorm passes it absorbs are a pure gain.
2. The whole encoder's training step under bf16 autocast (CUDA) or fp32: output, parameter gradients and BN
   running statistics of the fused path against the plain fast path (norm-relative differences), and both steps'
   eager wall-clock time as a first hint (the benchmark's `fused conv-BN (training)` rows are the measurement).

Usage: python scripts/check_fused_training.py [--device cuda] [--batch 8] [--quick] [--ops-only] [--json PATH]
(`--ops-only`: step 1 alone; cuDNN builds every graph once per shape and batch size, and the encoder step of step 2
builds a graph for each of its ~20 convolution shapes, which the benchmark's fused rows then check and time anyway.)
Exits with 1 when a difference is above its limit (bf16 rounding level), so a device check fails loudly.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from unittest import mock

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_skeletonclip import _cudnn_conv_bn_graphs as cudnn_graphs  # noqa: E402
from modeling_skeletonclip import fused_conv_bn  # noqa: E402
from modeling_skeletonclip.configuration_skeletonclip import SkeletonClipVideoConfig  # noqa: E402
from modeling_skeletonclip.fast_slowonly import fast_video_encoder_forward  # noqa: E402
from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipVideoEncoder  # noqa: E402

# (name, input [N, C, H, W] per clip-frame count, weight [K, C, kh, kw], stride, padding, prologue) at 48x56x56;
# "frames" = the batch's clips x 48 (x 24 after the temporal stride), "clips" = the time view [B, C, T, H * W].
SHAPES = [
    ("stem 7x7, 24 -> 32", ("frames", 24, 56, 56), (32, 24, 7, 7), [1, 1], [3, 3], False),
    ("layer1.0.conv2 3x3/2, 32 -> 32", ("frames", 32, 56, 56), (32, 32, 3, 3), [2, 2], [1, 1], True),
    ("layer1.conv3 1x1, 32 -> 128", ("frames", 32, 28, 28), (128, 32, 1, 1), [1, 1], [0, 0], True),
    ("layer1.1.conv1 1x1, 128 -> 32", ("frames", 128, 28, 28), (32, 128, 1, 1), [1, 1], [0, 0], False),
    ("layer2.1.conv1 3x1x1, 256 -> 64", ("clips", 256, 48, 196), (64, 256, 3, 1), [1, 1], [1, 0], False),
    ("layer3.1.conv2 3x3, 128 -> 128", ("frames_half", 128, 7, 7), (128, 128, 3, 3), [1, 1], [1, 1], True),
    # `unfold_stem=True`: the stem's 7 horizontal taps of its 17 channels as 119 (padded: 120) input channels.
    ("stem unfolded 7x1, 120 -> 32", ("frames", 120, 56, 56), (32, 120, 7, 1), [1, 1], [3, 0], False),
]
LIMITS = {"y": 2e-2, "sum": 2e-2, "sum_sq": 2e-2, "dweight": 3e-2, "dz": 3e-2, "sum_dz_x": 3e-2, "sum_dz": 3e-2}


def relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    expected = expected.double()
    return ((actual.double() - expected).norm() / expected.norm().clamp_min(1e-30)).item()


def op_inputs(shape, batch, quick, device, dtype, generator):
    (kind, channels, height, width), (k, c, kh, kw), stride, padding, prologue = shape[1:]
    n = {"frames": batch * 48, "frames_half": batch * 24, "clips": batch}[kind]
    if quick:
        n, height, width = min(n, 4), min(height, 12), min(width, 12)
    x = torch.randn(n, channels, height, width, device=device, generator=generator).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(k, c, kh, kw, device=device, generator=generator) / (c * kh * kw) ** 0.5).to(dtype)
    scale = (torch.rand(channels, device=device, generator=generator) + 0.5) if prologue else None
    shift = torch.randn(channels, device=device, generator=generator) * 0.5 if prologue else None
    return x, weight, scale, shift, stride, padding


def check_ops(args, device, dtype):
    generator = torch.Generator(device=device).manual_seed(0)
    results = []
    for shape in SHAPES:
        x, weight, scale, shift, stride, padding = op_inputs(shape, args.batch, args.quick, device, dtype, generator)
        before = set(cudnn_graphs.GRAPH_STATUS)
        fused = run_ops(x, weight, scale, shift, stride, padding)
        with mock.patch.object(fused_conv_bn, "_on_cudnn", lambda tensor: False):
            reference = run_ops(x, weight, scale, shift, stride, padding)
        errors = {key: relative(fused[key], reference[key]) for key in reference}
        timings = time_ops(x, weight, scale, shift, stride, padding) if device.type == "cuda" else {}
        status = [f"{key[0]}: {cudnn_graphs.GRAPH_STATUS[key]}" for key in cudnn_graphs.GRAPH_STATUS
                  if key not in before]
        bad = {key: value for key, value in errors.items() if value > LIMITS[key]}
        results.append({"name": shape[0], "shape": list(x.shape), "errors": errors, "graphs": status, "ok": not bad,
                        "ms": timings})
        print(f"{shape[0]} {list(x.shape)}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
              + ("" if not bad else f"  ABOVE LIMITS {bad}"), flush=True)
        if timings:
            print("    ms (fused op / plain conv): " + ", ".join(
                f"{op} {fused_ms:.3f} / {plain_ms:.3f}" for op, (fused_ms, plain_ms) in timings.items()), flush=True)
        for line in status or ["no cuDNN graph tried (cudnn-frontend unavailable, CPU, or not bf16/fp16)"]:
            print(f"    {line}", flush=True)
    return results


def run_ops(x, weight, scale, shift, stride, padding):
    y, total, total_sq = fused_conv_bn._conv2d_genstats(x, scale, shift, weight, stride, padding)
    grad = torch.randn(y.shape, device=y.device, generator=torch.Generator(device=y.device).manual_seed(1))
    grad = grad.to(y.dtype).contiguous(memory_format=torch.channels_last)
    out = {"y": y, "sum": total, "sum_sq": total_sq,
           "dweight": fused_conv_bn._conv2d_sbr_wgrad(x, scale, shift, grad, weight, stride, padding)}
    if scale is not None:
        dz, sum_dz_x, sum_dz = fused_conv_bn._conv2d_dgrad_drelu(grad, weight, x, scale, shift, stride, padding)
        out.update(dz=dz, sum_dz_x=sum_dz_x, sum_dz=sum_dz)
    return out


def time_ops(x, weight, scale, shift, stride, padding):
    """Milliseconds of each fused op against the plain convolution it replaces (cuDNN via aten, same shapes)."""
    from torch.utils.benchmark import Timer

    def ms(function):
        return Timer("f()", globals={"f": function}).blocked_autorange(min_run_time=0.2).median * 1e3

    y = torch.nn.functional.conv2d(x, weight, None, stride, padding)
    grad = torch.randn_like(y).contiguous(memory_format=torch.channels_last)
    backward = torch.ops.aten.convolution_backward
    timings = {
        "fprop": (ms(lambda: fused_conv_bn._conv2d_genstats(x, scale, shift, weight, stride, padding)),
                  ms(lambda: torch.nn.functional.conv2d(x, weight, None, stride, padding))),
        "wgrad": (ms(lambda: fused_conv_bn._conv2d_sbr_wgrad(x, scale, shift, grad, weight, stride, padding)),
                  ms(lambda: backward(grad, x, weight, None, stride, padding, [1, 1], False, [0, 0], 1,
                                      [False, True, False]))),
    }
    if scale is not None:
        timings["dgrad"] = (
            ms(lambda: fused_conv_bn._conv2d_dgrad_drelu(grad, weight, x, scale, shift, stride, padding)),
            ms(lambda: backward(grad, x, weight, None, stride, padding, [1, 1], False, [0, 0], 1,
                                [True, False, False])))
    return timings


def train_step(encoder, x, fused, autocast):
    encoder.zero_grad(set_to_none=True)
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    with autocast:
        out = fast_video_encoder_forward(encoder, x, fused_training=fused)
    out.float().square().mean().backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return out.detach().float(), time.perf_counter() - start


def check_encoder(args, device):
    config = SkeletonClipVideoConfig(conv_impl="fast") if not args.quick else SkeletonClipVideoConfig(
        conv_impl="fast", base_channels=8, stage_planes=[8, 8, 8], stage_blocks=[1, 1, 1])
    torch.manual_seed(0)
    encoder = SkeletonClipVideoEncoder(config).to(device).train()
    with torch.no_grad():  # BN affine parameters away from their init, as after some training
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
    frames, size = (48, 56) if not args.quick else (8, 16)
    x = torch.rand(args.batch, config.in_channels, frames, size, size, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    results = {}
    for fused in (False, True, False, True):  # the second pair is timed after warm-up / graph building
        model = copy.deepcopy(encoder)
        out, seconds = train_step(model, x, fused, autocast)
        results[fused] = (model, out, seconds)
    (plain, plain_out, plain_s), (fused, fused_out, fused_s) = results[False], results[True]
    grads = [(p_f.grad, p_p.grad) for p_f, p_p in zip(fused.parameters(), plain.parameters())]
    report = {
        "output": relative(fused_out, plain_out),
        "param_grads": relative(torch.cat([f.flatten().float() for f, _ in grads]),
                                torch.cat([p.flatten().float() for _, p in grads])),
        "running_stats": relative(
            torch.cat([b.flatten().float() for n, b in fused.named_buffers() if "running" in n]),
            torch.cat([b.flatten().float() for n, b in plain.named_buffers() if "running" in n])),
        "plain_step_s": plain_s, "fused_step_s": fused_s,
    }
    limits = {"output": 2e-2, "param_grads": 5e-2, "running_stats": 2e-2}
    report["ok"] = all(report[key] <= limit for key, limit in limits.items())
    print(f"encoder train step, batch {args.batch}, {frames}x{size}x{size} ({'bf16 autocast' if x.is_cuda else 'fp32'}):"
          f" fused vs plain output {report['output']:.1e}, parameter gradients {report['param_grads']:.1e},"
          f" running statistics {report['running_stats']:.1e}; eager step {plain_s * 1e3:.1f} ms plain,"
          f" {fused_s * 1e3:.1f} ms fused" + ("" if report["ok"] else "  ABOVE LIMITS"), flush=True)
    return report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8, help="clips (the op shapes use 48 frames per clip)")
    parser.add_argument("--quick", action="store_true", help="small shapes and a reduced encoder (a smoke run)")
    parser.add_argument("--ops-only", action="store_true", help="check the ops on their shapes, not the encoder")
    parser.add_argument("--json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    version = cudnn_graphs.cudnn.backend_version_string() if cudnn_graphs.available() else None
    print(f"device {device}; cudnn-frontend {'available, cuDNN ' + version if version else 'not available'}",
          flush=True)
    ops = check_ops(args, device, dtype)
    encoder = check_encoder(args, device) if not args.ops_only else {"ok": True, "skipped": "--ops-only"}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": str(device), "cudnn": version, "ops": ops, "encoder": encoder}, handle, indent=2)
    ok = all(result["ok"] for result in ops) and encoder["ok"]
    print("OK" if ok else "FAILED: differences above their limits", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
