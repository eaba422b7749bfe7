"""Training that survives kills: a run killed anywhere and rerun ends with the weights of the run that was never
interrupted, bit for bit. Runs are tiny (3 steps an epoch, 2 epochs, a checkpoint every 2 steps: checkpoint-2 and checkpoint-4 fall
inside an epoch); the killed runs are child processes."""

import json
import os
import shutil

import pytest
from helpers import assert_same_weights, run_training_process, tiny_training_run


SAVE = ["--num_train_epochs", "2", "--save_steps", "2"]


@pytest.fixture(scope="module")
def script():
    from modeling_skeletonclip import run_training

    return run_training


@pytest.fixture(scope="module")
def run_args(tmp_path_factory):
    run_args = tiny_training_run(tmp_path_factory.mktemp("resume"))
    return lambda output_dir, *extra: run_args(output_dir, *SAVE, *extra)


@pytest.fixture(scope="module")
def uninterrupted(script, run_args, tmp_path_factory):
    """The output folder of the run that nothing interrupted."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    script.main(run_args(out))
    assert {"checkpoint-2", "checkpoint-4", "checkpoint-6", "model.safetensors"} <= set(os.listdir(out))
    return out


def rerun_resumes_from(script, run_args, out, checkpoint, caplog):
    with caplog.at_level("INFO"):
        script.main(run_args(out))
    assert f"Resuming from the last checkpoint {out / checkpoint}." in caplog.text
    assert json.load(open(out / "trainer_state.json"))["global_step"] == 6


def test_a_run_killed_inside_an_epoch_resumes_bit_identically(script, run_args, uninterrupted, tmp_path, caplog):
    """SIGKILL right after checkpoint-4 (step 1 of the second epoch's 3), rerun: the batch drawn first after the
    resume gets the augmentation and dropout of the uninterrupted run."""
    out = tmp_path / "run"
    killed = run_training_process(run_args(out), kill_after_save=4)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert "checkpoint-6" not in os.listdir(out)
    rerun_resumes_from(script, run_args, out, "checkpoint-4", caplog)
    assert_same_weights(uninterrupted / "model.safetensors", out / "model.safetensors")
