"""Training-mode convolution + BatchNorm with the BatchNorm passes inside the convolutions (issue 6, experimental).

In a training step the plain formulation touches every convolution output many times: the conv writes `y`, the
BatchNorm statistics read it, BN-apply + ReLU read it and write `z = relu(y * scale + shift)`, the next conv reads
`z`, and the backward reads `z` again for the weight gradient. NVIDIA's MLPerf ResNet-50 removes most of those
passes with cuDNN's fused convolution graphs, and so does this module:

* `conv2d_genstats(x, in_scale, in_shift, weight)`: `y = conv2d(relu(x * in_scale + in_shift), weight)` (the
  previous BatchNorm's apply + ReLU as the convolution's prologue, `z` never written) and the per-channel sum and
  sum of squares of `y` (its epilogue; no separate statistics pass). Without `in_scale` the input goes in as is.
* backward: the weight gradient recomputes `z` in its prologue (`conv2d_sbr_wgrad`); the data gradient applies the
  ReLU mask and reduces the two sums the BatchNorm backward needs in its epilogue (`conv2d_dgrad_drelu`).
* `batch_norm_scale_shift(bn, sum, sum_sq, count)`: the batch statistics as the per-channel affine map the next
  prologue applies (and the running-statistics update of `nn.BatchNorm3d`), in plain torch ops, so that autograd
  carries the gradient of the statistics back into the `sum` / `sum_sq` outputs of `conv2d_genstats`.

The three ops are torch custom ops (torch.compile keeps them whole). On CUDA they run cuDNN graphs
(`_cudnn_conv_bn_graphs`, cudnn-frontend) when the `cudnn` Python package is installed and cuDNN supports the
graph; otherwise, and on CPU, the same math in torch ops (the reference the tests compare against).
Off by default (`fast_video_encoder_forward(..., fused_training=True)` turns it on): not yet measured on a GPU.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from ._cudnn_conv_bn_graphs import available as _cudnn_available
from ._cudnn_conv_bn_graphs import conv2d_output_shape
from ._cudnn_conv_bn_graphs import conv_genstats as _cudnn_conv_genstats
from ._cudnn_conv_bn_graphs import dgrad_drelu as _cudnn_dgrad_drelu
from ._cudnn_conv_bn_graphs import sbr_wgrad as _cudnn_sbr_wgrad

__all__ = ["batch_norm_scale_shift", "conv2d_dgrad_drelu", "conv2d_genstats", "conv2d_sbr_wgrad"]


logger = logging.getLogger(__name__)
_WARNED_NO_CUDNN = []


def _on_cudnn(x: torch.Tensor) -> bool:
    if not x.is_cuda:
        return False
    if _cudnn_available():
        return True
    if not _WARNED_NO_CUDNN:
        _WARNED_NO_CUDNN.append(True)
        logger.warning("fused_training on CUDA without cudnn-frontend (`pip install skeletonclip[cudnn]`): the torch "
                       "reference ops run instead of cuDNN's fused graphs, slower than the plain path.")
    return False


def _wide(t: torch.Tensor) -> torch.Tensor:
    """`t` in the dtype the elementwise math runs in: fp32, or fp64 for fp64 tensors."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _pre_activation(x: torch.Tensor, in_scale: torch.Tensor, in_shift: torch.Tensor) -> torch.Tensor:
    """`x * in_scale + in_shift` per channel, in fp32 (fp64 for fp64)."""
    return _wide(x) * in_scale.view(1, -1, 1, 1) + in_shift.view(1, -1, 1, 1)


def _prologue(x: torch.Tensor, in_scale: torch.Tensor | None, in_shift: torch.Tensor | None) -> torch.Tensor:
    """`relu(x * in_scale + in_shift)` per channel (rounded to x's dtype), or x without a prologue."""
    if in_scale is None:
        return x
    return _pre_activation(x, in_scale, in_shift).relu_().to(x.dtype)


def _masked_sums(dz_masked: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`sum(dz_masked * x)` and `sum(dz_masked)` per channel, in fp32 (fp64 for fp64)."""
    dz = _wide(dz_masked)
    return (dz * _wide(x)).sum(dim=(0, 2, 3)), dz.sum(dim=(0, 2, 3))


# ----------------------------------------------------------------------------------------------------------------
# The three ops: reference implementations (torch ops) with the cuDNN graphs tried first on CUDA.
# ----------------------------------------------------------------------------------------------------------------


def _conv2d_genstats(
    x: torch.Tensor,
    in_scale: torch.Tensor | None,
    in_shift: torch.Tensor | None,
    weight: torch.Tensor,
    stride: list[int],
    padding: list[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`y = conv2d(prologue(x), weight)` channels_last `[N, K, H', W']`, and `y`'s per-channel sum and sum of
    squares `[K]` in fp32."""
    result = _cudnn_conv_genstats(x, in_scale, in_shift, weight, stride, padding) if _on_cudnn(x) else None
    if result is not None:
        return result
    y = F.conv2d(_prologue(x, in_scale, in_shift), weight, None, stride, padding)
    y = y.contiguous(memory_format=torch.channels_last)
    y32 = _wide(y)
    return y, y32.sum(dim=(0, 2, 3)), y32.square().sum(dim=(0, 2, 3))


def _conv2d_genstats_fake(x, in_scale, in_shift, weight, stride, padding):
    shape = conv2d_output_shape(x.shape, weight.shape, stride, padding)
    y = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    wide = torch.promote_types(x.dtype, torch.float32)
    return y, x.new_empty(shape[1], dtype=wide), x.new_empty(shape[1], dtype=wide)


def _conv2d_sbr_wgrad(
    x: torch.Tensor,
    in_scale: torch.Tensor | None,
    in_shift: torch.Tensor | None,
    grad: torch.Tensor,
    weight: torch.Tensor,
    stride: list[int],
    padding: list[int],
) -> torch.Tensor:
    """The weight gradient of `conv2d(prologue(x), weight)` for the output gradient `grad` (weight's dtype)."""
    result = _cudnn_sbr_wgrad(x, in_scale, in_shift, grad, weight, stride, padding) if _on_cudnn(x) else None
    if result is not None:
        return result
    z = _prologue(x, in_scale, in_shift)
    return torch.ops.aten.convolution_backward(
        grad, z, weight, None, stride, padding, [1, 1], False, [0, 0], 1, [False, True, False]
    )[1].contiguous()


def _conv2d_sbr_wgrad_fake(x, in_scale, in_shift, grad, weight, stride, padding):
    return torch.empty_like(weight)


def _conv2d_dgrad_drelu(
    grad: torch.Tensor,
    weight: torch.Tensor,
    x: torch.Tensor,
    in_scale: torch.Tensor,
    in_shift: torch.Tensor,
    stride: list[int],
    padding: list[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For `conv2d(relu(x * in_scale + in_shift), weight)`: the gradient reaching the ReLU's input,
    `dz_masked = dgrad(grad) * (x * in_scale + in_shift > 0)` (channels_last, x's dtype), and the two sums the
    gradients of `in_scale` / `in_shift` are made of: `sum(dz_masked * x)` and `sum(dz_masked)` per channel (fp32).
    """
    result = _cudnn_dgrad_drelu(grad, weight, x, in_scale, in_shift, stride, padding) if _on_cudnn(x) else None
    if result is not None:
        dz_masked, sum_dz_x, sum_dz = result
        if sum_dz is None:  # cuDNN took the graph without the reductions
            sum_dz_x, sum_dz = _masked_sums(dz_masked, x)
        return dz_masked, sum_dz_x, sum_dz
    dz = torch.ops.aten.convolution_backward(
        grad, x, weight, None, stride, padding, [1, 1], False, [0, 0], 1, [True, False, False]
    )[0]
    keep = _pre_activation(x, in_scale, in_shift) > 0
    dz_masked = (_wide(dz) * keep).to(x.dtype).contiguous(memory_format=torch.channels_last)
    return (dz_masked, *_masked_sums(dz_masked, x))


def _conv2d_dgrad_drelu_fake(grad, weight, x, in_scale, in_shift, stride, padding):
    channels = x.shape[1]
    dz = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    wide = torch.promote_types(x.dtype, torch.float32)
    return dz, x.new_empty(channels, dtype=wide), x.new_empty(channels, dtype=wide)


def _define(name, function, fake):
    """The custom op `skeletonclip::<name>` (reused if another copy of this file defined it in this process)."""
    if hasattr(torch.ops.skeletonclip, name):
        return getattr(torch.ops.skeletonclip, name)
    op = torch.library.custom_op(f"skeletonclip::{name}", function, mutates_args=())
    op.register_fake(fake)
    return op


conv2d_sbr_wgrad = _define("conv2d_sbr_wgrad", _conv2d_sbr_wgrad, _conv2d_sbr_wgrad_fake)
conv2d_dgrad_drelu = _define("conv2d_dgrad_drelu", _conv2d_dgrad_drelu, _conv2d_dgrad_drelu_fake)
_genstats_defined = hasattr(torch.ops.skeletonclip, "conv2d_genstats")
conv2d_genstats = _define("conv2d_genstats", _conv2d_genstats, _conv2d_genstats_fake)


# ----------------------------------------------------------------------------------------------------------------
# Autograd of conv2d_genstats
# ----------------------------------------------------------------------------------------------------------------


def _genstats_setup_context(ctx, inputs, output):
    x, in_scale, in_shift, weight, stride, padding = inputs
    y = output[0]
    ctx.save_for_backward(x, in_scale, in_shift, weight, y)
    ctx.stride, ctx.padding = stride, padding


def _genstats_backward(ctx, grad_y, grad_sum, grad_sum_sq):
    x, in_scale, in_shift, weight, y = ctx.saved_tensors
    # The statistics are functions of y: d/dy [sum(y)] = 1, d/dy [sum(y^2)] = 2y, per channel.
    grad = _wide(grad_y) if grad_y is not None else torch.zeros_like(_wide(y))
    if grad_sum is not None:
        grad = grad + grad_sum.view(1, -1, 1, 1)
    if grad_sum_sq is not None:
        grad = grad + 2.0 * _wide(y) * grad_sum_sq.view(1, -1, 1, 1)
    grad = grad.to(y.dtype).contiguous(memory_format=torch.channels_last)
    grad_x = grad_scale = grad_shift = grad_weight = None
    if ctx.needs_input_grad[3]:
        grad_weight = conv2d_sbr_wgrad(x, in_scale, in_shift, grad, weight, ctx.stride, ctx.padding)
    if in_scale is None:
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, ctx.stride, ctx.padding, [1, 1], False, [0, 0], 1, [True, False, False]
            )[0]
    elif any(ctx.needs_input_grad[:3]):
        dz_masked, sum_dz_x, sum_dz = conv2d_dgrad_drelu(grad, weight, x, in_scale, in_shift, ctx.stride, ctx.padding)
        grad_x = (_wide(dz_masked) * in_scale.view(1, -1, 1, 1)).to(x.dtype)
        grad_scale, grad_shift = sum_dz_x, sum_dz
    return grad_x, grad_scale, grad_shift, grad_weight, None, None


if not _genstats_defined:
    conv2d_genstats.register_autograd(_genstats_backward, setup_context=_genstats_setup_context)


# ----------------------------------------------------------------------------------------------------------------
# BatchNorm from the sums: the affine map of the next prologue, and nn.BatchNorm3d's running-stat bookkeeping.
# ----------------------------------------------------------------------------------------------------------------


def count_batch(bn: torch.nn.modules.batchnorm._BatchNorm) -> float:
    """Counts one training batch in `bn.num_batches_tracked` (if kept) and returns the running-average factor, as
    `nn.BatchNorm3d` does: `momentum`, or `1 / num_batches_tracked` for momentum None (cumulative average)."""
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    if bn.momentum is not None:
        return bn.momentum
    return 1.0 / float(bn.num_batches_tracked) if bn.num_batches_tracked is not None else 0.0


def batch_norm_scale_shift(
    bn: torch.nn.modules.batchnorm._BatchNorm, total: torch.Tensor, total_sq: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-mode BatchNorm as `bn(y) = y * scale + shift` per channel, from `sum(y)` and `sum(y^2)` over the
    `count` values of each channel; updates `bn`'s running statistics and `num_batches_tracked` like
    `nn.BatchNorm3d` (unbiased variance in `running_var`). Returns fp32 `(scale, shift)`, each `[C]`."""
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0.0)  # biased, as BatchNorm normalises with
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            factor = count_batch(bn)
            unbiased = var * (count / max(count - 1, 1))
            bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), factor)
            bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), factor)
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * _wide(bn.weight)
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + _wide(bn.bias)
    return scale, shift
