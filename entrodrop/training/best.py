"""The best checkpoint, checkpoint retention and early stopping, through transformers' machinery.

- Best: ``metric_for_best_model`` / ``greater_is_better`` (from the metric vocabulary) make the
  Trainer track ``state.best_metric`` and ``state.best_global_step`` at each evaluation inside
  ``train()`` and keep ``state.best_model_checkpoint``; ``load_best_model_at_end`` stays off, so
  ``model/`` holds the final weights and the best stays a checkpoint (``run:<id>:best``).
- Retention: after each save, transformers' own ``rotate_checkpoints`` keeps the last
  ``save_total_limit`` checkpoints plus the best. It runs from :class:`RetentionCallback` rather
  than through ``TrainingArguments.save_total_limit`` because, with a limit of 1, the Trainer
  also deletes the *last* checkpoint at the end of ``train()`` when the best is another: a
  stopped run needs that checkpoint to resume.
- Early stopping: transformers' ``EarlyStoppingCallback`` (patience, threshold), which reads the
  same ``state.best_metric``; :class:`EarlyStopping` only records when and why it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import (
    EarlyStoppingCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_utils import rotate_checkpoints

from entrodrop.config import RunConfig
from entrodrop.metrics import Best, label, lower_is_better, trainer_key
from entrodrop.runfolder import trainer_state

log = logging.getLogger(__name__)


def best_arguments(config: RunConfig) -> dict[str, Any]:
    """TrainingArguments for the best checkpoint and the checkpoints kept (see the module doc)."""
    return {
        "metric_for_best_model": trainer_key(config.best_metric),
        "greater_is_better": not lower_is_better(config.best_metric),
        "load_best_model_at_end": False,  # model/ is the final model; the best is a checkpoint
        "save_total_limit": None,  # RetentionCallback rotates (the module doc says why)
        "save_only_model": config.save_only_model,
    }


class RetentionCallback(TrainerCallback):
    """After each save: keep the last `limit` checkpoints and the best (main process)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        # By step number, not mtime: a resumed run's checkpoints are older files of later steps.
        rotate_checkpoints(
            output_dir=str(args.output_dir),
            save_total_limit=self.limit,
            best_model_checkpoint=state.best_model_checkpoint,
            use_mtime=False,
        )


class EarlyStopping(EarlyStoppingCallback):
    """transformers' EarlyStoppingCallback that remembers the step at which it stopped the run.

    Its ``on_train_begin`` warns when ``load_best_model_at_end`` is off; off is our choice (the
    final model stays the final one), so that warning would only mislead a reader of log.txt.
    """

    def __init__(self, patience: int = 1, threshold: float = 0.0) -> None:
        super().__init__(early_stopping_patience=patience, early_stopping_threshold=threshold)
        self.stopped_at: int | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if args.metric_for_best_model is None or args.eval_strategy == "no":
            raise ValueError("early stopping needs evaluations and a metric_for_best_model")

    def on_evaluate(  # type: ignore[override]  # transformers' two bases disagree on `metrics`
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float],
        **kwargs: Any,
    ) -> None:
        if state.global_step < 1:
            return  # the starting model's evaluation (run.py, step 0) is no candidate
        super().on_evaluate(args, state, control, metrics, **kwargs)
        patience_spent = self.early_stopping_patience_counter >= self.early_stopping_patience
        if control.should_training_stop and patience_spent and self.stopped_at is None:
            self.stopped_at = state.global_step

    def restore(self, checkpoint: Path) -> None:
        """Continue the count of evaluations without improvement from a checkpoint (transformers
        saves it there as this callback's ExportableState)."""
        saved = trainer_state(checkpoint).get("stateful_callbacks", {})
        for name in (type(self).__name__, EarlyStoppingCallback.__name__):
            entry = saved.get(name) if isinstance(saved, dict) else None
            entry = entry[0] if isinstance(entry, list) and entry else entry
            count = (entry or {}).get("attributes", {}).get("early_stopping_patience_counter")
            if isinstance(count, int):
                self.early_stopping_patience_counter = count
                return


def stop_reason(config: RunConfig, step: int, best: Best | None) -> str:
    """Why early stopping ended a run, in words for the log, the summary and the page."""
    threshold = config.early_stopping_threshold
    by = f" by more than {threshold:g}" if threshold > 0 else ""
    best_text = "" if best is None else f"; best {best.value:.4f} at step {best.step}"
    return (
        f"early stopping at step {step}: {label(config.best_metric)} ({config.best_metric}) did "
        f"not improve{by} for {config.early_stopping_patience} evaluation(s){best_text}"
    )


def build_callbacks(config: RunConfig) -> tuple[RetentionCallback, EarlyStopping | None]:
    """The run's retention callback, and its early stopping when the config asks for it."""
    stopping = None
    if config.early_stopping_patience is not None:
        stopping = EarlyStopping(config.early_stopping_patience, config.early_stopping_threshold)
    return RetentionCallback(config.save_total_limit), stopping
