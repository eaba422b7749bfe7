#!/usr/bin/env bash
# On one GPU (~1-2 min): the default fast path in eval mode (fused conv-bias-ReLU epilogues in bf16 on CUDA) gives
# the conv3d path's output, cuDNN's fused kernels are really used (no logged fallback), fp32 stays plain, and
# torch.compile of the encoder agrees. Run: run(command="bash scripts/device/fused_default_check.sh", carry=[".whl"])
source "$(dirname "$0")/install_packages.sh"
timeout 170 python3 - <<'PY' 2>&1 | grep -v -i warn
import torch
import modeling_skeletonclip.fast_slowonly as fs
from modeling_skeletonclip.configuration_skeletonclip import SkeletonClipVideoConfig
from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipVideoEncoder

def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()

torch.manual_seed(0)
encoder = SkeletonClipVideoEncoder(SkeletonClipVideoConfig(conv_impl="conv3d")).cuda().eval()
for m in encoder.modules():  # non-trivial running statistics and affine parameters, so that folding matters
    if isinstance(m, torch.nn.BatchNorm3d):
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 2.0)
        m.weight.data.uniform_(0.5, 1.5); m.bias.data.uniform_(-0.2, 0.2)
x = torch.rand(8, 17, 48, 56, 56, device="cuda")
calls = []
original = fs.conv2d_bias_relu
fs.conv2d_bias_relu = lambda *a: calls.append(1) or original(*a)
with torch.no_grad():
    ref = encoder(x)  # conv3d fp32 (TF32 allowed as by default)
    fp32_default = fs.fast_video_encoder_forward(encoder, x)
    print("fp32 default: fused calls", len(calls), "rel vs conv3d", f"{rel(fp32_default, ref):.2e}")
    calls.clear()
    fp32_fused = fs.fast_video_encoder_forward(encoder, x, fused_epilogues=True)
    print("fp32 fused=True: calls", len(calls), "rel vs conv3d", f"{rel(fp32_fused, ref):.2e}",
          "fallback:", fs._CUDNN_FUSION_FAILED[:1])
    fs._CUDNN_FUSION_FAILED.clear()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        conv3d_bf16 = encoder(x)
        plain = fs.fast_video_encoder_forward(encoder, x, fused_epilogues=False)
        calls.clear()
        default = fs.fast_video_encoder_forward(encoder, x)
    print("bf16 default: fused calls", len(calls), "fallback:", fs._CUDNN_FUSION_FAILED[:1])
    print(f"bf16 rel: default vs plain {rel(default, plain):.2e}, default vs conv3d fp32 {rel(default, ref):.2e}, "
          f"plain vs conv3d fp32 {rel(plain, ref):.2e}, conv3d bf16 vs conv3d fp32 {rel(conv3d_bf16, ref):.2e}")
    fs.conv2d_bias_relu = original
    encoder.config.conv_impl = "fast"
    compiled = torch.compile(encoder)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = compiled(x)
    print(f"compiled encoder (conv_impl fast, bf16, eval): rel vs eager default {rel(out, default):.2e}, "
          f"vs conv3d fp32 {rel(out, ref):.2e}")
PY
