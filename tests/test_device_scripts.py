"""The GPU check scripts (`scripts/device/`) run where device time is scarce: their shell syntax and every flag
they pass to the benchmark and profile scripts are checked here, so a renamed flag fails in CI, not on the GPU."""

import os
import re
import shlex
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE = os.path.join(ROOT, "scripts", "device")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import benchmark  # noqa: E402
import check_fused_training  # noqa: E402
import profile_encoder  # noqa: E402


@pytest.mark.parametrize("name", sorted(os.listdir(DEVICE)))
def test_shell_syntax(name):
    subprocess.run(["bash", "-n", os.path.join(DEVICE, name)], check=True)


def _python_calls(path):
    """`(script, argv)` of every `python3 scripts/X.py ...` call in a shell script (continuation lines joined)."""
    text = open(path).read().replace("\\\n", " ")
    calls = []
    for line in text.splitlines():
        match = re.search(r"python3 scripts/(\w+)\.py(.*)", line)
        if match:
            lexer = shlex.shlex(match.group(2), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            argv = []
            for token in lexer:  # the arguments end where a pipe or redirection starts ("2>&1" lexes as "2", ">&")
                if token[0] in "|>&<;":
                    argv = argv[:-1] if argv and argv[-1].isdigit() else argv
                    break
                argv.append(token)
            calls.append((match.group(1), [arg.replace("$OUT", "/tmp") for arg in argv]))
    return calls


PARSERS = {"benchmark": benchmark.parse_args, "profile_encoder": profile_encoder.parse_args,
           "check_fused_training": check_fused_training.parse_args}


@pytest.mark.parametrize(
    "name, scripts",
    [("issue6_check.sh", ["benchmark", "profile_encoder", "profile_encoder"]),
     ("issue6_inference.sh", ["benchmark"]),
     ("issue6_train_check.sh", ["profile_encoder"] * 3),
     ("fused_training_check.sh", ["check_fused_training", "benchmark", "profile_encoder"])],
)
def test_device_scripts_use_existing_flags(name, scripts):
    calls = _python_calls(os.path.join(DEVICE, name))
    assert [script for script, _ in calls] == scripts
    for script, argv in calls:
        PARSERS[script](argv)  # exits with the argparse error on an unknown or invalid flag


def test_every_device_script_is_checked():
    checked = {"issue6_check.sh", "issue6_inference.sh", "issue6_train_check.sh", "fused_training_check.sh",
               "prepare_packages.sh", "fused_default_check.sh", "install_packages.sh"}  # the last three call no
    # script of ours with flags
    assert set(os.listdir(DEVICE)) == checked


def test_issue6_inference_runs_inference_only():
    assert benchmark.parse_args(_python_calls(os.path.join(DEVICE, "issue6_inference.sh"))[0][1]).inference_only


def test_fused_training_check_installs_cudnn_frontend_and_measures_train_only():
    prepare = open(os.path.join(DEVICE, "prepare_packages.sh")).read()
    assert "nvidia-cudnn-frontend==" in prepare  # the cuDNN graphs' Python API, carried in .whl/
    calls = _python_calls(os.path.join(DEVICE, "fused_training_check.sh"))
    args = benchmark.parse_args(calls[1][1])
    assert args.train_only and profile_encoder.parse_args(calls[2][1]).fused_training
    # The rows its --encoder-rows pattern selects on a GPU (the two reference rows are always kept).
    names = [variant.name for variant in benchmark.encoder_variants(args.compile_modes, torch.device("cuda"))
             if not variant.fused_epilogues]
    assert [name for name in names if args.encoder_rows.search(name)] == [
        "fast bf16", "fast bf16, fused conv-BN (training)", "fast bf16 + torch.compile",
        "fast bf16 + torch.compile, fused conv-BN (training)", "fast bf16 + torch.compile, unfolded stem",
        "fast bf16 + torch.compile, fused conv-BN (training) + unfolded stem"]
