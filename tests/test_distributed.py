"""2 processes x batch b give the loss and gradients of 1 process x batch 2b (gloo on CPU)."""

import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import pytest
from helpers import TINY_HEATMAP, TINY_TEXT, TINY_VIDEO, random_keypoints

from modeling_skeletonclip import SkeletonClipConfig, SkeletonClipModel

BATCH = 3  # per process


def make_model():
    torch.manual_seed(0)
    config = SkeletonClipConfig(
        video_config=TINY_VIDEO, text_config=dict(TINY_TEXT, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        heatmap_config=TINY_HEATMAP, frame_embed_dim=24, projection_dim=16,
    )
    model = SkeletonClipModel(config)
    with torch.no_grad():  # zero-init residual BNs would leave most of the encoder without gradients
        for module in model.modules():
            if getattr(module, "zero_init", False):
                module.weight.fill_(0.5)
    # Training mode (the contrastive loss spans every process's features in training), BatchNorm in eval mode:
    # per-process batch statistics legitimately differ from whole-batch ones.
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.eval()
    return model


def global_batch():
    keypoints, scores = random_keypoints(2 * BATCH, persons=2, seed=1)
    labels = torch.tensor([0, 1, 0, 2, 1, 1])
    input_ids = torch.randint(1000, 3000, (2 * BATCH, 5), generator=torch.Generator().manual_seed(2))
    return keypoints, scores, labels, input_ids


def worker(rank, world_size, port, result_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    model = make_model()
    keypoints, scores, labels, input_ids = global_batch()
    part = slice(rank * BATCH, (rank + 1) * BATCH)
    # The model's own loss: in training on several processes it spans the clips and texts of all of them.
    loss = model(keypoints=keypoints[part], keypoint_scores=scores[part], input_ids=input_ids[part],
                 labels=labels[part]).loss
    loss.backward()
    # What DDP does after backward: average every gradient over the processes. Done by hand so that the only
    # collectives are issued in one fixed order (the Trainer's DDP path is covered by the torchrun test).
    for param in model.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad /= world_size
    if rank == 0:
        torch.save({"loss": loss.detach(), "grads": {n: p.grad for n, p in model.named_parameters()}}, result_path)
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(result_path, timeout_s=180, attempts=2):
    """mp.spawn with a deadline: a stuck rendezvous becomes a retry, then a failure, never a hung CI."""
    for _ in range(attempts):
        context = mp.start_processes(
            worker, args=(2, free_port(), result_path), nprocs=2, join=False, start_method="spawn"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if context.join(timeout=2):
                return
        for process in context.processes:
            if process.is_alive():
                process.kill()
    pytest.fail(f"the 2-process run did not finish within {timeout_s} s, {attempts} times")


def test_two_processes_match_one_process_with_the_global_batch(tmp_path):
    result_path = str(tmp_path / "ddp.pt")
    run_two_processes(result_path)
    ddp_result = torch.load(result_path)

    model = make_model()
    keypoints, scores, labels, input_ids = global_batch()
    out = model(keypoints=keypoints, keypoint_scores=scores, input_ids=input_ids, labels=labels)
    out.loss.backward()

    torch.testing.assert_close(ddp_result["loss"], out.loss.detach(), rtol=1e-5, atol=1e-6)
    checked = 0
    for name, param in model.named_parameters():
        if param.grad is None:
            assert ddp_result["grads"][name] is None or ddp_result["grads"][name].abs().max() == 0, name
            continue
        # fp32 summation order differs between the two runs: compare relative to the gradient's size (attention
        # key biases have a mathematically zero gradient, hence the small absolute floor).
        error = (ddp_result["grads"][name] - param.grad).norm()
        assert error <= 1e-4 * param.grad.norm() + 1e-6, (name, error.item(), param.grad.norm().item())
        checked += 1
    assert checked == sum(1 for p in model.parameters())


@pytest.mark.slow
def test_run_script_under_torchrun(tmp_path):
    """The training script itself under `torchrun --nproc_per_node 2` (gloo on CPU)."""
    import json
    import subprocess
    import sys

    from helpers import REPO_ROOT

    from modeling_skeletonclip.synthetic_poses import write_synthetic_poses

    write_synthetic_poses(str(tmp_path / "poses.pkl"), num_train_per_class=2, num_val_per_class=1)
    overrides = {"video_config": {"base_channels": 8, "stage_planes": [8, 8, 8], "stage_blocks": [1, 1, 1]},
                 "heatmap_config": {"train_size": [16, 16], "eval_size": [16, 16]}}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           f"{REPO_ROOT}/scripts/run_skeleton_clip.py", "--train_file", str(tmp_path / "poses.pkl"),
           "--label_map", str(tmp_path / "labels.txt"), "--train_split", "train", "--eval_split", "val",
           "--output_dir", str(tmp_path / "out"), "--preset", "small", "--config_overrides", json.dumps(overrides),
           "--clip_len", "8", "--per_device_train_batch_size", "4", "--do_train", "--do_eval",
           "--num_train_epochs", "1", "--report_to", "none", "--use_cpu", "--save_strategy", "no",
           "--dataset_cache_dir", str(tmp_path / "cache")]
    # The wrapper imports the installed package: put this checkout's first.
    pythonpath = os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}
    subprocess.run(cmd, check=True, cwd=tmp_path, timeout=600, env=env)
    metrics = json.load(open(tmp_path / "out" / "all_results.json"))
    assert "eval_top1_accuracy" in metrics and "train_loss" in metrics
