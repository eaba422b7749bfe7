"""A faster formulation of the SlowOnly video encoder (SPEC §3) with the very same parameters.

`fast_video_encoder_forward(encoder, heatmaps)` computes exactly `encoder.forward(heatmaps)` for a
`SkeletonClipVideoEncoder` (same parameters and buffers, same state-dict keys, the same BatchNorm running-stat
updates in training), but with 2D convolutions over the `B * T` frames instead of 3D convolutions:

* Every activation lives in ONE memory layout for the whole network: `[B, T, H, W, C]` (channels innermost).
  The same storage is viewed, without any copy, as
    - `[B * T, C, H, W]` in `torch.channels_last` for the spatial convolutions (kernel `1 x kh x kw`: a conv2d with
      `weight[:, :, 0]`), the max-pool and BatchNorm (BatchNorm3d over `[B, C, T, H, W]` normalises each channel
      over `B * T * H * W` values, exactly like BatchNorm2d over `[B * T, C, H, W]`);
    - `[B, C, T, H * W]` in `torch.channels_last` for the temporal `3 x 1 x 1` convolutions (a conv2d with kernel
      `(3, 1)` and padding `(1, 0)` over time; zero frames at the ends as in the 3D convolution).
  Only the temporal stride (stage 3) copies: it picks every other frame (`frames[:, ::2]`) before the spatially
  strided conv2d (and the downsample branch).
* Eval mode (BatchNorm with running statistics): BatchNorm is folded into the convolution weights on the fly
  (`w * gamma / sqrt(var + eps)`, bias `beta - mean * gamma / sqrt(var + eps)`); gradients still reach the conv
  weight and the BN affine parameters through the fold.
* Training mode: BatchNorm stays separate (`F.batch_norm` with the module's weight, bias, running stats, momentum
  and eps, `training=True`; `num_batches_tracked` is incremented like `nn.BatchNorm3d` does).
* ReLUs are in place; the residual add and the ReLU after it happen in place on the last BN output.
* Inference with fused epilogues (eval mode, no gradients; the default on CUDA in bf16/fp16): each convolution's
  bias (the folded BN), ReLU and residual add run inside the convolution (`conv2d_bias_relu`: one
  cuDNN call on CUDA, the plain ops elsewhere), saving the passes of a separate ReLU / add kernel over every
  activation; not the stem's (slower there, see `fast_video_encoder_forward`).
* Works under `torch.autocast` (bf16/fp16) and with `torch.compile`.
* Gradient checkpointing: honoured per bottleneck when the encoder's blocks were switched to it
  (`model.gradient_checkpointing_enable()`); as in the conv3d path (`SkeletonClipBatchNorm3d`), the recomputation
  in the backward pass does not update the BatchNorm running statistics a second time.

A conv or BatchNorm module with a forward of its own (a LoRA wrapper, `SyncBatchNorm` after `--sync_batchnorm`, a
subclass) runs that forward on the `[B, C, T, H, W]` view, so nothing it adds is lost; so does any module that
has forward/backward hooks (the block or stage holding it, for hooks on a ReLU or a block), so that feature
extraction and Grad-CAM hooks fire with the tensors of the conv3d path.

The fast path reads the parameters directly, so it only runs where they are there to read
(`fast_path_applies`): an encoder dispatched by accelerate (`device_map`, CPU/disk offloading: hooks that move
inputs and load weights just in time replace its modules' forwards) or with parameters on another device than the
input (the meta device of offloaded weights) runs the conv3d path, module by module, instead.

Convolutions outside the SlowOnly patterns (a stem with a temporal kernel, temporal padding without a temporal
kernel, groups/dilation) fall back to `F.conv3d` on a `channels_last_3d` view of the same storage, so any config
gives the same result as the conv3d path.

The result is returned as a contiguous `[B, 512, T', H', W']` tensor, like the conv3d path.
"""

from __future__ import annotations

import hashlib
import logging
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn


logger = logging.getLogger(__name__)

__all__ = [
    "SkeletonClipBatchNorm3d",
    "compute_dtype",
    "conv2d_bias_relu",
    "fast_path_applies",
    "fast_video_encoder_forward",
]


def compute_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype that convolutions on `device` run in: autocast's where autocast is on there, else `dtype`."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return dtype


def _triple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value, value)


# ----------------------------------------------------------------------------------------------------------------
# Layout: one storage [B, T, H, W, C]; views as frames [B*T, C, H, W] or time [B, C, T, H*W], both channels_last.
# ----------------------------------------------------------------------------------------------------------------


def _video_to_frames(video: torch.Tensor, channel_multiple: int = 1) -> torch.Tensor:
    """`[B, C, T, H, W]` -> `[B * T, C', H, W]` channels_last (one copy unless the input is channels_last_3d).

    With `channel_multiple > 1` the channels are zero-padded to `C'`, the next multiple (in the same copy).
    """
    b, c, t, h, w = video.shape
    channels_last = video.permute(0, 2, 3, 4, 1)  # [B, T, H, W, C]
    padded_c = -(-c // channel_multiple) * channel_multiple
    if padded_c != c:
        frames = channels_last.new_zeros(b, t, h, w, padded_c)
        frames[..., :c] = channels_last
    else:
        # `.contiguous()`, not `reshape`: for B == 1 `reshape` merges B and T as a view and keeps the NCHW strides,
        # which would run the whole network in the slow layout.
        frames = channels_last.contiguous()
    return frames.view(b * t, h, w, padded_c).permute(0, 3, 1, 2)


def _frames_to_video(frames: torch.Tensor, batch: int) -> torch.Tensor:
    """`[B * T, C, H, W]` channels_last -> `[B, C, T, H, W]` (a channels_last_3d view)."""
    n, c, h, w = frames.shape
    return frames.permute(0, 2, 3, 1).reshape(batch, n // batch, h, w, c).permute(0, 4, 1, 2, 3)


def _frames_to_time(frames: torch.Tensor, batch: int) -> torch.Tensor:
    """`[B * T, C, H, W]` channels_last -> `[B, C, T, H * W]` channels_last (a view of the same storage)."""
    n, c, h, w = frames.shape
    return frames.permute(0, 2, 3, 1).reshape(batch, n // batch, h * w, c).permute(0, 3, 1, 2)


def _time_to_frames(time_view: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`[B, C, T, H * W]` channels_last -> `[B * T, C, H, W]` channels_last (a view of the same storage)."""
    b, c, t, _ = time_view.shape
    return time_view.permute(0, 2, 3, 1).reshape(b * t, height, width, c).permute(0, 3, 1, 2)


def _subsample_frames(frames: torch.Tensor, batch: int, stride: int) -> torch.Tensor:
    """Every `stride`-th frame of each clip (frames 0, s, 2s, ...): a kernel-1 temporal stride, one small copy."""
    if stride == 1:
        return frames
    n, c, h, w = frames.shape
    picked = frames.permute(0, 2, 3, 1).reshape(batch, n // batch, h, w, c)[:, ::stride]
    return picked.reshape(-1, h, w, c).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------------------------------------------
# BatchNorm (exactly nn.BatchNorm3d's forward, including the running-stat bookkeeping) and eval-mode folding.
# ----------------------------------------------------------------------------------------------------------------


def _recomputing_for_backward() -> bool:
    """True while a forward runs inside the backward pass: activation checkpointing recomputing a block.

    (Compiled graphs apply buffer updates once whatever they recompute, so the check is skipped there.)
    """
    return not torch.compiler.is_compiling() and torch._C._current_graph_task_id() != -1


def count_batch(bn: nn.modules.batchnorm._BatchNorm) -> float:
    """Counts one training batch in `bn.num_batches_tracked` (if kept) and returns the running-average factor, as
    `nn.BatchNorm3d` does: `momentum`, or `1 / num_batches_tracked` for momentum None (cumulative average)."""
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    if bn.momentum is not None:
        return bn.momentum
    return 1.0 / float(bn.num_batches_tracked) if bn.num_batches_tracked is not None else 0.0


def batch_norm_forward(bn: nn.modules.batchnorm._BatchNorm, hidden: torch.Tensor) -> torch.Tensor:
    """`bn(hidden)` with `hidden` in any layout; mirrors `_BatchNorm.forward` (momentum None = cumulative average).

    One difference, on purpose: when activation checkpointing recomputes the forward in the backward pass, the
    batch statistics normalise as before but the running statistics and `num_batches_tracked` are left alone, so
    that a checkpointed step updates them once, like an ordinary step (plain BatchNorm updates them twice).
    """
    recomputing = bn.training and _recomputing_for_backward()
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None and not recomputing:
        factor = count_batch(bn)
    use_batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep_stats = not bn.training or bn.track_running_stats
    running_mean, running_var = (bn.running_mean, bn.running_var) if keep_stats else (None, None)
    if recomputing and running_mean is not None:
        # The same op as in the first forward (checkpointing checks that the same tensors are saved), updating
        # throw-away copies.
        running_mean, running_var = running_mean.clone(), running_var.clone()
    return F.batch_norm(
        hidden,
        running_mean,
        running_var,
        bn.weight,
        bn.bias,
        use_batch_stats,
        factor,
        bn.eps,
    )


class SkeletonClipBatchNorm3d(nn.BatchNorm3d):
    """`nn.BatchNorm3d` (same parameters, buffers and state-dict keys) whose running statistics are updated once per
    training step also under activation checkpointing: the recomputation in the backward pass normalises with the
    batch statistics again but leaves the running statistics alone (`batch_norm_forward`)."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(hidden_states)
        return batch_norm_forward(self, hidden_states)


def _own_hooks(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks or module._forward_pre_hooks or module._backward_hooks or module._backward_pre_hooks
    )


def _has_hooks(module: nn.Module) -> bool:
    """Whether the module or one of its submodules has forward/backward hooks (feature extraction, Grad-CAM):
    such a module runs its own forward so that the hooks fire with the tensors they expect."""
    return any(_own_hooks(m) for m in module.modules())


def _is_plain_conv(conv: nn.Module) -> bool:
    """A Conv3d whose forward is the stock one (also under `torch.nn.utils.parametrize`), so that its weight and
    settings say everything it computes; not a wrapper such as a LoRA layer, a subclass with its own forward, or
    a module with hooks."""
    return type(conv).forward is nn.Conv3d.forward and not _own_hooks(conv)


def _is_plain_bn(bn: nn.Module) -> bool:
    """A BatchNorm computing `batch_norm_forward`; not `SyncBatchNorm` (its forward syncs across processes), a
    subclass with its own forward, or a module with hooks."""
    return type(bn).forward in (nn.BatchNorm3d.forward, SkeletonClipBatchNorm3d.forward) and not _own_hooks(bn)


def _module_on_frames(module: nn.Module, frames: torch.Tensor, batch: int) -> torch.Tensor:
    """`module`'s own forward on the `[B, C, T, H, W]` view of the frames (no copy), back as frames."""
    return _video_to_frames(module(_frames_to_video(frames, batch)))


def _can_fold(bn: nn.modules.batchnorm._BatchNorm) -> bool:
    return not bn.training and bn.running_mean is not None and bn.running_var is not None


def _folded_weight_and_bias(conv: nn.Conv3d, bn: nn.modules.batchnorm._BatchNorm):
    """Eval-mode BN folded into the conv: `w * s`, `b = beta - mean * s` (+ `conv.bias * s`), `s = gamma / std`."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = bn.weight * scale
    bias = -bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    if bn.bias is not None:
        bias = bias + bn.bias
    weight = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
    return weight, bias


# ----------------------------------------------------------------------------------------------------------------
# Inference: convolution + bias (+ residual) + ReLU as one op (cuDNN's fused epilogue on CUDA).
# ----------------------------------------------------------------------------------------------------------------

_CUDNN_FUSION_FAILED = []  # the error of the first failed fused cuDNN call (then the plain ops are used)


def _conv2d_bias_relu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    residual: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
) -> torch.Tensor:
    """`relu(conv2d(x, weight, bias, stride, padding) [+ residual])`, channels_last in and out, no autograd.

    On CUDA this is one cuDNN call (`torch.cudnn_convolution_relu` / `torch.cudnn_convolution_add_relu`: bias,
    residual and ReLU in the convolution's epilogue); elsewhere, or if cuDNN finds no fused kernel for the
    shapes (logged once), the same ops one after another. A custom op, so that torch.compile keeps it whole.
    """
    if x.is_cuda and not _CUDNN_FUSION_FAILED:
        try:
            if residual is None:
                out = torch.cudnn_convolution_relu(x, weight, bias, stride, padding, [1, 1], 1)
            else:
                out = torch.cudnn_convolution_add_relu(x, weight, residual, 1.0, bias, stride, padding, [1, 1], 1)
            return out.contiguous(memory_format=torch.channels_last)
        except RuntimeError as error:
            _CUDNN_FUSION_FAILED.append(str(error))
            logger.warning("cuDNN has no fused conv-bias-ReLU kernel here (%s); using separate kernels.", error)
    out = F.conv2d(x, weight, bias, stride, padding)
    if residual is not None:
        out = out + residual
    return out.relu_().contiguous(memory_format=torch.channels_last)


def _conv2d_bias_relu_fake(x, weight, bias, residual, stride, padding):
    (n, _, height, width), (k, _, kh, kw) = x.shape, weight.shape
    shape = (n, k, (height + 2 * padding[0] - kh) // stride[0] + 1, (width + 2 * padding[1] - kw) // stride[1] + 1)
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


def _op_namespace() -> str:
    """`skeletonclip_<hash of this file>`: every version of this file (the installed package, the copy inside each
    checkpoint loaded with `trust_remote_code`) registers its own op, so each model runs its own code; identical
    copies share one."""
    with open(__file__, "rb") as source:
        return "skeletonclip_" + hashlib.sha256(source.read()).hexdigest()[:16]


_OP_NAMESPACE = _op_namespace()  # read once at import: torch.compile cannot trace file reads


_CONV2D_BIAS_RELU = []  # the custom op once registered


def conv2d_bias_relu_op():
    """`_conv2d_bias_relu` as a custom op (with a fake implementation, so that torch.compile keeps it whole),
    registered on first use. Registration cannot happen inside a torch.compile trace: on CUDA, where inference in
    bf16/fp16 uses the op by default, it is registered when this file is imported."""
    if not _CONV2D_BIAS_RELU:
        namespace = _OP_NAMESPACE
        if hasattr(getattr(torch.ops, namespace), "conv2d_bias_relu"):  # an identical copy registered it
            op = getattr(torch.ops, namespace).conv2d_bias_relu.default
        else:
            op = torch.library.custom_op(f"{namespace}::conv2d_bias_relu", _conv2d_bias_relu, mutates_args=())
            op.register_fake(_conv2d_bias_relu_fake)
            op = getattr(torch.ops, namespace).conv2d_bias_relu.default
        _CONV2D_BIAS_RELU.append(op)
    return _CONV2D_BIAS_RELU[0]


if torch.cuda.is_available():
    conv2d_bias_relu_op()


def conv2d_bias_relu(x, weight, bias, residual, stride: list[int], padding: list[int]) -> torch.Tensor:
    if not _CONV2D_BIAS_RELU and torch.compiler.is_compiling() and not x.is_cuda:
        # Traced before any eager call registered the op: off CUDA the op is these plain ops anyway.
        return _conv2d_bias_relu(x, weight, bias, residual, stride, padding)
    return conv2d_bias_relu_op()(x, weight, bias, residual, stride, padding)


def _fused_conv2d(x, weight, bias, residual, stride, padding):
    """`conv2d_bias_relu` in the dtype autocast would run the convolution in (the custom op is not autocast)."""
    dtype = compute_dtype(x.device, x.dtype)
    residual = residual.to(dtype) if residual is not None else None
    return conv2d_bias_relu(x.to(dtype), weight.to(dtype), bias.to(dtype), residual, list(stride), list(padding))


# ----------------------------------------------------------------------------------------------------------------
# Convolutions of the Conv3d modules as conv2d over frames (or over time), with a conv3d fallback.
# ----------------------------------------------------------------------------------------------------------------


def _conv_kind(conv: nn.Module) -> str | None:
    """How the fast path runs a Conv3d's pattern: "spatial" (1 x kh x kw: a conv2d over frames), "temporal"
    (kt x 1 x 1: a conv2d with kernel (kt, 1) over time) or None (anything else: conv3d)."""
    if conv.groups != 1 or _triple(conv.dilation) != (1, 1, 1) or conv.padding_mode != "zeros":
        return None
    if isinstance(conv.padding, str):
        return None
    (kt, kh, kw), (_, sh, sw), (pt, ph, pw) = _triple(conv.kernel_size), _triple(conv.stride), _triple(conv.padding)
    if kt == 1 and pt == 0:
        return "spatial"
    if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
        return "temporal"
    return None


def _weight_for(frames: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`weight` with zero input channels added where the frames carry zero padding channels (the stem's input, see
    `fast_video_encoder_forward`), so that the result is unchanged."""
    extra_channels = frames.shape[1] - weight.shape[1]
    if extra_channels > 0:
        weight = F.pad(weight, (0, 0, 0, 0, 0, 0, 0, extra_channels))  # [C_out, C_in + extra, kt, kh, kw]
    return weight


# onnxruntime's CPU convolutions run their blocked (NCHWc) kernels only on inputs whose channels are a multiple of
# the block (8 with AVX2, 16 with AVX-512); other counts, such as the stem's 17 keypoint channels, take a slower
# im2col path. Exported graphs split such an input into a multiple of 16 channels and the rest (docs/benchmarks.md).
EXPORT_CHANNEL_BLOCK = 16


def _spatial_conv2d(frames, weight2d, bias, stride, padding) -> torch.Tensor:
    """`F.conv2d`; while exporting, over the channels in two parts when they are not a multiple of the block."""
    channels = frames.shape[1]
    blocked = channels // EXPORT_CHANNEL_BLOCK * EXPORT_CHANNEL_BLOCK
    if 0 < blocked < channels and torch.compiler.is_exporting():
        out = F.conv2d(frames[:, :blocked], weight2d[:, :blocked], bias, stride=stride, padding=padding)
        return out + F.conv2d(frames[:, blocked:], weight2d[:, blocked:], None, stride=stride, padding=padding)
    return F.conv2d(frames, weight2d, bias, stride=stride, padding=padding)


def _conv(conv: nn.Conv3d, frames: torch.Tensor, batch: int, weight: torch.Tensor, bias, fuse=False, residual=None):
    """Applies `conv` (with `weight`/`bias` replacing its own, e.g. BN-folded) to frames `[B * T, C, H, W]`.

    `fuse=True` asks for `relu(conv + bias [+ residual])` as one op (inference only; `bias` must be given); the
    caller applies ReLU and residual itself when it gets `fused=False` back (`residual` is only read when fusing).
    Returns `(frames [B * T', C', H', W'] channels_last, fused)`.
    """
    weight = _weight_for(frames, weight)
    (st, sh, sw), kind = _triple(conv.stride), _conv_kind(conv)
    if kind == "spatial":
        _, ph, pw = _triple(conv.padding)
        frames, weight2d = _subsample_frames(frames, batch, st), weight[:, :, 0]
        if fuse:
            return _fused_conv2d(frames, weight2d, bias, residual, (sh, sw), (ph, pw)), True
        return _spatial_conv2d(frames, weight2d, bias, (sh, sw), (ph, pw)), False
    if kind == "temporal":
        pt = _triple(conv.padding)[0]
        height, width = frames.shape[-2:]
        time_view = _frames_to_time(frames, batch)  # zero frames at the ends, as the 3D convolution pads
        if fuse:
            residual = _frames_to_time(residual, batch) if residual is not None else None
            out = _fused_conv2d(time_view, weight[..., 0], bias, residual, (st, 1), (pt, 0))
        else:
            out = F.conv2d(time_view, weight[..., 0], bias, stride=(st, 1), padding=(pt, 0))
        return _time_to_frames(out, height, width), fuse
    # Anything else: conv3d on the channels_last_3d view of the same storage.
    return _video_to_frames(conv._conv_forward(_frames_to_video(frames, batch), weight, bias)), False


def _conv_bn(module, frames: torch.Tensor, batch: int, relu: bool, fused: bool = False, residual=None):
    """`SkeletonClipConvModule` (conv -> BN -> [+ residual] -> optional in-place ReLU) on frames.

    `fused`: put bias, residual and ReLU into the convolution when BN can be folded and no gradient is needed.
    A conv or BN that is not the plain module (a LoRA wrapper, SyncBatchNorm, ...) runs its own forward on the
    `[B, C, T, H, W]` view, so that whatever it adds is kept.
    """
    conv, bn = module.conv, module.bn
    plain_conv, plain_bn = _is_plain_conv(conv), _is_plain_bn(bn)
    if plain_conv and plain_bn and _can_fold(bn):
        weight, bias = _folded_weight_and_bias(conv, bn)
        fuse = fused and relu and not torch.is_grad_enabled()
        out, done = _conv(conv, frames, batch, weight, bias, fuse, residual)
        if done:
            return out
    else:
        if plain_conv:
            out = _conv(conv, frames, batch, conv.weight, conv.bias)[0]
        else:
            out = _module_on_frames(conv, frames, batch)
        out = batch_norm_forward(bn, out) if plain_bn else _module_on_frames(bn, out, batch)
    if residual is not None:
        out = out.add_(residual)  # in place on the last conv/BN output (its backward does not need it)
    return out.relu_() if relu else out


def _has_relu(module) -> bool:
    return isinstance(getattr(module, "act", None), nn.ReLU)


def _bottleneck(block, frames: torch.Tensor, batch: int, fused: bool = False) -> torch.Tensor:
    """`SkeletonClipBottleneck.forward` on frames."""
    identity = frames
    if block.downsample is not None:
        identity = _conv_bn(block.downsample, frames, batch, _has_relu(block.downsample), fused)
    out = _conv_bn(block.conv1, frames, batch, _has_relu(block.conv1), fused)
    out = _conv_bn(block.conv2, out, batch, _has_relu(block.conv2), fused)
    if _has_relu(block.conv3):  # not SlowOnly's layout: ReLU before the residual add
        out = _conv_bn(block.conv3, out, batch, True, fused)
        return out.add_(identity).relu_()
    # Residual add + ReLU after conv3's BN (in its epilogue when fused).
    return _conv_bn(block.conv3, out, batch, True, fused, residual=identity)


def _run_block(block, frames: torch.Tensor, batch: int, fused: bool = False) -> torch.Tensor:
    if _has_hooks(block):  # e.g. Grad-CAM on `layer3[-1].relu`: the block's own forward fires them
        return _module_on_frames(block, frames, batch)
    if getattr(block, "gradient_checkpointing", False) and block.training and torch.is_grad_enabled():
        return block._gradient_checkpointing_func(partial(_bottleneck, block, batch=batch), frames)
    return _bottleneck(block, frames, batch, fused)


def _max_pool(pool: nn.MaxPool3d, frames: torch.Tensor, batch: int) -> torch.Tensor:
    kernel, stride, padding = _triple(pool.kernel_size), _triple(pool.stride or pool.kernel_size), _triple(pool.padding)
    dilation = _triple(pool.dilation)
    plain = type(pool).forward is nn.MaxPool3d.forward and not _own_hooks(pool)
    if plain and kernel[0] == 1 and stride[0] == 1 and padding[0] == 0 and not pool.return_indices:
        return F.max_pool2d(frames, kernel[1:], stride[1:], padding[1:], dilation[1:], pool.ceil_mode)
    return _module_on_frames(pool, frames, batch)


# ----------------------------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------------------------


def fast_path_applies(encoder: nn.Module, heatmaps: torch.Tensor) -> bool:
    """Whether `fast_video_encoder_forward` can run `encoder` on `heatmaps`: no module of the encoder carries an
    accelerate hook (`_hf_hook`: `device_map` dispatch, CPU/disk offloading, whose weights arrive only when the
    module's own forward runs) and every parameter and buffer lives on the input's device (not on the meta device
    of offloaded weights, not on another device of a split). Otherwise the conv3d path runs the modules' forwards.
    """
    device = heatmaps.device
    for module in encoder.modules():
        if getattr(module, "_hf_hook", None) is not None:
            return False
    for tensor in encoder.parameters():
        if tensor.device != device:
            return False
    for tensor in encoder.buffers():
        if tensor.device != device:
            return False
    return True


def _runs_in_half_precision(tensor: torch.Tensor) -> bool:
    """Whether convolutions on `tensor` run in bf16/fp16 (a half input, or autocast to a half dtype)."""
    return compute_dtype(tensor.device, tensor.dtype) in (torch.bfloat16, torch.float16)


def fast_video_encoder_forward(
    encoder: nn.Module,
    heatmaps: torch.Tensor,
    input_channel_multiple: int | None = None,
    fused_epilogues: bool | None = None,
    output_hidden_states: bool = False,
):
    """`encoder.forward(heatmaps)` of a `SkeletonClipVideoEncoder`, computed with 2D convolutions over frames.

    Args:
        encoder: the `SkeletonClipVideoEncoder`; only its modules' parameters and buffers are read (and, in training,
            its BatchNorm running statistics updated exactly as the conv3d path does).
        heatmaps: `[B, C, T, H, W]` (any memory format; channels_last_3d avoids the one input copy).
        input_channel_multiple: zero-pad the input channels (and the stem's weight) to a multiple of this.
            Default: 8 on CUDA, where cuDNN's tensor-core kernels need 16-byte aligned channels-last rows (17
            keypoint channels are not), else 1 (no padding). The result does not depend on it.
        fused_epilogues: in eval mode without gradients, run each convolution with its folded BN bias, residual
            add and ReLU as one op (`conv2d_bias_relu`; cuDNN's fused kernels on CUDA); ignored in training and
            when gradients are needed. Default: on for CUDA in bf16/fp16 (autocast or half inputs), where it is
            faster (docs/benchmarks.md); off elsewhere (on CPU the op is the plain ops anyway; fp32 on CUDA is not
            measured).
        output_hidden_states: also return the output of the stem (after the max-pool) and of every stage.

    Returns:
        `[B, 512, T', H', W']` contiguous, equal to `encoder(heatmaps)` up to floating-point rounding; with
        `output_hidden_states`, `(that, hidden_states)`: `[B, C_i, T_i, H_i, W_i]` per stage, the stem's first
        (channels_last_3d views, no copies).
    """
    if heatmaps.dim() != 5:
        raise ValueError(f"`heatmaps` must be [B, C, T, H, W], got shape {list(heatmaps.shape)}.")
    batch = heatmaps.shape[0]
    if fused_epilogues is None:
        fused_epilogues = heatmaps.is_cuda and _runs_in_half_precision(heatmaps)
    if input_channel_multiple is None:
        input_channel_multiple = 8 if heatmaps.is_cuda else 1
    stem = encoder.conv1
    if not _is_plain_conv(stem.conv) or _has_hooks(stem):
        input_channel_multiple = 1  # a wrapped or hooked stem gets the channels it was built for
    frames = _video_to_frames(heatmaps, input_channel_multiple)  # [B * T, C', H, W]
    if _has_hooks(stem):
        frames = _module_on_frames(stem, frames, batch)
    else:
        # The stem is never fused: for its 7x7 kernel over 24 (padded) channels cuDNN's fused kernel is slower than
        # the plain one (docs/benchmarks.md); its bias + ReLU cost little next to the max-pool that reads its output
        # anyway (and torch.compile fuses them into it).
        frames = _conv_bn(stem, frames, batch, _has_relu(stem))
    frames = _max_pool(encoder.maxpool, frames, batch)
    hidden_states = [frames]
    for i in range(encoder.num_stages):
        layer = getattr(encoder, f"layer{i + 1}")
        if _own_hooks(layer):
            frames = _module_on_frames(layer, frames, batch)  # hooks on the stage itself
        else:
            for block in layer:
                frames = _run_block(block, frames, batch, fused_epilogues)
        hidden_states.append(frames)
    out = _frames_to_video(frames, batch).contiguous()
    if output_hidden_states:
        # Nothing later writes into a stage's output in place (residual adds go into the new conv output).
        return out, tuple(_frames_to_video(states, batch) for states in hidden_states[:-1]) + (out,)
    return out
