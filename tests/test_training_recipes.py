"""The recipe a training run gets when its arguments do not give one: the reference AdamW optimisation for the
contrastive models, pyskl's SGD for the classifier, epochs from the training set's size, evaluation every epoch with
the best checkpoint loaded at the end; every given argument wins; the recipe is logged and written beside the model."""

import json
import os

import pytest
import torch
from helpers import tiny_training_run
from safetensors.torch import load_file

from modeling_skeletonclip import run_training, training_recipes
from modeling_skeletonclip.run_training import parse_args


DATA = ["--train_file", "poses.pkl", "--train_split", "train", "--eval_split", "val", "--output_dir", "out"]


def test_contrastive_runs_get_the_reference_optimisation_and_evaluation_every_epoch():
    _, _, args = parse_args(DATA + ["--do_train", "--do_eval"])
    assert args.optim.value == "adamw_torch_fused"
    assert (args.learning_rate, args.weight_decay, args.max_grad_norm) == (1e-3, 0.01, 40.0)
    assert args.lr_scheduler_type.value == "cosine" and args.warmup_steps == pytest.approx(2 / 24)
    assert (args.warmup_start_ratio, args.video_encoder_weight_decay_ratio, args.text_encoder_lr_ratio) == (0.1, 0.9, 0.01)
    assert args.per_device_train_batch_size == 16 and args.logging_steps == 10
    assert args.eval_strategy.value == "epoch" and args.save_strategy.value == "epoch"
    assert args.load_best_model_at_end and args.metric_for_best_model == "top1_accuracy" and args.greater_is_better
    assert "learning_rate" in args.defaulted_arguments and "num_train_epochs" in args.defaulted_arguments


def test_the_classifier_gets_sgd_with_the_rate_scaled_to_the_clips_of_a_step():
    _, _, args = parse_args(DATA + ["--do_train", "--model_type", "classifier"])
    assert args.optim.value == "sgd" and args.optim_args == "momentum=0.9,nesterov=True"
    assert (args.learning_rate, args.weight_decay, args.warmup_steps) == (0.05, 3e-4, 0.0)
    assert args.video_encoder_weight_decay_ratio == 1.0
    assert args.eval_strategy.value == "no"  # no --do_eval: nothing to evaluate every epoch
    _, _, args = parse_args(DATA + ["--do_train", "--model_type", "classifier", "--per_device_train_batch_size", "8",
                                    "--gradient_accumulation_steps", "4"])
    assert args.learning_rate == pytest.approx(0.05 * 32 / 16)


def test_a_classifier_given_an_adamw_rate_keeps_adamw_and_one_given_sgd_gets_its_momentum():
    _, _, args = parse_args(["synthetic_demo.json", "--model_type", "classifier"])  # the demo: AdamW at 1e-3
    assert args.optim.value == "adamw_torch_fused" and args.learning_rate == 1e-3 and args.optim_args is None
    _, _, args = parse_args(DATA + ["--do_train", "--model_type", "classifier", "--optim", "sgd"])
    assert args.optim_args == "momentum=0.9,nesterov=True" and args.learning_rate == 0.05


def test_given_arguments_win_and_the_evaluation_group_is_taken_whole_or_not_at_all(tmp_path):
    _, _, args = parse_args(DATA + ["--do_train", "--do_eval", "--learning_rate", "0.02", "--num_train",
                                    "7", "--save_strategy", "steps", "--save_steps", "5"])
    assert args.learning_rate == 0.02 and args.num_train_epochs == 7  # an abbreviated flag counts as given
    assert "num_train_epochs" not in args.defaulted_arguments and "learning_rate" not in args.defaulted_arguments
    assert args.eval_strategy.value == "no" and not args.load_best_model_at_end
    assert args.weight_decay == 0.01  # the rest of the recipe still applies
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"do_train": True, "weight_decay": 0.5, "max_steps": 9}))
    _, _, args = parse_args([str(recipe)] + DATA)
    assert args.weight_decay == 0.5 and args.max_steps == 9 and "num_train_epochs" not in args.defaulted_arguments
    _, _, args = parse_args(DATA + ["--do_eval"])  # no training: no recipe
    assert args.defaulted_arguments == () and args.learning_rate == 5e-5


def test_zero_shot_runs_evaluate_every_epoch_but_never_choose_a_checkpoint_by_the_unseen_classes():
    _, _, args = parse_args(DATA + ["--do_train", "--do_eval", "--class_split_file", "split.json"])
    assert args.eval_strategy.value == "epoch" and not args.load_best_model_at_end


def test_the_packaged_demo_recipe_is_unchanged_by_the_defaults():
    _, _, args = parse_args([])
    assert set(args.defaulted_arguments) <= {"optim"} and args.optim.value == "adamw_torch_fused"
    assert args.num_train_epochs == 20 and args.eval_strategy.value == "no"


@pytest.mark.parametrize("clips, per_step, epochs", [(388, 16, 40), (40_000, 32, 10), (12, 4, 240), (1_000, 16, 16)])
def test_epochs_make_about_a_thousand_steps_within_bounds(clips, per_step, epochs):
    assert training_recipes.epochs_for(clips, per_step) == epochs
    steps = -(-clips // per_step) * epochs
    assert epochs in (training_recipes.MIN_EPOCHS, training_recipes.MAX_EPOCHS) or 1000 <= steps < 1000 + -(-clips // per_step)


def test_the_recipe_is_logged_and_written_with_epochs_from_the_training_set(tmp_path, caplog):
    _, _, args = parse_args(DATA[:-1] + [str(tmp_path), "--do_train", "--model_type", "classifier"])
    model = torch.nn.Module()
    with caplog.at_level("INFO"):
        run_training.apply_recipe(args, model, 388)
    assert args.num_train_epochs == 40
    recipe = json.loads((tmp_path / "training_recipe.json").read_text())
    assert recipe["num_train_epochs"] == 40 and recipe["optim"] == "sgd" and recipe["learning_rate"] == 0.05
    assert recipe["world_size"] == 1
    assert "Training recipe (classifier model, 388 training clips)" in caplog.text
    assert "learning_rate" in caplog.text and "0.05  (default recipe)" in caplog.text


@pytest.fixture(scope="module")
def run_args(tmp_path_factory):
    return tiny_training_run(tmp_path_factory.mktemp("recipe"))


def test_a_run_evaluates_every_epoch_and_ends_with_the_best_checkpoint(run_args, tmp_path):
    out = tmp_path / "run"
    run_training.main(run_args(out, "--do_eval", "--eval_split", "val", "--num_train_epochs", "3",
                               "--learning_rate", "0.05"))
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [e for e in state["log_history"] if "eval_top1_accuracy" in e]
    assert [e["epoch"] for e in evals] == [1.0, 2.0, 3.0]
    best = state["best_model_checkpoint"]
    assert state["best_metric"] == max(e["eval_top1_accuracy"] for e in evals)
    best_epoch = next(e["epoch"] for e in evals if e["eval_top1_accuracy"] == state["best_metric"])  # the first best
    assert os.path.basename(best) == f"checkpoint-{int(best_epoch) * 3}"
    final, chosen = load_file(out / "model.safetensors"), load_file(os.path.join(best, "model.safetensors"))
    assert final.keys() == chosen.keys() and all(torch.equal(final[k], chosen[k]) for k in final)
    assert json.loads((out / "training_recipe.json").read_text())["load_best_model_at_end"] is True
