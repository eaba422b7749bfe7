"""`benchmarks/profile_encoder.py`: kernel names land in the right category and the breakdown adds up."""

import json
import os
import sys

import pytest
from helpers import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))

import profile_encoder  # noqa: E402

# Kernel names as an H100 profile of the fast path's train step printed them (torch 2.11, cuDNN 9), and CPU ops.
NAMES = {
    "void at::native::batch_norm_collect_statistics_channels_last_kernel<at::native::Var, c10::BFloat16>": "batch norm",
    "void at::native::batch_norm_backward_elemt_channels_last_kernel<4, c10::BFloat16, float>": "batch norm",
    "void at::native::(anonymous namespace)::max_pool_backward_nhwc<c10::BFloat16, float>": "pooling",
    "_ZN17cutlass__5x_cudnn6KernelINS_4conv6kernel23ImplicitGemmConvolutionINS1_11threadbloc": "convolution",
    "sm90_xmma_wgrad_indexed_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize64x64": "convolution",
    "nvjet_sm90_tst_128x256_64x4_1x2_h_ssched_bz_coopA_TNN": "convolution",
    "void nhwcAddPaddingKernel<__nv_bfloat16, __nv_bfloat16, float, true>": "convolution",
    "void at::native::vectorized_elementwise_kernel<8, at::native::CUDAFunctor_add<c10::BFloat16>>": "elementwise",
    "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor<float, 4>>": "optimizer",
    "triton_red_fused__native_batch_norm_legit_functional_relu_3": "inductor-generated",
    "## Call CompiledFxGraph fo3fyhu6q2wwocwwrnbjncgc2g453ldlmwtae3ebd6ydui26n4lj ##": "inductor-generated",
    "aten::mkldnn_convolution": "convolution",
    "aten::convolution_backward": "convolution",
    "aten::native_batch_norm_backward": "batch norm",
    "aten::threshold_backward": "elementwise",
    "aten::empty": "other",
}


@pytest.mark.parametrize("name, category", NAMES.items())
def test_kernel_categories(name, category):
    assert profile_encoder.categorize(name) == category


def test_breakdown_adds_up_and_ranks():
    times = {"aten::mkldnn_convolution": 6.0, "aten::native_batch_norm": 3.0, "aten::add_": 1.0, "aten::empty": 2.0}
    result = profile_encoder.breakdown(times, steps=2, top=2)
    assert result["total_ms_per_step"] == pytest.approx(6.0)
    assert result["categories_ms_per_step"] == {"convolution": 3.0, "batch norm": 1.5, "other": 1.0,
                                                "elementwise": 0.5}
    assert sum(result["categories_share"].values()) == pytest.approx(1.0)
    assert [k["name"] for k in result["top_kernels_ms_per_step"]] == ["aten::mkldnn_convolution",
                                                                     "aten::native_batch_norm"]


def test_cpu_profile_of_a_train_step(tmp_path, capsys):
    out = tmp_path / "prof.json"
    profile_encoder.main(["--quick", "--device", "cpu", "--steps", "1", "--warmup", "1", "--json",
                          str(out)])
    result = json.loads(out.read_text())
    assert result["settings"]["mode"] == "train" and result["settings"]["precision"] == "bf16 autocast"
    categories = result["categories_ms_per_step"]
    assert categories["convolution"] > 0 and categories["batch norm"] > 0
    assert sum(categories.values()) == pytest.approx(result["total_ms_per_step"])
    assert result["clips_per_s"] == pytest.approx(2 / (result["wall_ms_per_step"] / 1e3))
    printed = capsys.readouterr().out
    assert "convolution" in printed and "wall-clock time per step" in printed


@pytest.mark.parametrize(
    "argv, message",
    [(["--channel-multiple", "0"], "--channel-multiple must be >= 1"),
     (["--impl", "conv3d", "--channel-multiple", "8"], "--impl fast only"),
     (["--compile", "fastest"], "invalid choice: 'fastest'"),
     (["--fused-epilogues"], "add --mode inference"),
     (["--impl", "conv3d", "--fused-epilogues", "--mode", "inference"], "--impl fast only"),
     (["--inductor-options", "coordinate_descent_tuning=True"], "add --compile MODE"),
     (["--compile", "default", "--inductor-options", "no_such_option=1"], "no option 'no_such_option'")],
)
def test_bad_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        profile_encoder.parse_args(["--quick", *argv])
    assert message in capsys.readouterr().err
