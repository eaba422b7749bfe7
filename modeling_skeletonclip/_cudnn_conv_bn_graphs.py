"""cuDNN fused graphs (cudnn-frontend's Python API) behind the ops of `fused_conv_bn` on CUDA.

Three graphs per convolution shape, the ones NVIDIA's MLPerf ResNet-50 is built from:
* fprop: `conv_fprop(relu(x * scale + shift))` with `genstats` (per-channel sum / sum of squares) on its output;
* wgrad: `conv_wgrad(relu(x * scale + shift), dy)` (the prologue recomputed, its output never stored);
* dgrad: `relu_backward(conv_dgrad(dy), x * scale + shift)` with the two per-channel sums of the BatchNorm
  backward as reductions in the same graph (or, where cuDNN does not take those, left to the caller).

Every graph is built once per shape and tried in a few variants (scale/shift and intermediates in fp32 or in the
I/O dtype; see `_variants`); a shape for which cuDNN supports none of them returns None, and the caller uses its
torch reference. `GRAPH_STATUS` records what each shape got, so that a device check can print which layers really
ran fused.
Requires bf16/fp16 channels-last tensors (other dtypes go to the reference) and the `cudnn` Python package
(`nvidia-cudnn-frontend`); without it `available()` is False.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import torch

logger = logging.getLogger(__name__)

try:  # optional dependency (`pip install skeletonclip[cudnn]`): only the GPU fused-training path uses it
    import cudnn
except Exception as error:  # not installed, or installed without a loadable libcudnn (its import dlopens it)
    logger.debug("cudnn-frontend unavailable: %s", error)
    cudnn = None

GRAPH_STATUS: dict[tuple, str] = {}  # graph key -> "cudnn (<variant>)" or "reference (<why>)"
_GRAPHS: dict[tuple, tuple | None] = {}
_HANDLES: dict[int, object] = {}
_HALF = (torch.bfloat16, torch.float16)


def conv2d_output_shape(x_shape, weight_shape, stride, padding) -> tuple[int, int, int, int]:
    """`[N, K, H', W']` of a conv2d of `[N, C, H, W]` with `[K, C, kh, kw]` (dilation 1)."""
    (n, _, height, width), (k, _, kh, kw) = x_shape, weight_shape
    return (n, k, (height + 2 * padding[0] - kh) // stride[0] + 1, (width + 2 * padding[1] - kw) // stride[1] + 1)


def available() -> bool:
    return cudnn is not None and torch.cuda.is_available()


def _handle(device: torch.device):
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _HANDLES:
        with torch.cuda.device(index):
            _HANDLES[index] = cudnn.create_handle()
    handle = _HANDLES[index]
    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream(device).cuda_stream)
    return handle


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _tensor(graph, name: str, t: torch.Tensor):
    return graph.tensor(name=name, dim=list(t.shape), stride=list(t.stride()), data_type=t.dtype)


def _declare_output(node, like: torch.Tensor):
    """Marks a graph node as an output laid out like the tensor that will receive it."""
    return node.set_output(True).set_data_type(like.dtype).set_dim(list(like.shape)).set_stride(list(like.stride()))


def _geometry(stride, padding) -> dict:
    return {"padding": list(padding), "stride": list(stride), "dilation": [1, 1]}


def _per_channel(graph, name: str, channels: int, dtype: torch.dtype):
    return graph.tensor(name=name, dim=[1, channels, 1, 1], stride=[channels, 1, channels, channels], data_type=dtype)


class Variant(NamedTuple):
    """How a graph declares its per-channel scale/shift and its intermediate (virtual) tensors."""

    name: str
    scale_dtype: torch.dtype
    intermediate_dtype: torch.dtype


def _variants(io_dtype: torch.dtype) -> list[Variant]:
    """Tried in order: all fp32 (most precise); io-dtype scale/shift with fp32 intermediates (as cudnn-frontend's
    scale-bias-ReLU wgrad sample); both in the I/O dtype (as its conv-genstats sample); fp32 scale/shift with
    io-dtype intermediates."""
    fp32 = torch.float32
    return [
        Variant("fp32 scale/shift, fp32 intermediates", fp32, fp32),
        Variant("io-dtype scale/shift, fp32 intermediates", io_dtype, fp32),
        Variant("io-dtype scale/shift, io-dtype intermediates", io_dtype, io_dtype),
        Variant("fp32 scale/shift, io-dtype intermediates", fp32, io_dtype),
    ]


def _data_type(dtype: torch.dtype):
    return {torch.bfloat16: cudnn.data_type.BFLOAT16, torch.float16: cudnn.data_type.HALF,
            torch.float32: cudnn.data_type.FLOAT}[dtype]


def _new_graph(io_dtype: torch.dtype, handle, variant: Variant):
    """A graph with bf16/fp16 I/O, fp32 math and the variant's intermediates."""
    return cudnn.pygraph(
        io_data_type=_data_type(io_dtype),
        intermediate_data_type=_data_type(variant.intermediate_dtype),
        compute_data_type=cudnn.data_type.FLOAT,
        handle=handle,
    )


def _finish(graph, handle) -> None:
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.check_support()
    graph.build_plans()


def _reason(error: Exception) -> str:
    """An exception's message on one line (cuDNN's span several), shortened."""
    return " ".join(str(error).split())[:200] or type(error).__name__


def _build(key: tuple, variants: list, handle):
    """The first of `variants` (`(Variant, builder)` pairs) cuDNN supports: `(graph, tensors, variant)`, or None
    (recorded in GRAPH_STATUS)."""
    if key in _GRAPHS:
        return _GRAPHS[key]
    errors = []
    start = time.perf_counter()  # building may compile kernels at run time: seconds per graph, once per shape
    for variant, builder in variants:
        name = variant.name
        graph = None
        try:
            graph, tensors = builder()
            _finish(graph, handle)
        except Exception as error:  # cudnnGraphNotSupportedError, or a RuntimeError of an unsupported layout
            errors.append(f"{name}: {_reason(error)}")
            continue
        _GRAPHS[key] = (graph, tensors, variant)
        GRAPH_STATUS[key] = f"cudnn ({name}; built in {time.perf_counter() - start:.2f} s)"
        return _GRAPHS[key]
    _GRAPHS[key] = None
    GRAPH_STATUS[key] = f"reference ({'; '.join(errors)}; tried for {time.perf_counter() - start:.2f} s)"
    logger.warning("cuDNN supports no fused graph for %s; using the torch reference: %s", key[:2], "; ".join(errors))
    return None


def _execute(key: tuple, built, device_buffers: dict, handle) -> bool:
    """Runs a built graph; False (and the shape goes to the torch reference from now on, recorded in GRAPH_STATUS)
    where cuDNN fails at execution, so that a graph that built but cannot run never stops a training run."""
    graph, tensors, _ = built
    try:
        workspace = torch.empty(graph.get_workspace_size(), device=next(iter(device_buffers.values())).device,
                                dtype=torch.uint8)
        graph.execute({tensors[name]: buffer for name, buffer in device_buffers.items()}, workspace, handle=handle)
    except Exception as error:  # cudnnGraphNotSupportedError / RuntimeError from the execution
        reason = _reason(error)
        _GRAPHS[key] = None
        GRAPH_STATUS[key] = f"reference (execution failed: {reason})"
        logger.warning("cuDNN failed to execute the fused graph for %s; using the torch reference: %s", key[:2], reason)
        return False
    return True


def _prologue(graph, x_node, scale_dtype: torch.dtype, channels: int, prologue: bool, relu: bool = True):
    """`relu(x * scale + shift)` nodes (or x itself; without `relu`, the pre-activation only).
    Returns (output node, extra input tensors)."""
    if not prologue:
        return x_node, {}
    scale = _per_channel(graph, "scale", channels, scale_dtype)
    shift = _per_channel(graph, "shift", channels, scale_dtype)
    pre = graph.bias(name="shift_add", input=graph.scale(name="scale_mul", input=x_node, scale=scale), bias=shift)
    return (graph.relu(name="relu", input=pre) if relu else pre), {"scale": scale, "shift": shift}


def _affine_buffers(in_scale, in_shift, dtype):
    channels = in_scale.shape[0]
    return {"scale": in_scale.to(dtype).reshape(1, channels, 1, 1), "shift": in_shift.to(dtype).reshape(1, channels, 1, 1)}


def _key(kind, x, weight, stride, padding, prologue):
    return (kind, tuple(x.shape), tuple(weight.shape), x.dtype, tuple(stride), tuple(padding), prologue, x.device)


def conv_genstats(x, in_scale, in_shift, weight, stride, padding):
    """`conv2d_genstats` as one cuDNN graph; None where unsupported (the caller then runs the reference)."""
    if x.dtype not in _HALF or weight.dtype != x.dtype:
        return None
    x, weight = _channels_last(x), _channels_last(weight)
    prologue = in_scale is not None
    handle = _handle(x.device)
    k, channels = weight.shape[:2]
    y = torch.empty(conv2d_output_shape(x.shape, weight.shape, stride, padding), dtype=x.dtype, device=x.device,
                    memory_format=torch.channels_last)

    def builder(variant):
        def build():
            graph = _new_graph(x.dtype, handle, variant)
            x_node, w_node = _tensor(graph, "x", x), _tensor(graph, "w", weight)
            image, extra = _prologue(graph, x_node, variant.scale_dtype, channels, prologue)
            y_node = _declare_output(
                graph.conv_fprop(name="fprop", image=image, weight=w_node, **_geometry(stride, padding)), y)
            total, total_sq = graph.genstats(name="genstats", input=y_node)
            for node in (total, total_sq):
                node.set_output(True).set_data_type(torch.float32)
            return graph, {"x": x_node, "w": w_node, "y": y_node, "sum": total, "sum_sq": total_sq, **extra}
        return build

    # Without a prologue only the intermediates differ: two variants.
    variants = [(v, builder(v)) for v in _variants(x.dtype) if prologue or v.scale_dtype == torch.float32]
    key = _key("fprop+genstats", x, weight, stride, padding, prologue)
    built = _build(key, variants, handle)
    if built is None:
        return None
    total = torch.zeros(1, k, 1, 1, dtype=torch.float32, device=x.device)
    total_sq = torch.zeros_like(total)
    buffers = {"x": x, "w": weight, "y": y, "sum": total, "sum_sq": total_sq}
    if prologue:
        buffers.update(_affine_buffers(in_scale, in_shift, built[2].scale_dtype))
    if not _execute(key, built, buffers, handle):
        return None
    return y, total.view(k), total_sq.view(k)


def sbr_wgrad(x, in_scale, in_shift, grad, weight, stride, padding):
    """`conv2d_sbr_wgrad` as one cuDNN graph (scale-bias-ReLU prologue); None where unsupported or no prologue."""
    if in_scale is None or x.dtype not in _HALF or grad.dtype != x.dtype:
        return None
    x, grad = _channels_last(x), _channels_last(grad)
    handle = _handle(x.device)
    channels = x.shape[1]
    dweight = torch.empty(weight.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)

    def builder(variant):
        def build():
            graph = _new_graph(x.dtype, handle, variant)
            x_node, dy_node = _tensor(graph, "x", x), _tensor(graph, "dy", grad)
            image, extra = _prologue(graph, x_node, variant.scale_dtype, channels, True)
            dw_node = _declare_output(
                graph.conv_wgrad(name="wgrad", image=image, loss=dy_node, **_geometry(stride, padding)), dweight)
            return graph, {"x": x_node, "dy": dy_node, "dw": dw_node, **extra}
        return build

    variants = [(v, builder(v)) for v in _variants(x.dtype)]
    key = _key("sbr-wgrad", x, weight, stride, padding, True)
    built = _build(key, variants, handle)
    if built is None:
        return None
    affine = _affine_buffers(in_scale, in_shift, built[2].scale_dtype)
    if not _execute(key, built, {"x": x, "dy": grad, "dw": dweight, **affine}, handle):
        return None
    return dweight.contiguous()


def dgrad_drelu(grad, weight, x, in_scale, in_shift, stride, padding):
    """`conv2d_dgrad_drelu` as one cuDNN graph: `(dz_masked, sum_dz_x, sum_dz)`, the sums None where cuDNN took
    the graph without them; None where unsupported."""
    if x.dtype not in _HALF or grad.dtype != x.dtype or weight.dtype != x.dtype:
        return None
    x, grad, weight = _channels_last(x), _channels_last(grad), _channels_last(weight)
    handle = _handle(x.device)
    channels = x.shape[1]
    dz = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)

    def builder(variant, with_sums):
        def build():
            graph = _new_graph(x.dtype, handle, variant)
            dy_node, w_node, x_node = _tensor(graph, "dy", grad), _tensor(graph, "w", weight), _tensor(graph, "x", x)
            dx_node = graph.conv_dgrad(name="dgrad", loss=dy_node, filter=w_node, **_geometry(stride, padding))
            dx_node.set_dim(list(x.shape)).set_stride(list(x.stride()))  # virtual: consumed by the ReLU backward
            pre, extra = _prologue(graph, x_node, variant.scale_dtype, channels, True, relu=False)
            dz_node = _declare_output(graph.relu_backward(name="drelu", loss=dx_node, input=pre), dz)
            tensors = {"dy": dy_node, "w": w_node, "x": x_node, "dz": dz_node, **extra}
            if with_sums:
                sum_dz_x = graph.reduction(name="sum_dz_x", input=graph.mul(name="dz_x", a=dz_node, b=x_node),
                                           mode=cudnn.reduction_mode.ADD)
                sum_dz = graph.reduction(name="sum_dz", input=dz_node, mode=cudnn.reduction_mode.ADD)
                for node in (sum_dz_x, sum_dz):
                    node.set_output(True).set_data_type(torch.float32).set_dim([1, channels, 1, 1])
                    node.set_stride([channels, 1, channels, channels])
                tensors.update(sum_dz_x=sum_dz_x, sum_dz=sum_dz)
            return graph, tensors
        return build

    variants = [
        (v._replace(name=f"{v.name}, {'sums in the graph' if with_sums else 'sums outside'}"), builder(v, with_sums))
        for with_sums in (True, False)
        for v in _variants(x.dtype)
    ]
    key = _key("dgrad+drelu", x, weight, stride, padding, True)
    built = _build(key, variants, handle)
    if built is None:
        return None
    affine = _affine_buffers(in_scale, in_shift, built[2].scale_dtype)
    buffers = {"dy": grad, "w": weight, "x": x, "dz": dz, **affine}
    with_sums = "sum_dz" in built[1]
    if with_sums:
        buffers["sum_dz_x"] = torch.zeros(1, channels, 1, 1, dtype=torch.float32, device=x.device)
        buffers["sum_dz"] = torch.zeros_like(buffers["sum_dz_x"])
    if not _execute(key, built, buffers, handle):
        return None
    if with_sums:
        return dz, buffers["sum_dz_x"].view(channels), buffers["sum_dz"].view(channels)
    return dz, None, None  # the caller reduces
