"""The optimisation a training run gets when its arguments do not say: one recipe per model type, an epoch count
chosen from the size of the training set, evaluation every epoch and the best checkpoint kept. TrainingArguments'
own defaults (3 epochs at lr 5e-5) leave these models untrained; every value here is overridden by an argument given
on the command line or in a recipe file."""

import math

# The reference runs' optimisation of the skeleton-text models (SPEC §4): AdamW, cosine decay per step after a linear
# warm-up from 0.1 x lr over 2 of 24 epochs, gradient-norm clip 40. The warm-up's start and the per-module ratios
# (video encoder wd x0.9, text encoder lr x0.01) are SkeletonClipTrainingArguments' own defaults.
CONTRASTIVE_RECIPE = {
    "optim": "adamw_torch_fused",
    "learning_rate": 1e-3,
    "weight_decay": 0.01,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 2 / 24,
    "max_grad_norm": 40.0,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 32,
    "logging_steps": 10,  # points enough for the learning curves (the Trainer's 500 leaves two in 1,000 steps)
}

# pyskl's PoseC3D optimisation: SGD with Nesterov momentum, weight decay 3e-4 on every weight, cosine decay without
# warm-up, gradient-norm clip 40. AdamW at 1e-3 left the classifier near chance on small real data where this reached
# the contrastive models' accuracy (docs/design.md, "Training recipes").
CLASSIFIER_RECIPE = {
    "optim": "sgd",
    "optim_args": "momentum=0.9,nesterov=True",
    "weight_decay": 3e-4,
    "video_encoder_weight_decay_ratio": 1.0,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.0,
    "max_grad_norm": 40.0,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 32,
    "logging_steps": 10,  # points enough for the learning curves (the Trainer's 500 leaves two in 1,000 steps)
}
# Giving one of these without `--optim sgd` keeps a classifier on AdamW (a recipe file written for AdamW, such as the
# demo's), with the rest of the AdamW recipe: SGD's values would not fit the given ones.
OPTIMISER_ARGUMENTS = ("optim", "optim_args", "learning_rate", "weight_decay")
# SGD's rate for 16 clips a step, scaled linearly with the clips a step actually sees (pyskl: 0.4 for 256).
CLASSIFIER_LR_PER_16_CLIPS = 0.05

# Evaluation every epoch; the best checkpoint by top-1 is kept and loaded at the end. Applied as a group, only when no
# argument of the group is given, because the Trainer refuses mismatched evaluation and save strategies.
EVALUATION_RECIPE = {
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "load_best_model_at_end": True,
    "metric_for_best_model": "top1_accuracy",
    "greater_is_better": True,
    "save_total_limit": 2,
}
EVALUATION_ARGUMENTS = ("eval_strategy", "save_strategy", "save_steps", "eval_steps", "load_best_model_at_end",
                        "metric_for_best_model", "save_total_limit")

# Epochs: about TARGET_STEPS optimisation steps, within [MIN_EPOCHS, MAX_EPOCHS]. A few hundred clips (25 steps an
# epoch) get 40 epochs; NTU-sized sets the minimum. MAX_EPOCHS is the reference's 24 epochs over a 10x repeated set.
TARGET_STEPS = 1000
MIN_EPOCHS = 10
MAX_EPOCHS = 240


def recipe_for(model_type: str, clips_per_step: int, evaluates: bool, zero_shot: bool = False) -> dict:
    """The default arguments of a training run: the model type's optimisation (the classifier's learning rate for
    `clips_per_step` clips an optimisation step) and, when the run `evaluates`, evaluation every epoch with the best
    checkpoint kept, except in `zero_shot` runs: their evaluation classes are the unseen ones, and choosing a
    checkpoint by their accuracy would tune on them."""
    if model_type == "classifier":
        recipe = dict(CLASSIFIER_RECIPE, learning_rate=CLASSIFIER_LR_PER_16_CLIPS * clips_per_step / 16)
    else:
        recipe = dict(CONTRASTIVE_RECIPE)
    if evaluates:
        recipe.update(EVALUATION_RECIPE)
        if zero_shot:
            for key in ("load_best_model_at_end", "metric_for_best_model", "greater_is_better"):
                del recipe[key]
    return recipe


def epochs_for(num_clips: int, clips_per_step: int) -> int:
    """Epochs that make about TARGET_STEPS optimisation steps over `num_clips` training clips, within
    [MIN_EPOCHS, MAX_EPOCHS]."""
    steps_per_epoch = max(1, math.ceil(num_clips / max(1, clips_per_step)))
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch))))


# What a run's recipe file records: the optimisation, its schedule, the batch and the checkpoint choice.
RECIPE_ARGUMENTS = (
    "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "optim",
    "optim_args", "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "lr_scheduler_type", "warmup_steps",
    "warmup_start_ratio", "max_grad_norm", "video_encoder_lr_ratio", "video_encoder_weight_decay_ratio",
    "text_encoder_lr_ratio", "text_encoder_weight_decay_ratio", "head_lr_ratio", "freeze_text_encoder",
    "label_smoothing_factor", "bf16", "fp16", "seed", "eval_strategy", "save_strategy", "load_best_model_at_end",
    "metric_for_best_model",
)


def clips_per_step(training_args, per_device_batch: int | None = None) -> int:
    """Clips one optimisation step sees over all processes (with `per_device_batch` instead of the arguments')."""
    batch = per_device_batch if per_device_batch is not None else training_args.per_device_train_batch_size
    return batch * training_args.world_size * training_args.gradient_accumulation_steps


def effective_recipe(training_args) -> dict:
    """The recipe a run trains with, as JSON values (enums by their value), with the processes it runs on."""
    recipe = {}
    for name in RECIPE_ARGUMENTS:
        value = getattr(training_args, name)
        recipe[name] = getattr(value, "value", value)
    recipe["world_size"] = training_args.world_size
    return recipe


def describe_recipe(recipe: dict, defaulted) -> str:
    """One line per argument, the defaults of the recipe marked, for the log at the start of training."""
    width = max(len(name) for name in recipe)
    lines = [f"  {name:<{width}}  {value}{'  (default recipe)' if name in defaulted else ''}"
             for name, value in recipe.items()]
    return "\n".join(lines)
