"""Training that survives kills and full disks: a run killed anywhere and rerun ends with the weights of the run that
was never interrupted, bit for bit; a checkpoint that a kill or a full disk left incomplete is skipped, never resumed
from. Runs are tiny (3 steps an epoch, 2 epochs, a checkpoint every 2 steps: checkpoint-2 and checkpoint-4 fall
inside an epoch); the killed runs are child processes."""

import json
import os
import shutil

import pytest
from helpers import assert_same_weights, run_training_process, tiny_training_run

from modeling_skeletonclip.checkpoints import MANIFEST_NAME, checkpoint_problem, last_complete_checkpoint

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
    assert f"Resuming from the last complete checkpoint {out / checkpoint}." in caplog.text
    assert json.load(open(out / "trainer_state.json"))["global_step"] == 6


def test_a_run_killed_inside_an_epoch_resumes_bit_identically(script, run_args, uninterrupted, tmp_path, caplog):
    """SIGKILL right after checkpoint-4 (step 1 of the second epoch's 3), rerun: the batch drawn first after the
    resume gets the augmentation and dropout of the uninterrupted run."""
    out = tmp_path / "run"
    killed = run_training_process(run_args(out), kill_after_save=4)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert "checkpoint-6" not in os.listdir(out) and checkpoint_problem(str(out / "checkpoint-4")) is None
    rerun_resumes_from(script, run_args, out, "checkpoint-4", caplog)
    assert_same_weights(uninterrupted / "model.safetensors", out / "model.safetensors")


def test_a_kill_while_a_checkpoint_is_written_leaves_it_incomplete_and_the_rerun_skips_it(
    script, run_args, uninterrupted, tmp_path, caplog
):
    """SIGKILL after checkpoint-4's model files, before its optimizer and trainer state: the rerun names the
    incomplete folder and resumes from checkpoint-2 (inside the first epoch) to the uninterrupted weights."""
    out = tmp_path / "run"
    killed = run_training_process(run_args(out), kill_during_save=4)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert "model.safetensors" in os.listdir(out / "checkpoint-4")
    assert not os.path.exists(out / "checkpoint-4" / "trainer_state.json")
    rerun_resumes_from(script, run_args, out, "checkpoint-2", caplog)
    assert f"Not resuming from {out / 'checkpoint-4'}: it has no trainer_state.json" in caplog.text
    assert_same_weights(uninterrupted / "model.safetensors", out / "model.safetensors")


def truncate(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda folder: truncate(folder / "model.safetensors"), "model.safetensors has"),
        (lambda folder: truncate(folder / "optimizer.pt"), "optimizer.pt has"),
        (lambda folder: os.remove(folder / "scheduler.pt"), "scheduler.pt is missing"),
        # Written before checkpoints had a manifest: checked on the files' structure alone.
        (lambda folder: (os.remove(folder / MANIFEST_NAME), truncate(folder / "model.safetensors")),
         "model.safetensors is damaged: it has"),
        (lambda folder: (os.remove(folder / MANIFEST_NAME), truncate(folder / "rng_state.pth", 0.9)),
         "rng_state.pth is damaged: it is not a whole torch archive"),
        (lambda folder: (os.remove(folder / MANIFEST_NAME), truncate(folder / "trainer_state.json", 0.9)),
         "trainer_state.json is damaged: it is not valid JSON"),
    ],
    ids=["truncated-weights", "truncated-optimizer", "missing-scheduler", "no-manifest-truncated-weights",
         "no-manifest-truncated-rng-state", "no-manifest-truncated-state"],
)
def test_a_damaged_newest_checkpoint_is_named_and_the_one_before_it_is_resumed(
    script, run_args, uninterrupted, tmp_path, caplog, damage, reason
):
    out = tmp_path / "run"
    for name in ("checkpoint-2", "checkpoint-4"):
        shutil.copytree(uninterrupted / name, out / name)
    damage(out / "checkpoint-4")
    rerun_resumes_from(script, run_args, out, "checkpoint-2", caplog)
    assert f"Not resuming from {out / 'checkpoint-4'}: {reason}" in caplog.text
    assert_same_weights(uninterrupted / "model.safetensors", out / "model.safetensors")


def test_a_full_disk_ends_the_run_with_one_line_and_a_rerun_with_space_resumes(
    script, run_args, uninterrupted, tmp_path, caplog
):
    """Every file over 64 KiB fails to be written (as on a full disk): the run resumed from checkpoint-2 cannot write
    checkpoint-4 and exits with status 2 and one line naming it; with space again, the rerun passes over the
    half-written checkpoint-4 and ends where the uninterrupted run ended."""
    out = tmp_path / "run"
    shutil.copytree(uninterrupted / "checkpoint-2", out / "checkpoint-2")
    full = run_training_process(run_args(out), file_size_limit=64 * 1024)
    assert full.returncode == 2, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: Could not write the checkpoint {out / 'checkpoint-4'}: "), last
    assert "File too large" in last and "a rerun (with enough disk space) resumes from the newest" in last
    assert checkpoint_problem(str(out / "checkpoint-4")) is not None
    rerun_resumes_from(script, run_args, out, "checkpoint-2", caplog)
    assert "Not resuming from" in caplog.text and str(out / "checkpoint-4") in caplog.text
    assert_same_weights(uninterrupted / "model.safetensors", out / "model.safetensors")


def test_checkpoints_carry_a_manifest_of_their_files(uninterrupted):
    manifest = json.load(open(uninterrupted / "checkpoint-4" / MANIFEST_NAME))
    assert manifest["global_step"] == 4
    files = set(os.listdir(uninterrupted / "checkpoint-4")) - {MANIFEST_NAME}
    assert set(manifest["files"]) == files
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"} <= files
    assert last_complete_checkpoint(str(uninterrupted)) == str(uninterrupted / "checkpoint-6")


def test_an_explicit_incomplete_checkpoint_is_refused(script, run_args, uninterrupted, tmp_path):
    shutil.copytree(uninterrupted / "checkpoint-4", tmp_path / "checkpoint-4")
    os.remove(tmp_path / "checkpoint-4" / "trainer_state.json")
    with pytest.raises(script.ArgumentError, match=r"--resume_from_checkpoint .*checkpoint-4 is not a complete "
                                                   r"checkpoint: it has no trainer_state.json"):
        script.main(run_args(tmp_path / "run", "--resume_from_checkpoint", str(tmp_path / "checkpoint-4")))
