"""What the training command refuses: a NaN or infinite loss stops training with an error naming the step (or skips
the step when asked), a model with non-finite weights is never saved, and hyper-parameters or arguments that cannot
train are reported as one line and exit status 2 before any data are read or any step is trained."""

import json
import math
import os

import pytest
import torch
import transformers
from helpers import tiny_training_run
from safetensors.torch import load_file

from modeling_skeletonclip import SkeletonClipModel
from modeling_skeletonclip.cli import main as command
from modeling_skeletonclip.trainer import NonFiniteTrainingError, SkeletonClipTrainer, SkeletonClipTrainingArguments


@pytest.fixture(scope="module")
def script():
    from modeling_skeletonclip import run_training

    return run_training


@pytest.fixture(scope="module")
def run_args(tmp_path_factory):
    return tiny_training_run(tmp_path_factory.mktemp("checks"))


@pytest.fixture
def nan_loss_at_step(monkeypatch):
    """Makes the loss of the given training step NaN (the forward pass itself is untouched)."""

    def patch(step):
        compute_loss = transformers.Trainer.compute_loss

        def nan_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = compute_loss(self, model, inputs, True, num_items_in_batch)
            if model.training and self.state.global_step + 1 == step:
                loss = loss * float("nan")
            return (loss, outputs) if return_outputs else loss

        monkeypatch.setattr(transformers.Trainer, "compute_loss", nan_loss)

    return patch


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err[-3000:]
    return errors[0]


def test_a_nan_loss_stops_training_naming_the_step_and_saves_no_model(run_args, tmp_path, nan_loss_at_step, capsys):
    nan_loss_at_step(3)
    out = tmp_path / "run"
    assert command(["train", *run_args(out, "--num_train_epochs", "2", "--save_steps", "2")]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: The training loss is nan at step 3 (epoch 0.67): training stopped"), line
    assert "--skip_nonfinite_loss_steps" in line
    files = set(os.listdir(out))
    assert "model.safetensors" not in files and "checkpoint-4" not in files
    weights = load_file(str(out / "checkpoint-2" / "model.safetensors"))  # saved before the NaN, finite
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())


def test_skip_nonfinite_loss_steps_leaves_the_weights_of_that_step_alone(script, run_args, tmp_path, nan_loss_at_step,
                                                                         caplog):
    nan_loss_at_step(3)
    out = tmp_path / "run"
    with caplog.at_level("WARNING"):
        script.main(run_args(out, "--max_steps", "4", "--save_steps", "1", "--skip_nonfinite_loss_steps"))
    assert "Step 3 skipped (--skip_nonfinite_loss_steps): its loss is not finite." in caplog.text
    before, after = (load_file(str(out / f"checkpoint-{step}" / "model.safetensors")) for step in (2, 3))
    parameters = [k for k in before if "running_" not in k and "num_batches_tracked" not in k]
    assert parameters and all(torch.equal(before[k], after[k]) for k in parameters)
    final = load_file(str(out / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in final.values() if t.is_floating_point())
    assert not all(torch.equal(after[k], final[k]) for k in parameters)  # step 4 trained again
    assert json.load(open(out / "trainer_state.json"))["global_step"] == 4


def test_a_model_with_nonfinite_weights_is_never_saved(tiny_config, minilm_tokenizer, tmp_path):
    model = SkeletonClipModel(tiny_config)
    with torch.no_grad():
        model.text_projection.weight[0, 0] = float("inf")
    args = SkeletonClipTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    trainer = SkeletonClipTrainer(model=model, args=args, processing_class=minilm_tokenizer)
    with pytest.raises(NonFiniteTrainingError, match=r"NaN or infinite weights after step 0 \(1 tensors, e.g. "
                                                     r"text_projection.weight\): not saved to "):
        trainer.save_model(str(tmp_path / "model"))
    assert not os.path.exists(tmp_path / "model" / "model.safetensors")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--learning_rate", "nan"], "--learning_rate must be a finite number > 0, got nan."),
        (["--learning_rate", "0"], "--learning_rate must be a finite number > 0, got 0.0."),
        (["--learning_rate", "inf"], "--learning_rate must be a finite number > 0, got inf."),
        (["--weight_decay", "-0.1"], "--weight_decay must be a finite number >= 0, got -0.1."),
        (["--warmup_steps", "nan"], "--warmup_steps must be a step count, or a fraction of the steps below 1"),
        (["--warmup_start_ratio", "1.5"], "--warmup_start_ratio must be in [0, 1], got 1.5."),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1, got 0."),
        (["--per_device_eval_batch_size", "0"], "--per_device_eval_batch_size must be at least 1, got 0."),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1, got 0."),
        (["--num_train_epochs", "0"], "--num_train_epochs must be a finite number > 0 (or --max_steps set), got 0.0."),
        (["--num_train_epochs", "nan"], "--num_train_epochs must be a finite number > 0"),
        (["--video_encoder_lr_ratio", "0"], "--video_encoder_lr_ratio must be a finite number > 0, got 0.0."),
        (["--text_encoder_lr_ratio", "nan"], "--text_encoder_lr_ratio must be a finite number > 0 (--freeze_text_enc"),
        (["--head_lr_ratio", "-1"], "--head_lr_ratio must be a finite number > 0, got -1.0."),
        (["--text_encoder_weight_decay_ratio", "-1"], "--text_encoder_weight_decay_ratio must be a finite number >= 0"),
        (["--max_grad_norm", "nan"], "--max_grad_norm must be a finite number >= 0 (0: no clipping), got nan."),
        (["--label_smoothing_factor", "1"], "--label_smoothing_factor must be in [0, 1), got 1.0."),
        (["--adam_beta2", "1"], "--adam_beta2 must be in [0, 1), got 1.0."),
        (["--save_steps", "0"], "--save_steps must be > 0 with --save_strategy steps, got 0."),
        (["--clip_len", "0"], "--clip_len must be at least 1, got 0."),
        (["--max_train_samples", "0"], "--max_train_samples must be at least 1, got 0."),
        (["--max_eval_samples", "-1"], "--max_eval_samples must be at least 1, got -1."),
        (["--test_num_clips", "0"], "--test_num_clips must be at least 1, got 0."),
    ],
)
def test_hyperparameters_that_cannot_train_are_refused_when_parsed(script, run_args, tmp_path, extra, message):
    with pytest.raises(script.ArgumentError) as err:
        script.parse_args(run_args(tmp_path / "out", *extra))
    assert message in str(err.value)


def test_settings_at_the_edge_of_the_ranges_are_accepted(script, run_args, tmp_path):
    _, data_args, args = script.parse_args(run_args(
        tmp_path / "out", "--num_train_epochs", "0", "--max_steps", "3", "--weight_decay", "0", "--max_grad_norm",
        "0", "--warmup_start_ratio", "0", "--warmup_steps", "0.5", "--clip_len", "1", "--max_train_samples", "1",
    ))
    assert args.max_steps == 3 and args.max_grad_norm == 0 and data_args.clip_len == 1
    assert math.isclose(args.warmup_steps, 0.5)


@pytest.fixture
def no_data_read(script, monkeypatch):
    """The run fails if it reaches the data: what these tests pass must be refused before."""

    def load_data(*args, **kwargs):
        raise AssertionError("the data were read before the bad argument was reported")

    monkeypatch.setattr(script, "load_data", load_data)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--config_overrides", "[1, 2]"], "--config_overrides must be a JSON object of config settings, got [1, 2]."),
        (["--config_overrides", '{"projection_dimm": 8}'],
         "--config_overrides: 'projection_dimm' is not a setting of SkeletonClipConfig (did you mean "
         "'projection_dim'?)."),
        (["--config_overrides", '{"video_config": {"base_channel": 8}}'],
         "--config_overrides: 'video_config.base_channel' is not a setting of SkeletonClipVideoConfig (did you mean "
         "'base_channels'?)."),
        (["--config_overrides", '{"video_config": 8}'], "--config_overrides: 'video_config' must be a JSON object"),
        (["--config_overrides", '{"text_config": {"hidden_size": 8}}'],
         "--config_overrides: the text encoder's config comes from --text_model_name_or_path"),
        (["--config_overrides", '{"projection_dim": -8}'],
         "The model config refuses these settings: Class validation error for validator 'validate_architecture': "
         "ValueError: `projection_dim` must be positive, got -8."),
        (["--config_overrides", '{"text_max_length": 0}'], "`text_max_length` must be positive, got 0."),
        (["--config_overrides", '{"frame_embed_dim": "16"}'],
         "The model config refuses these settings: Validation error for field 'frame_embed_dim': TypeError: Field "
         "'frame_embed_dim' expected int, got str"),
        (["--config_overrides", '{"video_config": {"stage_blocks": [1, 1]}}'],
         "ValueError: `stage_planes` has 3 entries but there are 2 stages."),
        (["--objective", "itx"], "`objective` must be one of"),
        (["--do_predict", "--candidate_labels", "EMPTY"], "--candidate_labels EMPTY holds no class texts"),
        (["--do_predict", "--candidate_labels", "/no/labels.txt"], "--candidate_labels /no/labels.txt does not exist."),
        (["--do_predict", "--model_type", "classifier", "--candidate_labels", "EMPTY"],
         "--candidate_labels needs the contrastive model"),
        (["--class_split_file", "NO_SEEN"], "--class_split_file NO_SEEN: 'seen' must be a non-empty list of class "
                                            "indices, got None."),
        (["--class_split_file", "BAD_JSON"], "--class_split_file BAD_JSON is not valid JSON: "),
        (["--class_split_file", "LIST"], "--class_split_file LIST must hold a JSON object"),
    ],
)
def test_bad_arguments_are_one_line_before_any_data_are_read(run_args, tmp_path, no_data_read, capsys, extra,
                                                              message):
    files = {"EMPTY": "\n  \n", "NO_SEEN": '{"unseen": [1, 2]}', "BAD_JSON": '{"seen": [1,', "LIST": "[[0], [1]]"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    replace = {name: str(tmp_path / name) for name in files}
    argv = [replace.get(a, a) for a in run_args(tmp_path / "out", *extra)]
    assert command(["train", *argv]) == 2
    for name, path in replace.items():
        message = message.replace(name, path)
    line = one_error_line(capsys)
    assert line.startswith("error: ") and message in line, line


def test_a_malformed_argument_file_is_one_line(tmp_path, capsys):
    (tmp_path / "recipe.json").write_text('{"do_train": true,')
    (tmp_path / "list.json").write_text('["--do_train"]')
    assert command(["train", str(tmp_path / "recipe.json")]) == 2
    assert one_error_line(capsys).startswith(f"error: Argument file {tmp_path / 'recipe.json'} is not valid JSON: ")
    assert command(["train", str(tmp_path / "list.json")]) == 2
    assert one_error_line(capsys) == (f"error: Argument file {tmp_path / 'list.json'} must hold a JSON object of "
                                      "arguments, got list.")


def test_a_train_file_that_is_a_folder_is_named_as_such(run_args, tmp_path, capsys):
    argv = run_args(tmp_path / "out")
    argv[argv.index("--train_file") + 1] = str(tmp_path)
    assert command(["train", *argv]) == 2
    assert one_error_line(capsys) == f"error: --train_file {tmp_path} is a folder, not a pose pickle file."


def test_a_nan_learning_rate_is_refused_by_the_command(run_args, tmp_path, capsys):
    """It used to train to the end and save a model of NaN tensors with exit status 0."""
    assert command(["train", *run_args(tmp_path / "out", "--learning_rate", "nan")]) == 2
    assert one_error_line(capsys) == "error: --learning_rate must be a finite number > 0, got nan."
    assert not os.path.exists(tmp_path / "out")


def test_a_run_with_nothing_to_do_is_one_line(tmp_path, capsys):
    from modeling_skeletonclip.run_training import main, report_bad_input

    assert report_bad_input(main, ["--max_steps", "8", "--output_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Nothing to do: pass --do_train, --do_eval and/or --do_predict" in err[0]
