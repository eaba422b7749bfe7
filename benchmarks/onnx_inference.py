"""CPU inference latency of the exported graph (onnxruntime) against the torch model, side by side.

For each preset (small, full) the contrastive model (random weights: speed does not depend on them; 60 classes, the
packaged MiniLM encodes their texts once) is exported with `export_onnx`, and the same computation, keypoints
`[N, 2 persons, clip_len, 17, 2]` in and class probabilities out, is timed at batch 1 and batch 8 through:
  - torch: `ExportedSkeletonClip` (`score_all_classes` + softmax) in eval mode, no grad, the default fast path;
  - onnxruntime (CPU EP) with the session options named in the row: the defaults; intra-op threads = torch's;
    and that with the graph optimisation level "extended" or the memory pattern off;
  - onnxruntime (intra-op threads = torch's) on a second export whose stem convolution is not split into 16 + 1
    input channels (`fast_slowonly.EXPORT_CHANNEL_BLOCK`): what the split gains.
Repeats are interleaved (one call of every row per round), so that a machine whose load changes during the run
slows every row alike; latency is the median over rounds. Ratios are torch latency / row latency (> 1: faster
than torch).

`benchmark_onnx()` is a row of benchmark.py.

    python benchmarks/onnx_inference.py                    # small and full presets, batches 1 and 8
    python benchmarks/onnx_inference.py --presets small --repeats 5
    python benchmarks/onnx_inference.py --threads 1    # torch and onnxruntime on one thread each

On a machine whose cores other work also uses, several threads per library wait on each other at every operator
(the latency then hardly depends on the batch); one thread shows the compute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

# Run from a checkout: the checkout's package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402

PERSONS = 2
NUM_CLASSES = 60


def _session_variants(threads: int) -> dict:
    """name -> onnxruntime.SessionOptions of every onnxruntime row."""
    import onnxruntime

    def options(**settings):
        opts = onnxruntime.SessionOptions()
        for key, value in settings.items():
            setattr(opts, key, value)
        return opts

    level = onnxruntime.GraphOptimizationLevel
    return {
        "ort defaults": options(),
        f"ort intra_op={threads}": options(intra_op_num_threads=threads),
        f"ort intra_op={threads}, opt level extended": options(intra_op_num_threads=threads,
                                                               graph_optimization_level=level.ORT_ENABLE_EXTENDED),
        f"ort intra_op={threads}, mem pattern off": options(intra_op_num_threads=threads, enable_mem_pattern=False),
    }


def _export_preset(preset: str, folder: str, unsplit_folder: str):
    """`(torch module, clip_len, eval_size, export seconds)` of the preset's contrastive model exported to `folder`,
    and to `unsplit_folder` without the stem's channel split."""
    from modeling_skeletonclip import SkeletonClipModel, fast_slowonly
    from modeling_skeletonclip.onnx_export import ExportedSkeletonClip, encode_class_texts, export_onnx
    from modeling_skeletonclip.presets import preset_config

    config_kwargs, clip_len = preset_config(preset)
    torch.manual_seed(0)
    model, tokenizer = SkeletonClipModel.from_text_pretrained(
        None, id2label={i: f"action {i}" for i in range(NUM_CLASSES)}, clip_len=clip_len, **config_kwargs
    )
    model.eval()
    start = time.perf_counter()
    export_onnx(model, folder)
    export_seconds = time.perf_counter() - start
    block = fast_slowonly.EXPORT_CHANNEL_BLOCK
    try:
        fast_slowonly.EXPORT_CHANNEL_BLOCK = 1 << 30  # no channel count reaches it: nothing is split
        export_onnx(model, unsplit_folder)
    finally:
        fast_slowonly.EXPORT_CHANNEL_BLOCK = block
    texts = [model.config.text_template.format(model.config.id2label[i]) for i in range(NUM_CLASSES)]
    graph = ExportedSkeletonClip(model, encode_class_texts(model, tokenizer, texts)).eval()
    return graph, clip_len, tuple(model.config.heatmap_config.eval_size), export_seconds


def _inputs(batch: int, clip_len: int, eval_size, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    height, width = eval_size
    keypoints = torch.rand(batch, PERSONS, clip_len, 17, 2, generator=g) * torch.tensor([width - 1.0, height - 1.0])
    scores = torch.rand(batch, PERSONS, clip_len, 17, generator=g) * 0.7 + 0.3
    return keypoints, scores


def benchmark_onnx(presets=("small", "full"), batches=(1, 8), repeats: int = 10, warmup: int = 2) -> dict:
    """Every number of the row: per preset, the export seconds, and per batch and row the median latency (ms),
    clips/s and the ratio to torch; the largest probability difference between torch and onnxruntime."""
    import onnxruntime

    from modeling_skeletonclip.onnx_export import ONNX_FILE

    threads = torch.get_num_threads()
    results = {"torch_threads": threads, "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
               "repeats": repeats, "presets": {}}
    for preset in presets:
        with tempfile.TemporaryDirectory() as folder:
            unsplit = os.path.join(folder, "unsplit")
            graph, clip_len, eval_size, export_seconds = _export_preset(preset, folder, unsplit)
            variants = _session_variants(threads)
            sessions = {name: onnxruntime.InferenceSession(os.path.join(folder, ONNX_FILE), sess_options=options,
                                                           providers=["CPUExecutionProvider"])
                        for name, options in variants.items()}
            sessions[f"ort intra_op={threads}, stem unsplit"] = onnxruntime.InferenceSession(
                os.path.join(unsplit, ONNX_FILE), sess_options=variants[f"ort intra_op={threads}"],
                providers=["CPUExecutionProvider"])
            runs = {}
            max_difference = 0.0
            for batch in batches:
                keypoints, scores = _inputs(batch, clip_len, eval_size)
                mirrored = torch.arange(batch) % 2 == 1  # flip-doubled views, as in the test protocol
                feeds = {"keypoints": keypoints.numpy(), "keypoint_scores": scores.numpy(), "mirrored": mirrored.numpy()}

                def run_torch(keypoints=keypoints, scores=scores, mirrored=mirrored):  # this batch's inputs, bound now
                    with torch.no_grad():
                        return graph(keypoints, scores, mirrored).numpy()

                runs[batch] = {"torch": run_torch}
                for name, session in sessions.items():
                    runs[batch][name] = lambda session=session, feeds=feeds: session.run(None, feeds)[0]
                expected = run_torch()
                for name in sessions:
                    max_difference = max(max_difference, float(abs(runs[batch][name]() - expected).max()))
            times = {(batch, name): [] for batch in batches for name in runs[batches[0]]}
            for round_index in range(warmup + repeats):
                for (batch, name), measured in times.items():
                    start = time.perf_counter()
                    runs[batch][name]()
                    if round_index >= warmup:
                        measured.append(time.perf_counter() - start)
        entry = {"clip_len": clip_len, "eval_size": list(eval_size), "export_s": export_seconds,
                 "max_abs_probability_difference": max_difference, "batches": {}}
        for batch in batches:
            torch_latency = statistics.median(times[(batch, "torch")])
            entry["batches"][str(batch)] = {
                name: {"latency_ms": statistics.median(times[(batch, name)]) * 1e3,
                       "clips_per_s": batch / statistics.median(times[(batch, name)]),
                       "vs_torch": torch_latency / statistics.median(times[(batch, name)])}
                for name in runs[batch]
            }
        results["presets"][preset] = entry
    return results


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """`(row name, clips/s, ratio to torch, note)` of every measurement."""
    rows = []
    for preset, entry in results["presets"].items():
        for batch, measured in entry["batches"].items():
            for name, row in measured.items():
                rows.append((f"{preset} batch {batch}: {name}", f"{row['clips_per_s']:,.1f}",
                             f"{row['vs_torch']:.2f}x", f"{row['latency_ms']:,.1f} ms"))
        rows.append((f"{preset}: export", "", "", f"{entry['export_s']:.0f} s; max |p_ort - p_torch| "
                                                    f"{entry['max_abs_probability_difference']:.1e}"))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="small,full")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch threads, and onnxruntime's intra-op threads")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = benchmark_onnx(presets=tuple(args.presets.split(",")),
                             batches=tuple(int(b) for b in args.batches.split(",")), repeats=args.repeats,
                             warmup=args.warmup)
    print(f"torch {results['torch']} ({results['torch_threads']} threads) vs onnxruntime {results['onnxruntime']}, "
          f"median of {results['repeats']} interleaved repeats")
    width = max(len(row[0]) for row in table_rows(results))
    for name, clips, ratio, note in table_rows(results):
        print(f"{name:<{width}}  {clips:>10} clips/s  {ratio:>6} vs torch  {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
