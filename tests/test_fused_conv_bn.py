"""Training with the BatchNorm passes inside the convolutions (`fused_conv_bn`, `fused_training=True`).

The ops' own gradients are checked numerically (gradcheck, float64); the fused encoder against the conv3d path in
float64 (output, input and parameter gradients, BN running statistics, `num_batches_tracked`), under bf16
autocast (as accurate as the conv3d path under the same autocast), and where it must step aside (hooks,
checkpointing, eval, no gradients). On CPU the ops run their torch reference implementations; the cuDNN graphs
behind them on CUDA are checked on a GPU by `scripts/device/fused_training_check.sh`.
"""

import copy
import re
from functools import partial

import pytest
import torch
import torch.utils.checkpoint
from torch import nn

import modeling_skeletonclip.fast_slowonly as fast_slowonly
from modeling_skeletonclip.fast_slowonly import fast_video_encoder_forward
from modeling_skeletonclip.fused_conv_bn import batch_norm_scale_shift, conv2d_genstats
from test_fast_slowonly import VARIANTS, _bf16_autocast_runs, _build_encoder, _compare, _norm_error, _run


@pytest.mark.parametrize("prologue", [True, False], ids=["prologue", "no_prologue"])
@pytest.mark.parametrize("stride, padding, kernel", [([1, 1], [0, 0], 1), ([2, 2], [1, 1], 3), ([2, 1], [1, 0], 3)])
def test_conv2d_genstats_gradients_are_the_numerical_ones(prologue, stride, padding, kernel):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(4, 3, kernel, kernel if stride[1] == 2 else 1, dtype=torch.float64)
    scale = torch.rand(3, dtype=torch.float64) + 0.5 if prologue else None
    shift = torch.randn(3, dtype=torch.float64) if prologue else None
    inputs = [t.requires_grad_() if t is not None else None for t in (x, scale, shift, weight)]

    def function(x, scale, shift, weight):
        y, total, total_sq = conv2d_genstats(x, scale, shift, weight, stride, padding)
        # Weighted so that each output's gradient differs (a plain sum would hide a wrong factor).
        return (y * torch.linspace(0.5, 1.5, y.numel(), dtype=y.dtype).view_as(y)).sum(), total, total_sq

    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-6)


def test_conv2d_genstats_forward_is_conv_and_statistics():
    torch.manual_seed(1)
    x = torch.randn(3, 4, 9, 8, dtype=torch.float64)
    weight, scale, shift = torch.randn(5, 4, 3, 3, dtype=torch.float64), torch.rand(4) + 0.5, torch.randn(4)
    y, total, total_sq = conv2d_genstats(x, scale.double(), shift.double(), weight, [2, 2], [1, 1])
    expected = torch.nn.functional.conv2d((x * scale.double().view(1, -1, 1, 1) + shift.double().view(1, -1, 1, 1))
                                          .relu(), weight, stride=2, padding=1)
    torch.testing.assert_close(y, expected)
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(total, expected.sum(dim=(0, 2, 3)))
    torch.testing.assert_close(total_sq, expected.square().sum(dim=(0, 2, 3)))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_scale_shift_is_training_batch_norm(momentum):
    torch.manual_seed(2)
    y = torch.randn(4, 6, 5, 7, dtype=torch.float64) * 3 + 1
    bn, reference = nn.BatchNorm2d(6, momentum=momentum).double(), nn.BatchNorm2d(6, momentum=momentum).double()
    for module in (bn, reference):
        module.weight.data = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
        module.bias.data = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)
    for _ in range(2):
        scale, shift = batch_norm_scale_shift(bn, y.sum(dim=(0, 2, 3)), y.square().sum(dim=(0, 2, 3)), y.numel() // 6)
        expected = reference(y)
        torch.testing.assert_close(y * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), expected)
    for name, buffer in reference.named_buffers():
        torch.testing.assert_close(dict(bn.named_buffers())[name], buffer, rtol=1e-12, atol=0, msg=name)


# The default SlowOnly pattern and a stage-1 temporal stride by default; the other patterns with `-m slow`.
@pytest.mark.parametrize(
    "variant",
    [v if v in ("default", "temporal_stride_stage1") else pytest.param(v, marks=pytest.mark.slow) for v in VARIANTS],
)
def test_fused_training_matches_conv3d_float64(variant):
    encoder = _build_encoder(variant).train()
    for shape in VARIANTS[variant][4]:
        b, t, h, w = shape
        torch.manual_seed(1)
        x = torch.randn(b, encoder.config.in_channels, t, h, w, dtype=torch.float64)
        with torch.no_grad():
            grad_out = torch.randn_like(copy.deepcopy(encoder).eval().double()(x))
        reference = _run(copy.deepcopy(encoder).double(), x, False, grad_out)
        fused = _run(copy.deepcopy(encoder).double(), x, True, grad_out, fused_training=True)
        _compare(fused, reference, 1e-10, f"{variant} {shape} fused training, float64")
        # With the stem's horizontal taps unfolded into its (padded) input channels, the stem's genstats conv too.
        fused = _run(copy.deepcopy(encoder).double(), x, True, grad_out, fused_training=True, unfold_stem=True,
                     input_channel_multiple=8)
        _compare(fused, reference, 1e-10, f"{variant} {shape} fused training, unfolded stem, float64")


def test_fused_training_bf16_autocast_is_as_accurate_as_conv3d():
    encoder = _build_encoder("default").train()
    torch.manual_seed(2)
    x = torch.randn(2, encoder.config.in_channels, 8, 12, 12)
    reference, fused, conv3d = _bf16_autocast_runs(encoder, x, fused_training=True)
    assert fused[0].dtype == torch.bfloat16

    def flat_grads(result):
        return torch.cat([result[2][name].flatten().double() for name in reference[2]])

    for what, pick in (("output", lambda r: r[0]), ("input_grad", lambda r: r[1]), ("param_grads", flat_grads)):
        fused_err, conv_err = _norm_error(pick(fused), pick(reference)), _norm_error(pick(conv3d), pick(reference))
        assert fused_err <= 1.25 * conv_err + 1e-2, (what, fused_err, conv_err)
    for name in reference[3]:
        if name.endswith("num_batches_tracked"):
            assert torch.equal(fused[3][name], reference[3][name]), name
        else:
            limit = 1.25 * _norm_error(conv3d[3][name], reference[3][name]) + 1e-2
            assert _norm_error(fused[3][name], reference[3][name]) <= limit, name


def _count_genstats_calls(monkeypatch):
    calls = []

    def counting(*args):
        calls.append(args[0].shape)
        return conv2d_genstats(*args)

    monkeypatch.setattr(fast_slowonly, "conv2d_genstats", counting)
    return calls


def test_fused_training_steps_aside_for_hooks_checkpointing_eval_and_no_grad(monkeypatch):
    calls = _count_genstats_calls(monkeypatch)
    encoder = _build_encoder("default").train()
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12, dtype=torch.float64)
    # Every block and the stem: 1 + 6 blocks x 3 convs + 3 downsamples.
    fast_video_encoder_forward(encoder.double(), x, fused_training=True)
    assert len(calls) == 1 + 6 * 3 + 3

    for train, grad in ((False, True), (True, False)):
        calls.clear()
        with torch.set_grad_enabled(grad):
            fast_video_encoder_forward(encoder.train(train), x, fused_training=True)
        assert not calls, (train, grad)

    # A hooked block, a checkpointed block and a hooked stem conv take their usual paths; the result is unchanged.
    encoder = _build_encoder("default").train().double()
    captured = []
    encoder.layer2[1].conv2.act.register_forward_hook(lambda module, args, out: captured.append(out.shape))
    encoder.layer3[0].gradient_checkpointing = True
    encoder.layer3[0]._gradient_checkpointing_func = partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    encoder.conv1.conv.register_forward_hook(lambda module, args, out: None)
    with torch.no_grad():
        grad_out = torch.randn_like(copy.deepcopy(encoder).eval()(x))
    reference = _run(copy.deepcopy(encoder), x, False, grad_out)
    calls.clear()
    fused = _run(encoder, x, True, grad_out, fused_training=True)
    assert len(calls) == 4 * 3 + 2  # layer1.0 and .1, layer2.0, layer3.1: two downsamples; not the stem
    assert captured, "the hook of the hooked block fired"
    _compare(fused, reference, 1e-10, "hooked / checkpointed blocks")


@pytest.mark.slow
@pytest.mark.parametrize("unfold_stem", [False, True], ids=["stem", "unfolded_stem"])
def test_fused_training_compiles_in_one_graph(unfold_stem):
    encoder = _build_encoder("default").train()
    x = torch.randn(2, encoder.config.in_channels, 6, 12, 12)
    eager, compiled = copy.deepcopy(encoder), copy.deepcopy(encoder)
    options = dict(fused_training=True, unfold_stem=unfold_stem, input_channel_multiple=8)
    forward = torch.compile(lambda e, v: fast_video_encoder_forward(e, v, **options), fullgraph=True)
    out = forward(compiled, x)
    out.square().sum().backward()
    expected = fast_video_encoder_forward(eager, x, **options)
    expected.square().sum().backward()
    # float32 with another summation order: norm-relative agreement (measured ~1e-6; eager vs plain ~2e-5).
    assert _norm_error(out, expected) < 1e-5
    for (name, a), (_, b) in zip(compiled.named_parameters(), eager.named_parameters()):
        assert _norm_error(a.grad, b.grad) < 1e-4, name
    for (name, a), (_, b) in zip(compiled.named_buffers(), eager.named_buffers()):
        assert _norm_error(a, b) < 1e-5, name


def _install_fake_cudnn(monkeypatch, graph_class):
    """Puts a stand-in for cudnn-frontend (graphs of `graph_class`, no handle) behind `_cudnn_conv_bn_graphs`, with
    empty graph caches; returns the module."""
    import types

    import modeling_skeletonclip._cudnn_conv_bn_graphs as graphs

    fake = types.SimpleNamespace(
        pygraph=graph_class,
        data_type=types.SimpleNamespace(BFLOAT16="bf16", HALF="fp16", FLOAT="fp32"),
        heur_mode=types.SimpleNamespace(A="A", FALLBACK="FALLBACK"),
        reduction_mode=types.SimpleNamespace(ADD="ADD"),
    )
    monkeypatch.setattr(graphs, "cudnn", fake)
    monkeypatch.setattr(graphs, "_handle", lambda device: None)
    monkeypatch.setattr(graphs, "_GRAPHS", {})
    monkeypatch.setattr(graphs, "GRAPH_STATUS", {})
    return graphs


class _FakeNode:
    def __init__(self, graph, name):
        self.graph, self.name = graph, name

    def __getattr__(self, attribute):  # set_output / set_data_type / set_dim / set_stride: chainable
        if attribute.startswith("set_"):
            return lambda *args: self
        raise AttributeError(attribute)


class _FakeGraph:
    """Records the nodes a backend function builds; `check_support` fails for the variants named in `unsupported`."""

    unsupported: tuple = ()
    built: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.ops, self.inputs, self.dtypes = kwargs, [], [], []
        _FakeGraph.built.append(self)

    def tensor(self, name, dim, stride, data_type):
        self.inputs.append(name)
        if name in ("scale", "shift"):
            self.dtypes.append(f"{name} {data_type}")
        return _FakeNode(self, name)

    def __getattr__(self, op):
        def add(**kwargs):
            self.ops.append(op)
            return [_FakeNode(self, op), _FakeNode(self, op)] if op == "genstats" else _FakeNode(self, op)
        return add

    def validate(self, *args):
        pass

    build_operation_graph = create_execution_plans = build_plans = validate

    def check_support(self):
        declared = set(self.ops) | {self.kwargs["intermediate_data_type"]} | set(self.dtypes)
        if declared & set(_FakeGraph.unsupported):
            raise RuntimeError("not supported")

    def get_workspace_size(self):
        return 0

    def execute(self, buffers, workspace, handle=None):
        if "execute" in _FakeGraph.unsupported:
            raise RuntimeError("cudnn execute failed:\n CUDNN_STATUS_EXECUTION_FAILED")
        self.executed = {node.name: tensor for node, tensor in buffers.items()}


def test_cudnn_backend_tries_variants_records_them_and_wires_every_tensor(monkeypatch):
    """The graph-building logic of `_cudnn_conv_bn_graphs` against a recording fake of cudnn-frontend (this machine
    has no GPU): which variant each graph gets, the fallback to None when none is supported, and that every graph
    tensor gets a buffer at execution."""
    graphs = _install_fake_cudnn(monkeypatch, _FakeGraph)
    monkeypatch.setattr(_FakeGraph, "built", [])
    x = torch.randn(2, 8, 6, 6, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    weight, grad = torch.randn(16, 8, 3, 3, dtype=torch.bfloat16), torch.randn(2, 16, 3, 3, dtype=torch.bfloat16)
    scale, shift = torch.rand(8), torch.randn(8)

    # fp32 intermediates and fp32 scale/shift unsupported: the all-io-dtype variant (the third) is built, cached
    # and executed with every tensor bound.
    monkeypatch.setattr(_FakeGraph, "unsupported", ("fp32", "scale torch.float32"))
    y, total, total_sq = graphs.conv_genstats(x, scale, shift, weight, [2, 2], [1, 1])
    assert y.shape == (2, 16, 3, 3) and total.shape == total_sq.shape == (16,)
    graph = _FakeGraph.built[-1]
    assert graph.ops == ["scale", "bias", "relu", "conv_fprop", "genstats"]
    assert set(graph.executed) == {"x", "w", "scale", "shift", "conv_fprop", "genstats"}
    assert graph.executed["scale"].dtype == torch.bfloat16  # the variant's scale dtype
    graphs.conv_genstats(x, scale, shift, weight, [2, 2], [1, 1])
    assert len(_FakeGraph.built) == 3  # three variants tried once; the second call reused the built graph
    (status,) = graphs.GRAPH_STATUS.values()  # the variant taken and how long building took (runtime compilation)
    assert re.fullmatch(r"cudnn \(io-dtype scale/shift, io-dtype intermediates; built in \d+\.\d\d s\)", status)

    # The data gradient: with the sums in the graph unless reductions are unsupported.
    dz, sum_dz_x, sum_dz = graphs.dgrad_drelu(grad, weight, x, scale, shift, [2, 2], [1, 1])
    assert dz.shape == x.shape and sum_dz_x.shape == sum_dz.shape == (8,)
    assert _FakeGraph.built[-1].ops == ["conv_dgrad", "scale", "bias", "relu_backward", "mul", "reduction",
                                        "reduction"]
    monkeypatch.setattr(_FakeGraph, "unsupported", ("reduction",))
    dz, sum_dz_x, sum_dz = graphs.dgrad_drelu(grad, weight, x, scale, shift, [1, 1], [1, 1])
    assert "reduction" not in _FakeGraph.built[-1].ops and sum_dz_x is None and sum_dz is None  # caller reduces

    # Nothing supported: None (the caller runs its torch reference), and the reasons are recorded.
    monkeypatch.setattr(_FakeGraph, "unsupported", ("conv_wgrad",))
    assert graphs.sbr_wgrad(x, scale, shift, grad, weight, [2, 2], [1, 1]) is None
    status = [v for k, v in graphs.GRAPH_STATUS.items() if k[0] == "sbr-wgrad"]
    assert status[0].startswith("reference (fp32 scale/shift, fp32 intermediates: not supported; ")
    assert status[0].count("not supported") == 4 and re.search(r"; tried for \d+\.\d\d s\)$", status[0])
    # A graph that builds but fails to execute: None (the op runs its reference), recorded, and never tried again.
    monkeypatch.setattr(_FakeGraph, "unsupported", ("execute",))
    built_before = len(_FakeGraph.built)
    assert graphs.conv_genstats(x, None, None, weight, [1, 1], [0, 0]) is None
    (key,) = [k for k in graphs.GRAPH_STATUS if k[0] == "fprop+genstats" and not k[6]]
    assert graphs.GRAPH_STATUS[key] == "reference (execution failed: cudnn execute failed: CUDNN_STATUS_EXECUTION_FAILED)"
    assert graphs.conv_genstats(x, None, None, weight, [1, 1], [0, 0]) is None
    assert len(_FakeGraph.built) == built_before + 1  # built once, not rebuilt after the failure
    # Other dtypes never reach cuDNN.
    assert graphs.conv_genstats(x.float(), scale, shift, weight.float(), [1, 1], [1, 1]) is None


@pytest.mark.skipif(
    __import__("modeling_skeletonclip._cudnn_conv_bn_graphs", fromlist=["cudnn"]).cudnn is None,
    reason="cudnn-frontend not importable (the `cudnn` extra with a loadable libcudnn)",
)
def test_cudnn_graphs_pass_the_real_frontends_validation(monkeypatch):
    """Where cudnn-frontend imports (no GPU needed), every graph kind on the check script's shapes passes its
    `validate()` (shape inference, attribute checks of the real frontend), so a GPU call is not spent on API misuse.
    Plans, kernels and execution are the GPU check's (`scripts/device/fused_training_check.sh`)."""
    import importlib.util
    import os

    import modeling_skeletonclip._cudnn_conv_bn_graphs as graphs

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                        "check_fused_training.py")
    spec = importlib.util.spec_from_file_location("check_fused_training", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(graphs, "_handle", lambda device: None)
    monkeypatch.setattr(graphs, "_finish", lambda graph, handle: graph.validate())
    monkeypatch.setattr(graphs, "_execute", lambda key, built, buffers, handle: True)
    monkeypatch.setattr(graphs, "_GRAPHS", {})
    monkeypatch.setattr(graphs, "GRAPH_STATUS", {})
    generator = torch.Generator().manual_seed(0)
    for shape in script.SHAPES:
        x, weight, scale, shift, stride, padding = script.op_inputs(shape, 1, True, torch.device("cpu"),
                                                                    torch.bfloat16, generator)
        grad = torch.randn(graphs.conv2d_output_shape(x.shape, weight.shape, stride, padding), dtype=torch.bfloat16)
        grad = grad.contiguous(memory_format=torch.channels_last)
        assert graphs.conv_genstats(x, scale, shift, weight, stride, padding) is not None, shape[0]
        if scale is not None:
            assert graphs.sbr_wgrad(x, scale, shift, grad, weight, stride, padding) is not None, shape[0]
            assert graphs.dgrad_drelu(grad, weight, x, scale, shift, stride, padding) is not None, shape[0]
    # The first variant of every graph validated (fp32 scale/shift and intermediates; sums in the dgrad graph).
    assert all(status.startswith("cudnn (fp32 scale/shift, fp32 intermediates") and "sums outside" not in status
               for status in graphs.GRAPH_STATUS.values()), graphs.GRAPH_STATUS


def test_check_script_runs_every_shape_and_the_encoder_on_cpu(tmp_path, capsys):
    """`scripts/check_fused_training.py --quick` (the first step of the GPU check): on CPU both sides are the torch
    reference, so every op difference is 0 and the fused encoder step matches the plain one to fp32 rounding."""
    import importlib.util
    import json
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                        "check_fused_training.py")
    spec = importlib.util.spec_from_file_location("check_fused_training", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--quick", "--device", "cpu", "--batch", "2", "--json", str(tmp_path / "check.json")]) == 0
    result = json.loads((tmp_path / "check.json").read_text())
    assert [op["name"] for op in result["ops"]] == [shape[0] for shape in script.SHAPES]
    assert all(value == 0.0 for op in result["ops"] for value in op["errors"].values())
    assert {"dz", "sum_dz_x"} <= set(result["ops"][1]["errors"])  # prologue shapes check the data gradient too
    assert result["encoder"]["ok"] and result["encoder"]["param_grads"] < 1e-4
    assert "not available" in capsys.readouterr().out
    assert script.main(["--quick", "--device", "cpu", "--batch", "2", "--ops-only"]) == 0
    assert "encoder train step" not in capsys.readouterr().out


def test_video_config_switch_trains_the_model_with_the_fused_ops(monkeypatch):
    """`SkeletonClipVideoConfig(fused_training=True)`: the model's encoder trains through the fused ops, with the
    gradients of the plain path (fp32 rounding), and saves the switch in its config."""
    from modeling_skeletonclip import SkeletonClipVideoConfig
    from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipVideoEncoder

    calls = _count_genstats_calls(monkeypatch)
    small = dict(in_channels=5, base_channels=8, stage_planes=[8, 8, 8], stage_blocks=[1, 1, 1])
    torch.manual_seed(0)
    plain = SkeletonClipVideoEncoder(SkeletonClipVideoConfig(**small)).train()
    fused = SkeletonClipVideoEncoder(SkeletonClipVideoConfig(**small, fused_training=True)).train()
    fused.load_state_dict(plain.state_dict())
    assert SkeletonClipVideoConfig.from_dict(fused.config.to_dict()).fused_training
    x = torch.randn(2, 5, 6, 12, 12)
    for encoder in (plain, fused):
        encoder(x).square().mean().backward()
    assert len(calls) == 1 + 3 * 3 + 3
    for (name, a), (_, b) in zip(fused.named_parameters(), plain.named_parameters()):
        assert _norm_error(a.grad, b.grad) < 1e-4, name


def test_video_config_unfold_stem_switch(monkeypatch):
    """`SkeletonClipVideoConfig(unfold_stem=True)`: the model's stem runs unfolded (train and eval), with the plain
    path's output, and the switch survives the config round trip."""
    from modeling_skeletonclip import SkeletonClipVideoConfig
    from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipVideoEncoder

    unfolds = []
    original = fast_slowonly._unfold_width
    monkeypatch.setattr(fast_slowonly, "_unfold_width", lambda *args: unfolds.append(args[0].shape) or original(*args))
    small = dict(in_channels=5, base_channels=8, stage_planes=[8, 8, 8], stage_blocks=[1, 1, 1])
    torch.manual_seed(0)
    plain = SkeletonClipVideoEncoder(SkeletonClipVideoConfig(**small))
    unfolded = SkeletonClipVideoEncoder(SkeletonClipVideoConfig(**small, unfold_stem=True))
    unfolded.load_state_dict(plain.state_dict())
    assert SkeletonClipVideoConfig.from_dict(unfolded.config.to_dict()).unfold_stem
    x = torch.randn(2, 5, 6, 12, 12)
    for train in (True, False):
        torch.testing.assert_close(unfolded.train(train)(x), plain.train(train)(x), rtol=1e-5, atol=1e-5)
    assert unfolds == [(12, 5, 12, 12)] * 2


class _Expr:
    """A node of `_ComputingGraph`: an op with its inputs, evaluated with torch when the graph executes."""

    def __init__(self, op, **args):
        self.op, self.args, self.dim, self.is_output = op, args, None, False

    def set_output(self, value):
        self.is_output = value
        return self

    def set_dim(self, dim):
        self.dim = list(dim)
        return self

    def set_data_type(self, *args):
        return self

    set_stride = set_data_type


class _ComputingGraph:
    """A stand-in for cudnn-frontend's `pygraph` that computes what the graph describes (float64 math, results
    copied into the caller's buffers), so that the buffer plumbing of `_cudnn_conv_bn_graphs` (which buffer
    receives which output, shapes, layouts, views) runs end to end without a GPU."""

    executions = 0

    def __init__(self, **kwargs):
        pass

    def tensor(self, name, dim, stride, data_type):
        return _Expr("tensor", name=name)

    def __getattr__(self, op):
        def node(name=None, **args):
            if op == "genstats":
                return _Expr("sum", input=args["input"]), _Expr("sum_sq", input=args["input"])
            return _Expr(op, **args)
        return node

    def validate(self, *args):
        pass

    build_operation_graph = create_execution_plans = check_support = build_plans = validate

    def get_workspace_size(self):
        return 0

    def execute(self, buffers, workspace, handle=None):
        _ComputingGraph.executions += 1
        bound = {id(node): tensor for node, tensor in buffers.items()}
        for node, tensor in buffers.items():
            if node.is_output:
                tensor.copy_(self._value(node, bound, tensor.shape).reshape(tensor.shape))

    def _value(self, node, bound, shape=None):
        F, value = torch.nn.functional, lambda key: self._value(node.args[key], bound)
        if id(node) in bound and not node.is_output:
            return bound[id(node)].double()
        geometry = {key: node.args[key] for key in ("stride", "padding")} if "stride" in node.args else {}
        op = node.op
        if op == "scale":
            return value("input") * value("scale")
        if op == "bias":
            return value("input") + value("bias")
        if op == "relu":
            return value("input").relu()
        if op == "conv_fprop":
            return F.conv2d(value("image"), value("weight"), **geometry)
        if op in ("sum", "sum_sq"):
            y = value("input")
            return (y if op == "sum" else y.square()).sum(dim=(0, 2, 3), keepdim=True)
        if op == "conv_wgrad":
            return torch.nn.grad.conv2d_weight(value("image"), list(shape), value("loss"), **geometry)
        if op == "conv_dgrad":
            return torch.nn.grad.conv2d_input(node.dim, value("filter"), value("loss"), **geometry)
        if op == "relu_backward":
            return value("loss") * (value("input") > 0)
        if op == "mul":
            return value("a") * value("b")
        if op == "reduction":
            return value("input").sum(dim=(0, 2, 3), keepdim=True)
        raise NotImplementedError(op)


def test_cudnn_path_buffers_end_to_end_through_the_encoder(monkeypatch):
    """The fused encoder's train step through the cuDNN code path, with a stand-in graph that computes what each
    graph describes (in float64, which the path is opened to here): every conv of the fused blocks takes the cuDNN
    path, and output, input and parameter gradients and BN statistics equal the conv3d path's up to the fp32 the
    path keeps its sums and scale/shift in. Catches a buffer bound to the wrong output, a wrong layout or view."""
    import modeling_skeletonclip.fused_conv_bn as fused_ops

    graphs = _install_fake_cudnn(monkeypatch, _ComputingGraph)
    monkeypatch.setattr(graphs, "_HALF", (torch.float64,))
    monkeypatch.setattr(graphs, "_data_type", str)
    monkeypatch.setattr(_ComputingGraph, "executions", 0)
    encoder = _build_encoder("default").double().train()
    torch.manual_seed(2)
    x = torch.randn(2, encoder.config.in_channels, 8, 12, 12, dtype=torch.float64)
    grad_out = torch.randn_like(copy.deepcopy(encoder)(x))
    reference = _run(copy.deepcopy(encoder), x, False, grad_out)
    monkeypatch.setattr(fused_ops, "_on_cudnn", lambda tensor: True)
    through_cudnn = _run(copy.deepcopy(encoder), x, True, grad_out, fused_training=True)
    assert graphs.GRAPH_STATUS and all(s.startswith("cudnn (") for s in graphs.GRAPH_STATUS.values())
    kinds = {key[0] for key in graphs.GRAPH_STATUS}
    assert kinds == {"fprop+genstats", "sbr-wgrad", "dgrad+drelu"} and _ComputingGraph.executions > 20
    _compare(through_cudnn, reference, 1e-5, "fused training through the cuDNN code path", grad_tol=1e-4)


def test_ops_take_cudnn_results_and_reduce_what_the_graph_left_out(monkeypatch):
    """Where a cuDNN graph answers, the op returns its tensors; a data-gradient graph without the reductions
    (`sums None`) gets them from the op; a graph that declines (None) leaves the torch reference to run."""
    import modeling_skeletonclip.fused_conv_bn as fused_ops

    torch.manual_seed(3)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weight, grad = torch.randn(3, 4, 3, 3, dtype=torch.float64), torch.randn(2, 3, 6, 6, dtype=torch.float64)
    scale, shift = torch.rand(4, dtype=torch.float64) + 0.5, torch.randn(4, dtype=torch.float64)
    expected = fused_ops._conv2d_dgrad_drelu(grad, weight, x, scale, shift, [1, 1], [1, 1])
    monkeypatch.setattr(fused_ops, "_on_cudnn", lambda tensor: True)
    monkeypatch.setattr(fused_ops, "_cudnn_dgrad_drelu", lambda *args: (expected[0], None, None))
    monkeypatch.setattr(fused_ops, "_cudnn_conv_genstats", lambda *args: None)
    got = fused_ops._conv2d_dgrad_drelu(grad, weight, x, scale, shift, [1, 1], [1, 1])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    y, total, _ = fused_ops._conv2d_genstats(x, scale, shift, weight, [1, 1], [1, 1])  # declined: the reference
    torch.testing.assert_close(total, y.sum(dim=(0, 2, 3)))


def test_cuda_without_cudnn_frontend_warns_once(monkeypatch, caplog):
    import types

    import modeling_skeletonclip.fused_conv_bn as fused_ops

    monkeypatch.setattr(fused_ops, "_cudnn_available", lambda: False)
    monkeypatch.setattr(fused_ops, "_WARNED_NO_CUDNN", [])
    cuda_tensor = types.SimpleNamespace(is_cuda=True)
    with caplog.at_level("WARNING", logger=fused_ops.__name__):
        assert not fused_ops._on_cudnn(cuda_tensor) and not fused_ops._on_cudnn(cuda_tensor)
    assert [r.message.count("without cudnn-frontend") for r in caplog.records] == [1]
    assert not fused_ops._on_cudnn(types.SimpleNamespace(is_cuda=False))
