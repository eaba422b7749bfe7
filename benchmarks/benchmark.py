#!/usr/bin/env python
"""Throughput benchmark of SkeletonCLIP: one table, every row measured side by side in this one run.

Rows:
  1. video encoder (SlowOnly, SPEC §3): train step (forward + backward + AdamW step) and inference clips/s, peak
     memory, for conv3d fp32 (the reference), conv3d bf16 autocast + channels_last_3d, the fast 2D path
     (`fast_video_encoder_forward`) in fp32 and bf16, and fast bf16 + torch.compile (`--compile`); each with its
     ratio to the reference. On CUDA also the fast path without input-channel padding, and with fused
     conv-bias-ReLU epilogues (eager and compiled; inference only, with the output's relative difference to the
     plain fast path; what the model runs by default on CUDA in bf16, the other fast rows force them off). The
     fastest fast rows are then compared with conv3d bf16 + channels_last_3d (the targets' baseline). On CPU also
     inference at batch 1 (conv3d vs fast).
  2. heatmap rendering: torch `render_heatmaps` vs the numpy oracle of the tests (`heatmap_rendering.py`);
     on GPU also `render_heatmaps` for 128 clips x 2 persons x 48 frames at 56x56.
  3. CPU data pipeline: train transform + collator, one thread (`data_pipeline.py`); the whole loading path
     (Arrow reads, transform, collate, tokenizer) through a DataLoader with 0 / 2 / 4 workers.
  4. the full SkeletonClipModel (keypoints in, so heatmap rendering is included): train step and inference, with
     conv_impl="conv3d" and "fast".
  5. evaluation scaling: scoring clips against 60 / 120 / 1,000 candidate class texts (texts encoded once).
  6. variants: train step time and peak memory of every objective (itc_itm, itc_momentum, pacl) relative to the
     plain contrastive model ("itc"), each measured in a fresh process (`objective_training.py`).
  7. video in, prediction out, on one CPU core (`video_inference.py`): PyAV decoding and MediaPipe pose extraction
     frames/s, and the end-to-end seconds per minute of video (decode + pose + model timeline) for the small and
     full presets (--quick: 2 s of video, small preset only); and a live stream (`streaming_inference.py`): a
     25 fps 640x480 video released in real time through `StreamingRecognizer` (MediaPipe, small preset, window
     32, stride 8) on all the cores: sustained frames/s, latency from a frame to its first prediction, windows
     skipped and the largest backlogs (--quick: 2 s of stream).
  8. ONNX (`onnx_inference.py`): batch-1 and batch-8 CPU latency and clips/s of the exported graph in onnxruntime
     (with a few session options) against the torch model, interleaved, for the small and full presets (--quick:
     small preset, 3 repeats); needs the onnx extra.

Usage:
  python benchmarks/benchmark.py                 # full size on the GPU (batch 128, 48x56x56, full encoder, bf16)
  python benchmarks/benchmark.py --quick         # reduced sizes, under a minute on 2 CPU cores
  python benchmarks/benchmark.py --json out.json # also write every measurement as JSON (rewritten after each row)

Run from a checkout: the scripts in benchmarks/ measure the checkout's package and take the random keypoints and the
heatmap oracle from tests/helpers.py.

Flags:
  --quick             reduced sizes (batch 2, 16 frames, 32x32, reduced encoder and model); the CPU smoke test.
  --device DEV        "cuda" (default when available) or "cpu".
  --batch / --frames / --size   override the encoder batch, frames and square heatmap size.
  --model-batch N     batch of the full-model rows (32 at full size).
  --steps N / --warmup N        timed and warm-up iterations per measurement.
  --compile           add the "fast bf16 + torch.compile" encoder row (off by default: compiling takes minutes).
  --compile-modes M   comma-separated torch.compile modes, one row each: default, reduce-overhead (CUDA graphs),
                      max-autotune-no-cudagraphs, max-autotune (e.g. --compile-modes default,max-autotune).
  --cudnn-benchmark   torch.backends.cudnn.benchmark = True for every row (cuDNN times its algorithms per shape
                      on first use instead of picking them by heuristics).
  --inductor-options K=V[,K=V]  after each compiled row, the same row with these torch._inductor.config settings
                      (e.g. coordinate_descent_tuning=True: inductor tunes each generated kernel's launch config).
  --inference-only    encoder rows: inference only (no train steps, no compiled backward graphs: much quicker).
  --encoder-rows RE   encoder rows: only those whose name matches this regular expression (Python `re.search`),
                      besides the reference and conv3d bf16 + channels_last_3d rows that the ratios need, e.g.
                      "compile" for the compiled rows only.
  --batch-sweep LIST  also run the fast bf16 rows (and their compiled rows) at these batch sizes, e.g. 64,192,256.
  --rows LIST         comma-separated subset of rows to run: encoder,heatmaps,pipeline,model,eval,variants,video,onnx
                      (default all).
  --pipeline-clips N  clips through the CPU data pipeline.
  --json PATH         write the results as JSON.

Clips/s are batch / mean seconds per iteration after the warm-up (torch.cuda.synchronize around the timed region on
GPU). Peak memory is torch.cuda.max_memory_allocated during the measurement, on top of what was allocated before
it (the model, its optimizer state and the inputs); "n/a" on CPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import sys
import time
from typing import NamedTuple

import torch
import torch._inductor.config  # noqa: F401  (torch._inductor.config.patch for --inductor-options)
import torch.nn.functional as F

# Run from a checkout: the checkout's package, and tests/helpers.py (random keypoints, the heatmap oracle).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [path for path in (_ROOT, os.path.join(_ROOT, "tests")) if path not in sys.path]

from data_pipeline import benchmark_dataloader, benchmark_pipeline  # noqa: E402
from heatmap_rendering import benchmark_rendering  # noqa: E402
from streaming_inference import benchmark_streaming, table_rows as streaming_table_rows  # noqa: E402
from video_inference import benchmark_video, table_rows as video_table_rows  # noqa: E402
from onnx_inference import benchmark_onnx, table_rows as onnx_table_rows  # noqa: E402
from helpers import random_keypoints  # noqa: E402
from objective_training import benchmark_variants  # noqa: E402

from modeling_skeletonclip.configuration_skeletonclip import SkeletonClipConfig, SkeletonClipVideoConfig  # noqa: E402
from modeling_skeletonclip.fast_slowonly import fast_video_encoder_forward  # noqa: E402
from modeling_skeletonclip.heatmaps import render_heatmaps  # noqa: E402
from modeling_skeletonclip.modeling_skeletonclip import SkeletonClipModel, SkeletonClipVideoEncoder  # noqa: E402

REDUCED_VIDEO = {"base_channels": 16, "stage_planes": [16, 32, 64], "stage_blocks": [1, 2, 1]}
# torch.compile modes of the "fast bf16 + torch.compile" rows: "reduce-overhead" adds CUDA graphs, "max-autotune*"
# lets inductor benchmark Triton GEMM/conv templates (with fused epilogues) against cuBLAS/cuDNN.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")
# The conv3d row the performance targets are stated against (and `best_fast_rows` compares with).
BF16_CHANNELS_LAST = "conv3d bf16 + channels_last_3d"
REDUCED_TEXT = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}


# ----------------------------------------------------------------------------------------------------------------
# Timing and memory helpers
# ----------------------------------------------------------------------------------------------------------------


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_iter(fn, device, steps, warmup):
    """Mean wall-clock seconds of `fn()` over `steps` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def measure(fn, device, steps, warmup, batch):
    """`{"clips_per_s", "peak_mem_gib"}` of `fn` (one batch per call); "OOM" instead of numbers when it runs out."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    try:
        seconds = seconds_per_iter(fn, device, steps, warmup)
    except torch.OutOfMemoryError:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return {"clips_per_s": None, "peak_mem_gib": None, "error": "OOM"}
    peak = None
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**30
    return {"clips_per_s": batch / seconds, "peak_mem_gib": peak}


def fmt_ratio(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}x"


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


# ----------------------------------------------------------------------------------------------------------------
# 1. Video encoder
# ----------------------------------------------------------------------------------------------------------------


class EncoderVariant(NamedTuple):
    name: str
    impl: str  # "conv3d" (the encoder's own forward) or "fast" (`fast_video_encoder_forward`)
    bf16: bool  # bf16 autocast
    channels_last: bool  # channels_last_3d input and weights
    compile_mode: str | None = None  # torch.compile mode, None = eager
    channel_multiple: int | None = None  # the fast path's input-channel padding, None = its default
    fused_epilogues: bool = False  # the fast path's fused conv-bias-ReLU inference (no train-step row)
    inductor_options: tuple = ()  # (key, value) pairs of torch._inductor.config set while the row compiles and runs


def encoder_variants(compile_modes, device, inductor_options=()):
    """The encoder rows, reference first. With `inductor_options`, each compiled row is followed by one with them."""
    variants = [
        EncoderVariant("conv3d fp32 (reference)", "conv3d", False, False),
        EncoderVariant(BF16_CHANNELS_LAST, "conv3d", True, True),
        EncoderVariant("fast fp32", "fast", False, False),
    ]
    if device.type == "cuda":  # what the default zero-padding of the 17 input channels to 24 buys on CUDA
        variants.append(EncoderVariant("fast bf16, input channels unpadded", "fast", True, False, channel_multiple=1))
    variants.append(EncoderVariant("fast bf16", "fast", True, False))
    if device.type == "cuda":  # cuDNN's fused kernels; elsewhere the ops are the plain ops (nothing to measure)
        variants.append(EncoderVariant("fast bf16, fused epilogues (inference)", "fast", True, False,
                                       fused_epilogues=True))
    for mode in compile_modes:
        suffix = "" if mode == "default" else f"(mode={mode})"
        variants.append(EncoderVariant(f"fast bf16 + torch.compile{suffix}", "fast", True, False, mode))
        if device.type == "cuda":
            variants.append(EncoderVariant(f"fast bf16 + torch.compile{suffix}, fused epilogues (inference)", "fast",
                                           True, False, mode, fused_epilogues=True))
        if inductor_options:
            options = ", ".join(f"{key}={value}" for key, value in inductor_options)
            variants.append(EncoderVariant(f"fast bf16 + torch.compile{suffix}, inductor {options}", "fast", True,
                                           False, mode, inductor_options=tuple(inductor_options)))
    return variants


def make_forward(encoder, variant):
    if variant.impl == "fast":
        def forward(x):
            return fast_video_encoder_forward(encoder, x, variant.channel_multiple, variant.fused_epilogues)
    else:
        forward = encoder
    if variant.compile_mode is None:
        return forward
    # Every compiled row starts from empty caches: the rows share one code object (`forward`), and dynamo's
    # recompile limit would otherwise make later rows fall back to eager silently.
    torch._dynamo.reset()
    return torch.compile(forward, mode=None if variant.compile_mode == "default" else variant.compile_mode)


def encoder_steps(base_encoder, x, device, variant):
    """A fresh copy of the encoder set up as `variant` says, and its workloads.

    Returns `(encoder, train_step, inference)`: `train_step()` is forward + backward + AdamW step (call
    `encoder.train()` first), `inference()` a forward under `torch.inference_mode` returning the output (call
    `encoder.eval()` first).
    """
    encoder = copy.deepcopy(base_encoder).to(device)
    inputs = x.contiguous(memory_format=torch.channels_last_3d) if variant.channels_last else x
    if variant.channels_last:
        encoder = encoder.to(memory_format=torch.channels_last_3d)
    forward = make_forward(encoder, variant)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant.bf16)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-4)

    def train_step():
        with autocast:
            out = forward(inputs)
        loss = out.float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def inference():
        with torch.inference_mode(), autocast:
            return forward(inputs)

    return encoder, train_step, inference


def bench_encoder_variant(base_encoder, x, device, variant, args):
    """`(train, inference)` measurements; fused-epilogue rows have inference only, plus their output's relative
    difference to the plain fast path under the same autocast (a check that the fused kernels compute the same)."""
    try:
        # Compilation happens in the first calls, so the inductor options must hold for the whole measurement.
        with torch._inductor.config.patch(dict(variant.inductor_options)):
            return _bench_encoder_variant(base_encoder, x, device, variant, args)
    except Exception as error:  # an option that fails here (a cuDNN graph, a compiler error, memory) ends its row only
        message = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        print(f"  row {variant.name!r} failed: {message}", flush=True)
        failed = {"clips_per_s": None, "peak_mem_gib": None, "error": message}
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return failed, dict(failed)


def _bench_encoder_variant(base_encoder, x, device, variant, args):
    encoder, train_step, inference = encoder_steps(base_encoder, x, device, variant)
    warmup = args.warmup + (2 if variant.compile_mode is not None else 0)  # compilation stays out of the timing
    if variant.fused_epilogues or args.inference_only:
        note = "inference-only option" if variant.fused_epilogues else "--inference-only"
        train = {"clips_per_s": None, "peak_mem_gib": None, "note": note}
    else:
        encoder.train()
        train = measure(train_step, device, args.steps, warmup, x.shape[0])
    encoder.eval()
    infer = measure(inference, device, args.steps, warmup, x.shape[0])
    if variant.fused_epilogues:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant.bf16):
            plain = fast_video_encoder_forward(encoder, x, variant.channel_multiple, False).float()
            fused = inference().float()
        infer["rel_diff_vs_plain"] = ((fused - plain).norm() / plain.norm()).item()
    return train, infer


def bench_encoder(args, device, results, table):
    # conv_impl="conv3d": the encoder's own forward is the reference path; the fast rows call the fast function.
    config = SkeletonClipVideoConfig(conv_impl="conv3d", **({} if not args.quick else REDUCED_VIDEO))
    torch.manual_seed(0)
    encoder = SkeletonClipVideoEncoder(config)
    x = torch.rand(args.batch, config.in_channels, args.frames, args.size, args.size, device=device)
    rows = []
    reference = None
    variants = encoder_variants(args.compile_modes, device, args.inductor_options)
    if args.encoder_rows is not None:  # the reference rows stay: every ratio is against them
        variants = [variant for i, variant in enumerate(variants)
                    if i == 0 or variant.name == BF16_CHANNELS_LAST or args.encoder_rows.search(variant.name)]
    results["encoder"] = {"batch": args.batch, "frames": args.frames, "size": args.size, "config": config.to_dict(),
                          "rows": rows}
    for variant in variants:
        train, infer = bench_encoder_variant(encoder, x, device, variant, args)
        if reference is None:
            reference = (train["clips_per_s"], infer["clips_per_s"])
        rows.append(encoder_row(variant.name, args.batch, train, infer, reference, table))
        write_json(args, results)  # a run cut short by a time limit keeps the rows it measured
    # Other batch sizes of the fast bf16 rows; ratios are throughput against the reference at --batch.
    for batch in args.batch_sweep:
        xb = torch.rand(batch, config.in_channels, args.frames, args.size, args.size, device=device)
        for variant in variants:
            if variant.impl == "fast" and variant.bf16 and variant.channel_multiple is None:
                train, infer = bench_encoder_variant(encoder, xb, device, variant, args)
                rows.append(encoder_row(variant.name, batch, train, infer, reference, table, label_batch=True))
    results["encoder"]["best_vs_conv3d_bf16_channels_last"] = best_fast_rows(rows, args.batch)
    if device.type == "cpu":
        results["encoder"]["batch1_inference"] = bench_encoder_batch1(encoder, x[:1], device, args, table)


def best_fast_rows(rows, batch):
    """The fastest fast-path row at `batch` for training and for inference, against the conv3d bf16 channels-last
    row of the same run (the comparison the performance targets are stated in); printed and returned."""
    baseline = next((row for row in rows if row["name"] == BF16_CHANNELS_LAST), None)
    if baseline is None:
        return None
    best = {}
    for mode in ("train", "inference"):
        candidates = [row for row in rows if row["name"].startswith("fast") and row["batch"] == batch
                      and row[mode]["clips_per_s"] is not None]
        if not candidates or baseline[mode]["clips_per_s"] is None:
            continue
        top = max(candidates, key=lambda row: row[mode]["clips_per_s"])
        best[mode] = {"name": top["name"], "clips_per_s": top[mode]["clips_per_s"],
                      "ratio": top[mode]["clips_per_s"] / baseline[mode]["clips_per_s"]}
        print(f"  best {mode}: {top['name']}, {fmt(best[mode]['clips_per_s'])} clips/s = "
              f"{best[mode]['ratio']:.2f}x conv3d bf16 + channels_last_3d", flush=True)
    return best


def encoder_row(name, batch, train, infer, reference, table, label_batch=False):
    row = {"name": name, "batch": batch, "train": train, "inference": infer}
    row["train_ratio"] = ratio(train["clips_per_s"], reference[0])
    row["inference_ratio"] = ratio(infer["clips_per_s"], reference[1])
    label = f"encoder {name}" + (f", batch {batch}" if label_batch else "")
    note = fmt(infer["peak_mem_gib"], 2) if "error" not in train else f"FAILED: {train['error'][:80]}"
    if "rel_diff_vs_plain" in infer:
        note += f"; output vs plain {infer['rel_diff_vs_plain']:.1e}"
    table.append(
        [label, fmt(train["clips_per_s"]), fmt_ratio(row["train_ratio"]), fmt(train["peak_mem_gib"], 2),
         fmt(infer["clips_per_s"]), fmt_ratio(row["inference_ratio"]), note]
    )
    print_progress(table[-1])
    return row


def bench_encoder_batch1(encoder, x1, device, args, table):
    encoder = copy.deepcopy(encoder).eval()
    out = {}
    for name, impl in (("conv3d fp32", "conv3d"), ("fast fp32", "fast")):
        forward = make_forward(encoder, EncoderVariant(name, impl, False, False))

        def inference():
            with torch.inference_mode():
                forward(x1)

        out[name] = measure(inference, device, args.steps * 2, args.warmup, 1)["clips_per_s"]
    ratio_value = ratio(out["fast fp32"], out["conv3d fp32"])
    table.append(["encoder batch-1 inference conv3d / fast", "", "", "",
                  f"{fmt(out['conv3d fp32'])} / {fmt(out['fast fp32'])}", fmt(ratio_value, 2) + "x", ""])
    print_progress(table[-1])
    return {**out, "ratio": ratio_value}


def ratio(value, reference):
    return None if value is None or not reference else value / reference


# ----------------------------------------------------------------------------------------------------------------
# 2. Heatmap rendering, 3. CPU data pipeline
# ----------------------------------------------------------------------------------------------------------------


def bench_heatmaps(args, device, results, table):
    entry = {}
    batch = 4 if args.quick else 32
    stats = benchmark_rendering(batch=batch, persons=2, frames=args.frames, size=args.size, device=str(device),
                                repeats=3 if args.quick else 5)
    entry["rendering"] = stats
    table.append([f"heatmaps torch vs numpy ({device.type}, batch {batch})", "", "", "",
                  f"{fmt(stats['torch_clips_per_s'])} vs {fmt(stats['numpy_clips_per_s'])}",
                  fmt(stats["ratio"], 1) + "x", ""])
    print_progress(table[-1])
    if device.type == "cuda":
        entry["render_128x48_56"] = bench_render_direct(device, args)
        table.append(["heatmaps render_heatmaps 128 clips x2 persons 48x56x56", "", "", "",
                      fmt(entry["render_128x48_56"]), "", ""])
        print_progress(table[-1])
    results["heatmaps"] = entry


def bench_render_direct(device, args):
    keypoints, scores = random_keypoints(128, persons=2, frames=48, size=56)
    keypoints, scores = keypoints.to(device), scores.to(device)
    fn = lambda: render_heatmaps(keypoints, scores, size=(56, 56), sigma=0.6, with_joints=True, with_limbs=False)  # noqa: E731
    return 128 / seconds_per_iter(fn, device, args.steps, args.warmup)


def bench_pipeline(args, device, results, table):
    stats = benchmark_pipeline(num_clips=args.pipeline_clips, persons=2, frames=100)  # sets 1 thread itself
    results["pipeline"] = stats
    table.append(["CPU data pipeline (1 thread, 2 persons, 100 frames)", fmt(stats["clips_per_s"]), "", "",
                  f"{fmt(stats['clips_per_cpu_s'])} per CPU-s", "", ""])
    print_progress(table[-1])

    workers = (0, 2) if args.quick else (0, 2, 4)
    loader = benchmark_dataloader(workers=workers, num_clips=args.pipeline_clips * 2)
    results["dataloader"] = loader
    text = "texts tokenized" if loader["tokenizer"] else "no tokenizer installed"
    table.append([f"DataLoader pickle->Arrow->transform->collate, workers {'/'.join(map(str, workers))}",
                  " / ".join(fmt(loader["workers"][w], 0) for w in workers), "", "", "", "",
                  f"{text}; {os.cpu_count()} CPU cores"])
    print_progress(table[-1])


# ----------------------------------------------------------------------------------------------------------------
# 4. Full model, 5. evaluation scaling
# ----------------------------------------------------------------------------------------------------------------


def build_model(args, device, num_classes=60, conv_impl="fast"):
    kwargs = {"id2label": {i: f"action {i}" for i in range(num_classes)}}
    video = dict(REDUCED_VIDEO) if args.quick else {}
    kwargs["video_config"] = {**video, "conv_impl": conv_impl}
    if args.quick:
        kwargs.update(text_config=REDUCED_TEXT)
    torch.manual_seed(0)
    return SkeletonClipModel(SkeletonClipConfig(**kwargs)).to(device)


def bench_model(args, device, results, table):
    """The full model (keypoints in: rendering, encoder, text encoder, loss) with the conv3d and the fast path;
    returns the fast-path model for the evaluation rows."""
    results["model"] = {}
    model = None
    for conv_impl in ("conv3d", "fast"):
        model = build_model(args, device, conv_impl=conv_impl)
        row = bench_model_train_and_inference(model, args, device)
        results["model"][conv_impl] = row
        table.append([f"SkeletonClipModel {conv_impl} ({row['precision']}, batch {row['batch']}, keypoints in)",
                      fmt(row["train"]["clips_per_s"]), "", fmt(row["train"]["peak_mem_gib"], 2),
                      fmt(row["inference"]["clips_per_s"]), "", fmt(row["inference"]["peak_mem_gib"], 2)])
        print_progress(table[-1])
    return model


def bench_model_train_and_inference(model, args, device):
    batch = args.model_batch
    keypoints, scores = random_keypoints(batch, persons=2, frames=args.frames, size=args.size)
    keypoints, scores = keypoints.to(device), scores.to(device)
    size = (args.size, args.size)
    input_ids = torch.randint(1000, 2000, (batch, 8), device=device)
    labels = torch.arange(batch, device=device) % 60
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def train_step():
        with autocast:
            loss = model(keypoints=keypoints, keypoint_scores=scores, input_ids=input_ids, labels=labels,
                         heatmap_size=size).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def inference():
        with torch.inference_mode(), autocast:
            model.get_video_features(keypoints=keypoints, keypoint_scores=scores, heatmap_size=size)

    model.train()
    train = measure(train_step, device, args.steps, args.warmup, batch)
    model.eval()
    infer = measure(inference, device, args.steps, args.warmup, batch)
    del optimizer
    return {"conv_impl": model.config.video_config.conv_impl, "batch": batch, "frames": args.frames, "size": args.size,
            "precision": "bf16 autocast" if args.bf16 else "fp32", "train": train, "inference": infer}


def bench_eval_scaling(args, device, results, table, model=None):
    model = (model or build_model(args, device)).eval()
    clips = args.model_batch
    keypoints, scores = random_keypoints(clips, persons=2, frames=args.frames, size=args.size, seed=1)
    keypoints, scores = keypoints.to(device), scores.to(device)
    size = (args.size, args.size)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    entry = {"clips": clips}
    for num_texts in (60, 120, 1000):
        input_ids = torch.randint(1000, 2000, (num_texts, 8), device=device)
        sync(device)
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            text_embeds = torch.cat([
                F.normalize(model.get_text_features(input_ids=chunk).pooler_output.float(), dim=-1)
                for chunk in input_ids.split(256)
            ])
        sync(device)
        text_seconds = time.perf_counter() - start

        def score():
            with torch.inference_mode(), autocast:
                video = model.get_video_features(keypoints=keypoints, keypoint_scores=scores, heatmap_size=size)
                model.logits(F.normalize(video.pooler_output.float(), dim=-1), text_embeds).argmax(dim=-1)

        clips_per_s = clips / seconds_per_iter(score, device, args.steps, args.warmup)
        entry[str(num_texts)] = {"clips_per_s": clips_per_s, "text_encode_s": text_seconds}
        table.append([f"eval scoring vs {num_texts} class texts (texts encoded once)", "", "", "",
                      fmt(clips_per_s), "", f"texts {text_seconds * 1e3:,.0f} ms"])
        print_progress(table[-1])
    results["eval_scaling"] = entry


# ----------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------

HEADER = ["row", "train clips/s", "vs ref", "train peak GiB", "infer clips/s", "vs ref", "infer peak GiB / note"]


def bench_variants(args, device, results, table):
    """Train step of every objective (ITM, Mo, PACL) relative to the plain contrastive model, each in a fresh
    process so that peak memory is its own (the CPU demo model on CPU; batch = --model-batch)."""
    variant_rows = benchmark_variants(batch_size=args.model_batch, steps=args.steps, device=str(device))
    results["variants"] = variant_rows
    for row in variant_rows:
        table.append([f"variant {row['variant']} train step (batch {args.model_batch})",
                      fmt(args.model_batch / row["step_s"]), f"{1 / row['step_rel']:.2f}x",
                      fmt(row["peak_mb"] / 1024, 2), "", "", f"peak {row['peak_rel']:.2f}x vs itc"])
        print_progress(table[-1])


def bench_video(args, device, results, table):
    """Video in, prediction out on one CPU core (whatever --device says: pose extraction runs on the CPU)."""
    kwargs = dict(seconds=2.0, presets=("small",)) if args.quick else {}
    video = benchmark_video(**kwargs)
    results["video"] = video
    for name, value in video_table_rows(video):
        table.append([f"video: {name}", "", "", "", "", "", value])
        print_progress(table[-1])
    stream = benchmark_streaming(**(dict(seconds=2.0) if args.quick else {}))
    video["streaming"] = stream
    for name, value in streaming_table_rows(stream):
        table.append([f"video: {name}", "", "", "", "", "", value])
        print_progress(table[-1])


def bench_onnx(args, device, results, table):
    """The exported graph in onnxruntime against the torch model on the CPU (whatever --device says)."""
    kwargs = dict(presets=("small",), repeats=3, warmup=1) if args.quick else {}
    onnx = benchmark_onnx(**kwargs)
    results["onnx"] = onnx
    for name, clips_per_s, ratio, note in onnx_table_rows(onnx):
        table.append([f"onnx: {name}", "", "", "", clips_per_s, ratio, note])
        print_progress(table[-1])


def print_progress(row):
    print("  done: " + " | ".join(c for c in row if c), flush=True)


def print_table(table, title):
    widths = [max(len(str(r[i])) for r in [HEADER] + table) for i in range(len(HEADER))]
    line = "-+-".join("-" * w for w in widths)
    print("\n" + title)
    print(line)
    print(" | ".join(h.ljust(w) for h, w in zip(HEADER, widths)))
    print(line)
    for row in table:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print(line)


def machine_description(device):
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return (f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads (torch {torch.__version__})")


def parse_inductor_options(text: str) -> list[tuple[str, object]]:
    """"key=value,key=value" -> [(key, value)] for `torch._inductor.config.patch`; values True/False, ints and floats
    are converted. Unknown keys are refused (a typo would otherwise measure the plain compiled row again). An
    argparse `type`, so a bad value is reported as an error of the flag."""
    options = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        if not hasattr(torch._inductor.config, key):
            raise argparse.ArgumentTypeError(f"torch._inductor.config has no option {key!r}")
        raw = raw.strip()
        value: object = {"true": True, "false": False}.get(raw.lower(), raw)
        if isinstance(value, str):
            for convert in (int, float):
                try:
                    value = convert(raw)
                    break
                except ValueError:
                    pass
        options.append((key, value))
    return options


def _regex(text: str) -> re.Pattern:
    try:
        return re.compile(text)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"not a regular expression ({error}): {text!r}") from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--model-batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--compile-modes", default="")
    parser.add_argument("--batch-sweep", default="")
    parser.add_argument("--encoder-rows", type=_regex)
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--inductor-options", type=parse_inductor_options, default=[])
    parser.add_argument("--inference-only", action="store_true")
    parser.add_argument("--rows", default="encoder,heatmaps,pipeline,model,eval,variants,video,onnx")
    parser.add_argument("--pipeline-clips", type=int)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    defaults = (
        dict(batch=2, frames=16, size=32, model_batch=2, steps=2, warmup=1, pipeline_clips=48)
        if args.quick else dict(batch=128, frames=48, size=56, model_batch=32, steps=10, warmup=3, pipeline_clips=1000)
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    modes = [m for m in args.compile_modes.split(",") if m]
    unknown = sorted(set(modes) - set(COMPILE_MODES))
    if unknown:
        parser.error(f"--compile-modes: unknown mode(s) {unknown}; choose from {', '.join(COMPILE_MODES)}")
    args.compile_modes = (["default"] if args.compile and "default" not in modes else []) + modes
    try:
        args.batch_sweep = [int(b) for b in args.batch_sweep.split(",") if b]
    except ValueError:
        parser.error(f"--batch-sweep: expected comma-separated integers, got {args.batch_sweep!r}")
    if args.inductor_options and not args.compile_modes:
        parser.error("--inductor-options adds compiled rows: add --compile or --compile-modes")
    args.bf16 = torch.device(args.device).type == "cuda"  # the full model rows: bf16 autocast on GPU
    return args


def write_json(args, results):
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2, default=str)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    rows = set(args.rows.split(","))
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    results = {"machine": machine_description(device), "args": vars(args)}
    table = []
    print(f"SkeletonCLIP benchmark on {results['machine']}", flush=True)
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        print(f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}")

    steps = [("encoder", bench_encoder), ("heatmaps", bench_heatmaps), ("pipeline", bench_pipeline)]
    for name, fn in steps:
        if name in rows:
            fn(args, device, results, table)
            write_json(args, results)
    model = None
    if "model" in rows:
        model = bench_model(args, device, results, table)
        write_json(args, results)
    if "eval" in rows:
        bench_eval_scaling(args, device, results, table, model)
        write_json(args, results)
    if "variants" in rows:
        bench_variants(args, device, results, table)
        write_json(args, results)
    if "video" in rows:
        bench_video(args, device, results, table)
        write_json(args, results)
    if "onnx" in rows:
        bench_onnx(args, device, results, table)
        write_json(args, results)

    size = f"encoder batch {args.batch}, {args.frames}x{args.size}x{args.size}" + (" (reduced encoder)" if args.quick else "")
    size += ", cudnn.benchmark on" if args.cudnn_benchmark else ""
    print_table(table, f"SkeletonCLIP benchmark: {results['machine']}; {size}")
    write_json(args, results)
    return results


if __name__ == "__main__":
    main()
