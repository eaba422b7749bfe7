"""`fast_video_encoder_forward` (2D convolutions over frames) computes exactly `SkeletonClipVideoEncoder.forward`.

Outputs, input gradients, every parameter gradient and the updated BatchNorm buffers are compared against the
conv3d path run in float64 (the reference), in training and in eval mode, for the stride / inflation patterns of
SPEC §3 on small encoders, odd T/H/W included; and under bf16 autocast.
"""

import copy
from functools import partial

import pytest
import torch
import torch.utils.checkpoint
from torch import nn

from modeling_skeletonclip.configuration_skeletonclip import SkeletonClipVideoConfig
from modeling_skeletonclip.fast_slowonly import fast_video_encoder_forward
from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipVideoEncoder

SMALL = dict(in_channels=5, base_channels=8, stage_planes=[8, 8, 8], stage_blocks=[2, 2, 2], expansion=4)

# (spatial_strides, temporal_strides, inflate, extra config, input shapes (B, T, H, W): odd T, odd non-square H/W)
VARIANTS = {
    "default": ([2, 2, 2], [1, 1, 2], [0, 1, 1], {}, [(2, 9, 13, 11), (1, 8, 16, 16)]),
    "temporal_stride_stage1": ([2, 2, 2], [2, 1, 1], [0, 1, 1], {}, [(2, 7, 11, 9)]),
    "all_inflated_all_temporal": ([1, 2, 2], [2, 2, 2], [1, 1, 1], {}, [(1, 9, 9, 10)]),
    "no_inflation_no_stride": ([1, 1, 1], [1, 1, 1], [0, 0, 0], {}, [(2, 5, 7, 6)]),
    "inflate_stage1_stride3": ([3, 1, 2], [1, 3, 1], [1, 0, 1], {}, [(1, 7, 13, 12)]),
    "temporal_stem_fallback": ([2, 2, 2], [1, 1, 2], [0, 1, 1], {"stem_kernel": [3, 5, 5]}, [(1, 6, 9, 9)]),
}


def _relative_error(actual, expected):
    scale = expected.abs().max().clamp_min(1e-30)
    return ((actual.double() - expected.double()).abs().max() / scale).item()


def _build_encoder(variant, seed=0):
    spatial, temporal, inflate, extra, _ = VARIANTS[variant]
    # conv_impl="conv3d": the module's own forward is the reference the fast function is compared with.
    config = SkeletonClipVideoConfig(
        **SMALL, conv_impl="conv3d", spatial_strides=spatial, temporal_strides=temporal, inflate=inflate, **extra
    )
    torch.manual_seed(seed)
    encoder = SkeletonClipVideoEncoder(config)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.5)
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(3)
    return encoder


def _run(encoder, x, fast, grad_out, autocast=False, **fast_kwargs):
    """Forward + backward; returns (output, input grad, parameter grads, buffers) as detached copies.

    `fast_kwargs` go to `fast_video_encoder_forward` (`fast=True`)."""
    x = x.clone().requires_grad_(True)
    encoder.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = fast_video_encoder_forward(encoder, x, **fast_kwargs) if fast else encoder(x)
    out.backward(grad_out.to(out.dtype))
    grads = {name: p.grad.detach().clone() for name, p in encoder.named_parameters()}
    buffers = {name: b.detach().clone() for name, b in encoder.named_buffers()}
    return out.detach(), x.grad.detach(), grads, buffers


def _assert_exact(encoder, x, what, **fast_kwargs):
    """The fast path with `fast_kwargs` equals the conv3d path (float64: output, gradients, BN buffers)."""
    grad_out = torch.randn_like(copy.deepcopy(encoder).eval()(x))
    reference = _run(copy.deepcopy(encoder), x, False, grad_out)
    _compare(_run(copy.deepcopy(encoder), x, True, grad_out, **fast_kwargs), reference, 1e-10, what)


def _errors(result, ref_result, what):
    """Relative errors of every compared tensor; checks shapes, contiguity, keys and `num_batches_tracked`."""
    out, x_grad, grads, buffers = result
    ref_out, ref_x_grad, ref_grads, ref_buffers = ref_result
    assert out.shape == ref_out.shape, what
    assert out.is_contiguous(), what
    errors = {"output": _relative_error(out, ref_out), "input_grad": _relative_error(x_grad, ref_x_grad)}
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        errors[f"grad:{name}"] = _relative_error(grads[name], ref_grads[name])
    assert buffers.keys() == ref_buffers.keys()
    for name in ref_buffers:
        if name.endswith("num_batches_tracked"):
            assert torch.equal(buffers[name], ref_buffers[name]), f"{what}: {name}"
        else:
            errors[f"buffer:{name}"] = _relative_error(buffers[name], ref_buffers[name])
    return errors


def _compare(result, ref_result, tol, what, baseline_errors=None, grad_tol=None):
    """Every error <= tol (parameter gradients: <= grad_tol). With `baseline_errors` (the conv3d path at the same
    precision against the same reference) a tensor may also reach twice the conv3d path's own error: train-mode BN
    parameter gradients are sums with cancellation, where the conv3d path itself is at ~1.5e-5 in float32."""
    errors = _errors(result, ref_result, what)
    grad_tol = tol if grad_tol is None else grad_tol
    limits = {}
    for key in errors:
        limit = grad_tol if key.startswith("grad:") else tol
        limits[key] = max(limit, 2 * baseline_errors[key]) if baseline_errors else limit
    bad = {k: (v, limits[k]) for k, v in errors.items() if v > limits[k]}
    assert not bad, f"{what}: relative errors above the limits: {bad}"


# The default SlowOnly pattern and a stage-1 temporal stride run by default; the other patterns are slow on CPU
# (oneDNN builds new kernels for every shape) and run with `-m slow`.
FAST_VARIANTS = ("default", "temporal_stride_stage1")


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    "variant", [v if v in FAST_VARIANTS else pytest.param(v, marks=pytest.mark.slow) for v in VARIANTS]
)
def test_fast_forward_matches_conv3d_fp32(variant, train):
    encoder = _build_encoder(variant).train(train)
    for shape in VARIANTS[variant][4]:
        b, t, h, w = shape
        torch.manual_seed(1)
        x = torch.randn(b, encoder.config.in_channels, t, h, w)
        with torch.no_grad():
            grad_out = torch.randn_like(copy.deepcopy(encoder).eval().double()(x.double()))
        ref_result = _run(copy.deepcopy(encoder).double(), x.double(), False, grad_out)

        # The formulation is exact: float64 agrees to rounding.
        fast64 = _run(copy.deepcopy(encoder).double(), x.double(), True, grad_out)
        _compare(fast64, ref_result, 1e-10, f"{variant} {shape} float64")
        # float32, as used, against the float64 reference: output, input gradient and BN buffers <= 1e-5;
        # parameter gradients <= 2e-5 (the conv3d path in float32 is itself at up to ~1.5e-5 there), or <= 2x the
        # conv3d path's own float32 error where that is larger.
        fast32 = _run(copy.deepcopy(encoder), x, True, grad_out.float())
        conv3d32 = _run(copy.deepcopy(encoder), x, False, grad_out.float())
        baseline = _errors(conv3d32, ref_result, "conv3d float32")
        _compare(fast32, ref_result, 1e-5, f"{variant} {shape} float32", baseline, grad_tol=2e-5)


def _norm_error(actual, expected):
    return ((actual.double() - expected.double()).norm() / expected.double().norm().clamp_min(1e-30)).item()


def _bf16_autocast_runs(encoder, x, **fast_kwargs):
    """`(reference, fast, conv3d)`: the conv3d path in float64, the fast path (with `fast_kwargs`) and the conv3d
    path under bf16 autocast, all with one random output gradient (see `_run`)."""
    with torch.no_grad():
        grad_out = torch.randn_like(copy.deepcopy(encoder).eval().double()(x.double()))
    reference = _run(copy.deepcopy(encoder).double(), x.double(), False, grad_out)
    fast = _run(copy.deepcopy(encoder), x, True, grad_out.float(), autocast=True, **fast_kwargs)
    conv3d = _run(copy.deepcopy(encoder), x, False, grad_out.float(), autocast=True)
    return reference, fast, conv3d


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("variant", ["default", pytest.param("temporal_stride_stage1", marks=pytest.mark.slow)])
def test_fast_forward_bf16_autocast(variant, train):
    """bf16 autocast: the fast path is as accurate as the conv3d path under the same autocast (both against the
    float64 reference, norm-relative errors), and its eval output is within 1e-2 of the reference.

    Gradients in bf16 are far noisier than outputs on these tiny encoders (train-mode BN backward cancels most of
    a random output gradient over a few dozen values per channel), for both paths alike, so they are compared with
    the conv3d path's own error as the yardstick."""
    encoder = _build_encoder(variant).train(train)
    with torch.no_grad():  # residual branches smaller than the identity, as in a trained network
        for name, module in encoder.named_modules():
            if name.endswith("conv3.bn"):
                module.weight.uniform_(0.1, 0.3)
                module.bias.normal_(0.0, 0.1)
    torch.manual_seed(2)
    x = torch.randn(2, encoder.config.in_channels, 8, 12, 12)
    reference, fast, conv3d = _bf16_autocast_runs(encoder, x)
    assert fast[0].dtype == torch.bfloat16 and fast[0].shape == reference[0].shape

    def flat_grads(result):
        return torch.cat([result[2][name].flatten().double() for name in reference[2]])

    for what, index in (("output", 0), ("input_grad", 1), ("param_grads", None)):
        pick = (lambda r: r[index]) if index is not None else flat_grads
        fast_err, conv_err = _norm_error(pick(fast), pick(reference)), _norm_error(pick(conv3d), pick(reference))
        assert fast_err <= 1.25 * conv_err + 1e-2, (what, fast_err, conv_err)
    if not train:
        assert _norm_error(fast[0], reference[0]) <= 1e-2
    # The BN running statistics are updated from bf16 activations as in the conv3d path.
    for name in reference[3]:
        if not name.endswith("num_batches_tracked"):
            assert _norm_error(fast[3][name], reference[3][name]) <= 1.25 * _norm_error(conv3d[3][name], reference[3][name]) + 1e-2, name


def test_momentum_none_cumulative_average():
    encoder = _build_encoder("default").train()
    for module in encoder.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.momentum = None
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12, dtype=torch.float64)
    reference, fast = copy.deepcopy(encoder).double(), copy.deepcopy(encoder).double()
    for _ in range(2):
        ref_out = reference(x)
        fast_out = fast_video_encoder_forward(fast, x)
        assert _relative_error(fast_out, ref_out) < 1e-10
    for (name, a), (_, b) in zip(fast.named_buffers(), reference.named_buffers()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), name


def test_gradient_checkpointing_and_no_grad():
    encoder = _build_encoder("default").double().train()
    for module in encoder.modules():
        if hasattr(module, "gradient_checkpointing"):
            module.gradient_checkpointing = True
            module._gradient_checkpointing_func = partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    x = torch.randn(2, encoder.config.in_channels, 7, 12, 12, dtype=torch.float64)
    grad_out = torch.randn_like(copy.deepcopy(encoder).eval()(x))
    ref_result = _run(copy.deepcopy(encoder), x, False, grad_out)
    fast_result = _run(copy.deepcopy(encoder), x, True, grad_out)
    _compare(fast_result, ref_result, 1e-10, "gradient checkpointing")

    encoder.eval()
    with torch.no_grad():
        assert _relative_error(fast_video_encoder_forward(encoder, x), encoder(x)) < 1e-10
    # channels_last_3d input (no input copy) gives the same result.
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        assert _relative_error(fast_video_encoder_forward(encoder, x_cl), encoder(x)) < 1e-10


def test_same_parameters_and_rejects_bad_input():
    encoder = _build_encoder("default")
    keys = list(encoder.state_dict())
    fast_video_encoder_forward(encoder, torch.randn(1, 5, 4, 8, 8))
    assert list(encoder.state_dict()) == keys
    with pytest.raises(ValueError):
        fast_video_encoder_forward(encoder, torch.randn(5, 4, 8, 8))


@pytest.mark.parametrize("batch", [1, 3])
def test_frames_layout_is_channels_last_for_every_batch_size(batch):
    # A B == 1 clip once came out in NCHW strides (reshape merged B and T as a view), running the whole CPU
    # network in the slow layout at batch-1 inference.
    from modeling_skeletonclip.fast_slowonly import _frames_to_time, _video_to_frames

    video = torch.randn(batch, 5, 4, 6, 7)
    frames = _video_to_frames(video)
    assert frames.shape == (batch * 4, 5, 6, 7)
    assert frames.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(frames.reshape(batch, 4, 5, 6, 7).transpose(1, 2), video)
    # A channels_last_3d input is viewed, not copied; the time view of the frames shares their storage.
    video_cl = video.contiguous(memory_format=torch.channels_last_3d)
    assert _video_to_frames(video_cl).data_ptr() == video_cl.data_ptr()
    assert _frames_to_time(frames, batch).data_ptr() == frames.data_ptr()


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("variant", ["default", "temporal_stem_fallback"])
def test_zero_padded_input_channels_change_nothing(variant, train):
    # On CUDA the 5 (here) / 17 input channels are zero-padded to a multiple of 8 for cuDNN's tensor cores; the
    # stem weight gets matching zero channels, so output, input gradient, parameter gradients (shapes included)
    # and BN buffers equal the conv3d reference. Checked on CPU by asking for the padding explicitly.
    from modeling_skeletonclip.fast_slowonly import _video_to_frames

    encoder = _build_encoder(variant).double().train(train)
    torch.manual_seed(3)
    x = torch.randn(2, encoder.config.in_channels, 6, 10, 9, dtype=torch.float64)
    for multiple in (8, 16):
        _assert_exact(encoder, x, f"{variant} padded to a multiple of {multiple}", input_channel_multiple=multiple)
    frames = _video_to_frames(x, 8)
    assert frames.shape == (12, 8, 10, 9) and frames.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(frames[:, 5:], torch.zeros_like(frames[:, 5:]))
    assert torch.equal(frames[:, :5].reshape(2, 6, 5, 10, 9).transpose(1, 2), x)


@pytest.mark.parametrize("with_residual", [False, True], ids=["conv_relu", "conv_add_relu"])
def test_conv2d_bias_relu_op(with_residual):
    from modeling_skeletonclip.fast_slowonly import conv2d_bias_relu, conv2d_bias_relu_op

    torch.manual_seed(4)
    x = torch.randn(3, 6, 9, 7).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(5, 6, 3, 3), torch.randn(5)
    residual = torch.randn(3, 5, 5, 4).contiguous(memory_format=torch.channels_last) if with_residual else None
    out = conv2d_bias_relu(x, weight, bias, residual, [2, 2], [1, 1])
    expected = torch.nn.functional.conv2d(x, weight, bias, stride=2, padding=1)
    expected = (expected + residual if with_residual else expected).relu()
    assert out.shape == (3, 5, 5, 4) and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected)
    # Schema, fake (meta) implementation and dispatch agree with the real one (what torch.compile relies on).
    torch.library.opcheck(conv2d_bias_relu_op(), (x, weight, bias, residual, [2, 2], [1, 1]))


@pytest.mark.parametrize("variant", ["default", "temporal_stride_stage1", "temporal_stem_fallback"])
def test_fused_epilogues_inference_matches_conv3d(variant):
    # Eval mode, no gradients: every conv -> BN -> [+ residual] -> ReLU runs as one `conv2d_bias_relu` (the plain
    # ops on CPU, one cuDNN call on CUDA); the result equals the conv3d reference, in float64 and under bf16.
    encoder = _build_encoder(variant).double().eval()
    x = torch.randn(2, encoder.config.in_channels, 7, 12, 10, dtype=torch.float64)
    calls = []
    import modeling_skeletonclip.fast_slowonly as fast_module

    original = fast_module.conv2d_bias_relu

    def counting(*args):
        calls.append(args[3] is not None)
        return original(*args)

    with torch.no_grad():
        reference = encoder(x)
        fast_module.conv2d_bias_relu = counting
        try:
            fused = fast_video_encoder_forward(encoder, x, fused_epilogues=True)
        finally:
            fast_module.conv2d_bias_relu = original
        assert _relative_error(fused, reference) < 1e-10
        # SMALL has 6 bottlenecks: conv1, conv2 fused with ReLU, conv3 with residual + ReLU. The stem (cuDNN's fused
        # kernel is slower there) and the downsample convs (no ReLU) stay plain.
        assert calls.count(True) == 6 and calls.count(False) == 12
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused_bf16 = fast_video_encoder_forward(encoder.float(), x.float(), fused_epilogues=True)
            plain_bf16 = fast_video_encoder_forward(encoder.float(), x.float())
        assert fused_bf16.dtype == plain_bf16.dtype == torch.bfloat16
        assert _norm_error(fused_bf16, plain_bf16) < 1e-2 and _norm_error(fused_bf16, reference) < 2e-2


def test_fused_epilogues_only_without_gradients():
    # With gradients needed (eval-mode fine-tuning) or in training the fused op (which has no backward) is not
    # used: gradients equal the conv3d path's.
    encoder = _build_encoder("default").double()
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12, dtype=torch.float64)
    for train in (False, True):
        _assert_exact(encoder.train(train), x, f"fused_epilogues, train={train}", fused_epilogues=True)


def test_fused_epilogues_compile_in_one_graph():
    encoder = _build_encoder("default").eval()
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12)
    torch._dynamo.reset()
    compiled = torch.compile(lambda v: fast_video_encoder_forward(encoder, v, fused_epilogues=True), fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), encoder(x), rtol=1e-4, atol=1e-5)
        # Under autocast the op gets the autocast dtype (it is not autocast-aware itself), also when compiled.
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, plain = compiled(x), fast_video_encoder_forward(encoder, x)
        assert out.dtype == plain.dtype == torch.bfloat16 and _norm_error(out, plain) < 1e-2


def test_sync_batchnorm_modules_run_their_own_forward(monkeypatch):
    # `--sync_batchnorm` converts every BatchNorm3d to SyncBatchNorm; the fast path must go through its forward
    # (which all-reduces the statistics across processes), not a plain F.batch_norm that would silently skip it.
    encoder = _build_encoder("default").train()
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(encoder))
    calls = []
    original = nn.SyncBatchNorm.forward

    def recording(self, hidden):
        calls.append(hidden.shape)
        return original(self, hidden)

    monkeypatch.setattr(nn.SyncBatchNorm, "forward", recording)
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12)
    out = fast_video_encoder_forward(synced, x)
    bn_count = sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
    assert len(calls) == bn_count > 0
    # One process: SyncBatchNorm is plain BatchNorm, so the result equals the unconverted encoder's.
    torch.testing.assert_close(out, fast_video_encoder_forward(encoder, x), rtol=1e-5, atol=1e-5)
    for (name, a), b in zip(encoder.named_buffers(), synced.buffers()):
        torch.testing.assert_close(a, b, msg=name)


class _LowRankDeltaConv(nn.Module):
    """A LoRA-style wrapper: the frozen Conv3d plus a trainable low-rank 1x1x1 delta (not a Conv3d itself)."""

    def __init__(self, base: nn.Conv3d, rank: int = 2):
        super().__init__()
        self.base_layer = base
        self.down = nn.Parameter(torch.randn(rank, base.in_channels, 1, 1, 1) * 0.1)
        self.up = nn.Parameter(torch.randn(base.out_channels, rank, 1, 1, 1) * 0.1)

    def __getattr__(self, name):  # like peft's layers: the base layer's weight, kernel_size, ... show through
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base_layer, name)

    def forward(self, x):
        delta = torch.nn.functional.conv3d(torch.nn.functional.conv3d(x, self.down), self.up,
                                           stride=self.base_layer.stride)
        return self.base_layer(x) + delta


class _ShiftedBatchNorm3d(nn.BatchNorm3d):
    def forward(self, x):
        return super().forward(x) + 0.5


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_wrapped_convs_and_custom_batchnorms_run_their_own_forward(train):
    # A LoRA-wrapped conv (also the stem, whose input the fast path would otherwise pad) and a BatchNorm subclass
    # with its own forward: the fast path must not compute around them with the bare weights.
    encoder = _build_encoder("default").double()
    encoder.conv1.conv = _LowRankDeltaConv(encoder.conv1.conv).double()
    encoder.layer1[0].conv2.conv = _LowRankDeltaConv(encoder.layer1[0].conv2.conv).double()
    old_bn = encoder.layer2[0].conv1.bn
    encoder.layer2[0].conv1.bn = _ShiftedBatchNorm3d(old_bn.num_features).double()
    encoder.layer2[0].conv1.bn.load_state_dict(old_bn.state_dict())
    encoder.train(train)
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12, dtype=torch.float64)
    for multiple in (1, 8):
        _assert_exact(encoder, x, f"wrapped modules, train={train}, multiple {multiple}", input_channel_multiple=multiple)


def test_hooks_fire_with_the_conv3d_paths_tensors():
    # Feature-extraction and Grad-CAM hooks on inner modules (a conv, a block's final ReLU with a backward hook,
    # a whole stage, the stem's BN) fire under the fast path with the same tensors as under the conv3d path.
    encoder = _build_encoder("default").double().train()
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12, dtype=torch.float64)

    def hooked_run(model, fast):
        seen = {}
        targets = {"conv": model.layer1[1].conv2.conv, "relu": model.layer2[1].relu, "stage": model.layer3,
                   "stem_bn": model.conv1.bn}
        for name, module in targets.items():
            module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.detach().clone()))
        # Grad-CAM: the gradient at the ReLU's output (a tensor hook: the ReLU is in place) and a module backward hook.
        def keep_relu_grad(module, inputs, output):  # returns None: the output stays as it is
            output.register_hook(lambda g: seen.__setitem__("relu_grad", g.detach().clone()))

        model.layer2[1].relu.register_forward_hook(keep_relu_grad)
        model.layer1[1].conv2.conv.register_full_backward_hook(
            lambda m, gi, go: seen.__setitem__("conv_grad", go[0].detach().clone()))
        out = fast_video_encoder_forward(model, x, input_channel_multiple=8) if fast else model(x)
        out.square().sum().backward()
        return out.detach(), seen

    ref_out, ref_seen = hooked_run(copy.deepcopy(encoder), False)
    fast_out, fast_seen = hooked_run(copy.deepcopy(encoder), True)
    assert fast_seen.keys() == ref_seen.keys() == {"conv", "relu", "stage", "stem_bn", "relu_grad",
                                                        "conv_grad"}
    for name in ref_seen:
        assert fast_seen[name].shape == ref_seen[name].shape, name
        assert _relative_error(fast_seen[name], ref_seen[name]) < 1e-10, name
    assert _relative_error(fast_out, ref_out) < 1e-10


def test_fused_epilogues_default_follows_the_conv_dtype():
    # Default (None): fused on CUDA when the convolutions run in bf16/fp16 (faster there), else plain.
    # The dtype part is checked here on CPU tensors; the CUDA part is `heatmaps.is_cuda`.
    from modeling_skeletonclip.fast_slowonly import _runs_in_half_precision

    x = torch.zeros(1)
    assert not _runs_in_half_precision(x)
    assert _runs_in_half_precision(x.bfloat16()) and _runs_in_half_precision(x.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _runs_in_half_precision(x)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert not _runs_in_half_precision(x)


def test_fused_epilogues_are_off_by_default_on_cpu():
    import modeling_skeletonclip.fast_slowonly as fast_module

    encoder = _build_encoder("default").eval()
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12)
    calls = []
    original = fast_module.conv2d_bias_relu
    fast_module.conv2d_bias_relu = lambda *args: calls.append(1) or original(*args)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            fast_video_encoder_forward(encoder, x)
            assert calls == []
            fast_video_encoder_forward(encoder, x, fused_epilogues=True)
            assert len(calls) == 18  # 6 bottlenecks x 3 convs; not the stem, not the downsample convs
    finally:
        fast_module.conv2d_bias_relu = original


def test_exported_graphs_split_channels_that_are_not_a_multiple_of_the_block():
    # onnxruntime's blocked convolutions need channel counts that are multiples of 16; exported graphs compute the
    # stem over 17 keypoint channels as 16 + 1 (two convolutions, summed) with the same result.
    from modeling_skeletonclip.fast_slowonly import EXPORT_CHANNEL_BLOCK

    config = SkeletonClipVideoConfig(**{**SMALL, "in_channels": 17})
    torch.manual_seed(0)
    encoder = SkeletonClipVideoEncoder(config).eval()
    x = torch.rand(2, 17, 4, 12, 12)
    program = torch.export.export(encoder, (x,))
    convolutions = [node for node in program.graph.nodes if node.op == "call_function" and "conv" in str(node.target)]
    # The stages' convolutions take 8 or 32 channels; the others read the input.
    stem_inputs = sorted(node.args[1].meta["val"].shape[1] for node in convolutions
                         if node.args[1].meta["val"].shape[1] not in (8, 32))
    assert stem_inputs == [17 - EXPORT_CHANNEL_BLOCK, EXPORT_CHANNEL_BLOCK]
    with torch.no_grad():
        expected = encoder(x)
        torch.testing.assert_close(program.module()(x), expected, rtol=1e-5, atol=1e-5)
