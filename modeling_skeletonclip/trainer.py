"""SkeletonClipTrainer: per-module learning rates, the model's objective in training, all-class evaluation over views."""

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch.optim.lr_scheduler import LambdaLR
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints
from transformers.utils import logging

from .checkpoints import remove_manifest, write_manifest
from .modeling_skeletonclip import SkeletonClipModel
from .pose_transforms import PoseCollator


logger = logging.get_logger(__name__)


class TrainingError(Exception):
    """Training cannot go on: a non-finite loss or model, or a checkpoint that could not be written. The message says
    what happened and where, in one line (the command reports it without a traceback)."""


class NonFiniteTrainingError(TrainingError):
    """The loss or the weights became NaN or infinite."""


class CheckpointWriteError(TrainingError):
    """A checkpoint could not be written (a full disk, a file-size limit, a vanished folder)."""


@dataclass
class SkeletonClipTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the per-module optimisation of the reference recipe (SPEC §4)."""

    video_encoder_lr_ratio: float = field(default=1.0, metadata={"help": "Video encoder lr = learning_rate x this."})
    video_encoder_weight_decay_ratio: float = field(
        default=0.9, metadata={"help": "Video encoder weight decay = weight_decay x this."}
    )
    text_encoder_lr_ratio: float = field(default=0.01, metadata={"help": "Text encoder lr = learning_rate x this."})
    text_encoder_weight_decay_ratio: float = field(
        default=0.9, metadata={"help": "Text encoder weight decay = weight_decay x this."}
    )
    head_lr_ratio: float | None = field(
        default=None,
        metadata={
            "help": "Projections, temperature and heads: lr x this. Default: 0.1 for the contrastive models (at the "
            "reference's 1.0 the class-text embeddings collapsed onto one another at 48x56x56, docs/open_problems.md), "
            "1.0 for the PoseC3D classifier."
        },
    )
    freeze_text_encoder: bool = field(default=False, metadata={"help": "Train without gradients in the text encoder."})
    warmup_start_ratio: float = field(
        default=0.1,
        metadata={"help": "Linear warm-up starts at learning_rate x this (reference: 0.1); 0 = from zero."},
    )
    gather_features_with_grad: bool = field(
        default=True,
        metadata={"help": "With several processes, compute the contrastive loss over the features of all of them."},
    )
    sync_batchnorm: bool = field(default=False, metadata={"help": "Convert BatchNorm to SyncBatchNorm (multi-GPU)."})
    skip_nonfinite_loss_steps: bool = field(
        default=False,
        metadata={
            "help": "Skip (with a warning) an optimisation step whose loss or gradients are NaN or infinite, instead "
            "of stopping training with an error naming the step."
        },
    )
    # Pose datasets carry keypoint columns that are not forward() arguments; the collator consumes them.
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep dataset columns for the collator."})

    def __post_init__(self):
        super().__post_init__()
        problem = hyperparameter_problem(self)
        if problem is not None:
            raise ValueError(problem)


def hyperparameter_problem(args) -> str | None:
    """The first optimisation setting that cannot train (NaN, a non-positive rate or size, a ratio out of range),
    named by its command-line flag; None when all of them can. Checked up front: such a run would otherwise train to
    the end and save a NaN model, or fail deep inside the Trainer."""
    positive = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
    non_negative = (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
    fraction = (lambda v: 0 <= v < 1, "in [0, 1)")
    count = (lambda v: v >= 1, "at least 1")
    checks = [
        ("learning_rate", args.learning_rate, positive),
        ("weight_decay", args.weight_decay, non_negative),
        ("video_encoder_lr_ratio", args.video_encoder_lr_ratio, positive),
        ("text_encoder_lr_ratio", args.text_encoder_lr_ratio, (positive[0], "a finite number > 0 "
                                                               "(--freeze_text_encoder freezes the text encoder)")),
        ("head_lr_ratio", args.head_lr_ratio, positive),
        ("video_encoder_weight_decay_ratio", args.video_encoder_weight_decay_ratio, non_negative),
        ("text_encoder_weight_decay_ratio", args.text_encoder_weight_decay_ratio, non_negative),
        ("warmup_steps", args.warmup_steps, (non_negative[0], "a step count, or a fraction of the steps below 1")),
        ("warmup_start_ratio", args.warmup_start_ratio, (lambda v: 0 <= v <= 1, "in [0, 1]")),
        ("max_grad_norm", args.max_grad_norm, (non_negative[0], "a finite number >= 0 (0: no clipping)")),
        ("label_smoothing_factor", args.label_smoothing_factor, fraction),
        ("adam_beta1", args.adam_beta1, fraction),
        ("adam_beta2", args.adam_beta2, fraction),
        ("adam_epsilon", args.adam_epsilon, non_negative),
        ("per_device_train_batch_size", args.per_device_train_batch_size, count),
        ("per_device_eval_batch_size", args.per_device_eval_batch_size, count),
        ("gradient_accumulation_steps", args.gradient_accumulation_steps, count),
        ("dataloader_num_workers", args.dataloader_num_workers, (lambda v: v >= 0, "at least 0")),
    ]
    for flag, value, (valid, allowed) in checks:
        if value is not None and not valid(value):  # NaN fails every comparison
            return f"--{flag} must be {allowed}, got {value}."
    if args.max_steps <= 0 and not (math.isfinite(args.num_train_epochs) and args.num_train_epochs > 0):
        return f"--num_train_epochs must be a finite number > 0 (or --max_steps set), got {args.num_train_epochs}."
    if args.save_strategy == "steps" and not args.save_steps > 0:
        return f"--save_steps must be > 0 with --save_strategy steps, got {args.save_steps}."
    return None


class _EpochCallback(TrainerCallback):
    """Makes what the training DataLoader draws a function of (seed, epoch), so that a resumed run draws what the
    uninterrupted run drew, whichever checkpoint it resumes from:

    - the training set's augmentation (`PoseClipDataset.set_epoch`), on every process (accelerate forwards the epoch
      to the dataset itself only in some configurations);
    - the seed the DataLoader gives its workers: drawn from the global generator, it would shift every later
      dropout mask whenever a resumed run makes one iterator more than the uninterrupted run (persistent workers
      make one per run, not per epoch). Drawn from a generator of the loader's own, it leaves the global generator,
      which the Trainer checkpoints, to the model.
    """

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        # The Trainer's own count: `state.epoch` is the number of epochs done, fractional mid-epoch.
        epoch = int(state.epoch or 0)
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        loader = getattr(train_dataloader, "base_dataloader", train_dataloader)  # accelerate wraps the DataLoader
        if isinstance(loader, torch.utils.data.DataLoader):
            seed = args.data_seed if args.data_seed is not None else args.seed
            loader_seed = np.random.SeedSequence([seed % 2**64, epoch]).generate_state(1, np.uint64)[0]
            loader.generator = torch.Generator().manual_seed(int(loader_seed))


class _NonFiniteStepSkipper(TrainerCallback):
    """With `skip_nonfinite_loss_steps`: drops the gradients of a step whose loss or gradients are not finite, so the
    optimiser leaves every weight (and its moments) as it was. The gradients decide, being the same on every process
    after the all-reduce, so all processes skip together."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        trainer = self.trainer
        nonfinite_loss, trainer._nonfinite_loss = trainer._nonfinite_loss, False
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        finite_grads = bool(torch.stack([g.isfinite().all() for g in grads]).all()) if grads else True
        if nonfinite_loss or not finite_grads:
            # Without gradients the optimiser skips every weight. A GradScaler (fp16) skips a step with non-finite
            # gradients itself, and would refuse one without any.
            if getattr(trainer.accelerator, "scaler", None) is None:
                trainer.model.zero_grad(set_to_none=True)
            logger.warning(
                f"Step {state.global_step + 1} skipped (--skip_nonfinite_loss_steps): its "
                f"{'loss is' if nonfinite_loss else 'gradients are'} not finite."
            )


class SkeletonClipTrainer(Trainer):
    """A `Trainer` for SkeletonCLIP models.

    - Optimiser groups per module (video encoder, text encoder, the rest), each with its own lr and weight-decay
      ratio; no decay on biases, norms and the temperature (every parameter with fewer than 2 dimensions).
    - Evaluation/prediction encode every class text once per call, score every view of every clip against all of
      them, average the softmax probabilities over views and hand `[N, L]` log-probabilities to `compute_metrics`.
    - Resumable and safe to interrupt: the training set's augmentation and the DataLoader's worker seed follow
      (seed, epoch), so a resumed run is bit-identical to the uninterrupted one from any checkpoint; a checkpoint
      gets a manifest of its files once it is complete (see `checkpoints.py`); a failed write raises
      `CheckpointWriteError`, a NaN or infinite loss `NonFiniteTrainingError` (or skips the step with
      `skip_nonfinite_loss_steps`), and a model with non-finite weights is never saved.
    - `create_model_card` (which `push_to_hub` calls too) writes SkeletonCLIP's card (`model_card.py`);
      `evaluate_with_predictions` is `evaluate` that also returns the scores, for the evaluation report.

    Args:
        class_names (`list[str]`, *optional*): candidate class names for evaluation; defaults to the model's
            `id2label`. Labels of the evaluation data index into this list (open vocabulary: any names).
    """

    def __init__(self, *args, class_names: list[str] | None = None, eval_data_collator=None, **kwargs):
        if kwargs.get("data_collator") is None:
            # Not the tokenizer's padding collator that the Trainer would pick: batches here are clips.
            kwargs["data_collator"] = PoseCollator()
        super().__init__(*args, **kwargs)
        self.class_names = class_names
        # Evaluation batches need no paired texts (clips are scored against every class text), so they may use
        # a collator of their own.
        self.eval_data_collator = eval_data_collator
        self._class_text_embeds = None  # [L, D] while an evaluation runs
        self._loss_parts = {}  # name -> (sum, count) of the loss parts since the last log
        if self.args.freeze_text_encoder and hasattr(self.model, "text_model"):
            self.model.text_model.requires_grad_(False)
        if isinstance(self.model, SkeletonClipModel):
            self.model.gather_features_across_processes = self.args.gather_features_with_grad
        if self.args.sync_batchnorm:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self._nonfinite_loss = False  # a non-finite loss since the last optimiser step (skip_nonfinite_loss_steps)
        self.add_callback(_EpochCallback())
        if self.args.skip_nonfinite_loss_steps:
            self.add_callback(_NonFiniteStepSkipper(self))

    # -- optimisation ---------------------------------------------------------------------------------------------

    def parameter_groups(self, model) -> list[dict]:
        args = self.args
        ratios = {
            "video_encoder": (args.video_encoder_lr_ratio, args.video_encoder_weight_decay_ratio),
            "text_encoder": (args.text_encoder_lr_ratio, args.text_encoder_weight_decay_ratio),
            "heads": (self.head_lr_ratio(model), 1.0),
        }
        groups = {(module, decay): [] for module in ratios for decay in (True, False)}
        for name, param in model.named_parameters():
            # Momentum copies (objective "itc_momentum") follow the online model, never the optimiser.
            if not param.requires_grad or name.startswith("momentum_encoders."):
                continue
            if name.startswith("video_encoder."):
                module = "video_encoder"
            elif name.startswith("text_model."):
                module = "text_encoder"
            else:
                module = "heads"
            groups[(module, param.ndim >= 2)].append(param)
        return [
            {
                "name": f"{module}{'' if decay else '_no_decay'}",
                "params": params,
                "lr": args.learning_rate * ratios[module][0],
                "weight_decay": args.weight_decay * ratios[module][1] if decay else 0.0,
            }
            for (module, decay), params in groups.items()
            if params
        ]

    def head_lr_ratio(self, model) -> float:
        if self.args.head_lr_ratio is not None:
            return self.args.head_lr_ratio
        return 0.1 if isinstance(self.accelerator.unwrap_model(model), SkeletonClipModel) else 1.0

    def create_optimizer(self, model=None):
        opt_model = self.model if model is None else model
        if self.optimizer is None:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs.pop("lr", None)  # every group carries its own
            self.optimizer = optimizer_cls(self.parameter_groups(opt_model), **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        args = self.args
        if self.lr_scheduler is None and args.warmup_start_ratio > 0 and args.lr_scheduler_type == "cosine":
            optimizer = optimizer if optimizer is not None else self.optimizer
            warmup = args.get_warmup_steps(num_training_steps)
            start = args.warmup_start_ratio

            def factor(step):
                if step < warmup:  # linear from start x lr to lr
                    return start + (1.0 - start) * step / max(1, warmup)
                progress = (step - warmup) / max(1, num_training_steps - warmup)
                return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

            self.lr_scheduler = LambdaLR(optimizer, factor)
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    # -- training -------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's loss (its objective's); the parts the objective reports (`loss_itc`, `loss_itm`) are kept
        for logging."""
        unwrapped = self.accelerator.unwrap_model(model)
        objective = getattr(unwrapped, "objective", None)
        if model.training and objective is not None:
            inputs = unwrapped.training_inputs(inputs, self.processing_class)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if model.training:
            self._check_loss(loss)
        if model.training and objective is not None:
            self._record_loss_parts(outputs, objective.logged_loss_parts)
        return (loss, outputs) if return_outputs else loss

    def _check_loss(self, loss):
        """A NaN or infinite loss stops training here, before its gradients reach the weights (the Trainer would
        only drop it from the logs and save the NaN model), unless `skip_nonfinite_loss_steps` skips the step."""
        if bool(torch.isfinite(loss.detach()).all()):
            return
        step = self.state.global_step + 1
        if self.args.skip_nonfinite_loss_steps:
            self._nonfinite_loss = True  # _NonFiniteStepSkipper drops the step's gradients
            return
        raise NonFiniteTrainingError(
            f"The training loss is {loss.detach().float().mean().item()} at step {step} (epoch "
            f"{self.state.epoch or 0:.2f}): training stopped before the step changed the weights. Lower "
            "--learning_rate, check the data, or pass --skip_nonfinite_loss_steps to skip such steps."
        )

    def _record_loss_parts(self, outputs, names):
        for name in names:
            value = outputs.get(name) if hasattr(outputs, "get") else None
            if value is None:
                continue
            total, count = self._loss_parts.get(name, (0.0, 0))
            self._loss_parts[name] = (total + value.detach().float(), count + 1)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Training logs also carry the mean of each loss part since the previous log (`loss_itc`, `loss_itm`)."""
        if "loss" in logs and self._loss_parts:
            for name, (total, count) in self._loss_parts.items():
                value = total / count
                if self.args.world_size > 1:
                    value = self.accelerator.gather(value.reshape(1)).mean()  # every process's mean
                logs[name] = round(float(value), 4)
            self._loss_parts = {}
        super().log(logs, start_time)

    # -- saving ---------------------------------------------------------------------------------------------------

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Saves the model as the Trainer does, but never one with NaN or infinite weights."""
        model = self.accelerator.unwrap_model(self.model)
        bad = [name for name, tensor in model.state_dict().items()
               if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
        if bad:
            where = output_dir or self.args.output_dir
            raise NonFiniteTrainingError(
                f"The model has NaN or infinite weights after step {self.state.global_step} ({len(bad)} tensors, "
                f"e.g. {bad[0]}): not saved to {where}. Lower --learning_rate or check the data."
            )
        return super().save_model(output_dir, _internal_call)

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
    ) -> None:
        """Writes `README.md` in the output folder: SkeletonCLIP's card (`model_card.skeletonclip_model_card`), with
        the evaluation reports, images and training recipe found there, in place of the Trainer's generic draft
        (`push_to_hub` calls this too). `finetuned_from` overrides the base model (a contrastive model's text
        encoder; the classifier has none); `tasks` and `dataset_tags` are not used (the pipeline tag is
        video-classification); `dataset_args` is accepted for compatibility."""
        from .model_card import skeletonclip_model_card

        if not self.is_world_process_zero():
            return
        model = self.accelerator.unwrap_model(self.model)
        contrastive = isinstance(model, SkeletonClipModel)
        output_dir = self.args.output_dir
        model_id = self.args.hub_model_id if self.args.push_to_hub and self.args.hub_model_id else None
        card = skeletonclip_model_card(
            model.config,
            output_dir,
            contrastive=contrastive,
            model_name=model_name,
            model_id=model_id,
            base_model=finetuned_from if contrastive else None,
            dataset=dataset,
            tags=[tags] if isinstance(tags, str) else tags,
            license=license,
            language=language,
            training_args=self.args,
        )
        card.save(os.path.join(output_dir, "README.md"))

    def _save_checkpoint(self, model, trial):
        """The Trainer's checkpoint, made safe to resume from: a manifest of its files is written last (a folder
        without one, or whose files differ from it, was not finished: `checkpoints.last_complete_checkpoint` passes
        it over), older checkpoints are deleted only once the new one is complete, and a failed write (full disk)
        is one `CheckpointWriteError` naming the folder."""
        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save:
            remove_manifest(folder)
        save_total_limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()  # every process has written its part (its RNG state)
            if self.args.should_save:
                write_manifest(folder, self.state.global_step)
        except (OSError, RuntimeError, SafetensorError) as err:  # torch.save and safetensors fail with their own
            raise CheckpointWriteError(
                f"Could not write the checkpoint {folder}: {type(err).__name__}: {err}. The complete checkpoints are "
                "kept: a rerun (with enough disk space) resumes from the newest."
            ) from err
        finally:
            self.args.save_total_limit = save_total_limit
        if self.args.should_save:
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    # -- evaluation -----------------------------------------------------------------------------------------------

    def _with_eval_collator(self, build, *args):
        if self.eval_data_collator is None:
            return build(*args)
        train_collator, self.data_collator = self.data_collator, self.eval_data_collator
        try:
            return build(*args)
        finally:
            self.data_collator = train_collator

    def get_eval_dataloader(self, eval_dataset=None):
        return self._with_eval_collator(super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset):
        return self._with_eval_collator(super().get_test_dataloader, test_dataset)

    def eval_class_names(self, model) -> list[str]:
        if self.class_names is not None:
            return list(self.class_names)
        id2label = model.config.id2label
        return [id2label[i] for i in range(len(id2label))]

    @torch.no_grad()
    def encode_class_texts(self, model, class_names=None, chunk_size: int = 256) -> torch.Tensor:
        """Normalised text embeddings `[L, D]` of every candidate class, computed once per evaluation: a class with
        descriptions (`config.class_descriptions`) is the normalised mean of its descriptions' normalised embeddings,
        any other the `text_template` text of its name."""
        tokenizer = self.processing_class
        if tokenizer is None:
            raise ValueError("SkeletonClipTrainer needs the text tokenizer as `processing_class` to encode class texts.")
        texts = model.config.class_text_lists(class_names or self.eval_class_names(model))
        return model.encode_class_texts(texts, tokenizer, chunk_size=chunk_size)

    def _with_class_texts(self, run, *args, **kwargs):
        model = self.accelerator.unwrap_model(self.model)
        if isinstance(model, SkeletonClipModel):
            self._class_text_embeds = self.encode_class_texts(model)
        try:
            return run(*args, **kwargs)
        finally:
            self._class_text_embeds = None

    def evaluate(self, *args, **kwargs):
        return self._with_class_texts(super().evaluate, *args, **kwargs)

    def predict(self, *args, **kwargs):
        return self._with_class_texts(super().predict, *args, **kwargs)

    def evaluate_with_predictions(self, eval_dataset=None, metric_key_prefix: str = "eval"):
        """`evaluate()` that also returns what it scored: a `PredictionOutput` of the `[N, L]` log-probabilities,
        the labels and the metrics, which are logged (with the epoch) and passed to the callbacks' `on_evaluate`
        as `evaluate()` does, under the same keys."""
        output = self.predict(self.eval_dataset if eval_dataset is None else eval_dataset,
                              metric_key_prefix=metric_key_prefix)
        self.log(output.metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, output.metrics)
        return output

    @torch.no_grad()
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Scores `[B, L]`: log of the view-averaged class probabilities and, as the loss, their NLL against `labels`.
        A classifier's `problem_type` changes both: "multi_label_classification" averages per-class sigmoids and
        scores their binary cross-entropy against `[B, L]` targets; "regression" averages the outputs themselves
        (the scores) and scores their mean squared error."""
        inputs = self._prepare_inputs(inputs)
        unwrapped = self.accelerator.unwrap_model(model)
        labels = inputs.get("labels")
        keypoints = inputs.get("keypoints")
        batch_size = keypoints.shape[0] if keypoints is not None else inputs["heatmaps"].shape[0]
        video_inputs = {k: inputs.get(k) for k in ("keypoints", "keypoint_scores", "heatmaps", "mirrored")}
        with self.compute_loss_context_manager():
            if isinstance(unwrapped, SkeletonClipModel):
                if self._class_text_embeds is None:  # prediction_step called outside evaluate()/predict()
                    self._class_text_embeds = self.encode_class_texts(unwrapped)
                # Every objective's evaluation form (PACL weights frames by each class text).
                logits = unwrapped.score_all_classes(**video_inputs, class_text_embeds=self._class_text_embeds)
            else:
                logits = model(**video_inputs).logits  # [B * views, L]
        problem_type = getattr(unwrapped.config, "problem_type", None)
        per_view = logits.float()
        if problem_type == "multi_label_classification":
            per_view = per_view.sigmoid()
        elif problem_type != "regression":
            per_view = per_view.softmax(dim=-1)
        averaged = per_view.view(batch_size, -1, logits.shape[-1]).mean(dim=1)  # [B, L]
        loss = None
        if problem_type == "regression":
            scores = averaged
            if labels is not None:
                loss = F.mse_loss(scores, labels.float().view_as(scores))
        else:
            scores = averaged.clamp_min(1e-12).log()
            if labels is not None and problem_type == "multi_label_classification":
                loss = F.binary_cross_entropy(averaged, labels.float())
            elif labels is not None:
                loss = F.nll_loss(scores, labels)
        if prediction_loss_only:
            return (loss, None, None)
        return (loss, scores, labels)
