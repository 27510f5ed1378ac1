"""The training entry point: one run folder in, a fine-tuned model, metrics and a summary out.

    python -m entrodrop.training.run --run-dir DIR [--resume]
    accelerate launch --multi_gpu --num_processes 2 -m entrodrop.training.run --run-dir DIR
    torchrun --nproc_per_node 2 -m entrodrop.training.run --run-dir DIR

Several processes also work on a CPU-only machine (gloo); there `accelerate launch --cpu` starts
one process whatever --num_processes says, so use --multi_gpu (its torch.distributed launcher).

DIR/config.json holds a RunConfig; everything else in DIR follows entrodrop/runfolder.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PrinterCallback, ProgressCallback

from entrodrop.adapters import base_weights
from entrodrop.config import DROPPING_METHODS, RunConfig, effective_batch_text
from entrodrop.data import DataError, build_blocks, general_texts, load_dataset
from entrodrop.disk import checkpoint_policy
from entrodrop.metrics import EVAL_LOSS
from entrodrop.models import LoadedModel, ModelLoadError
from entrodrop.precision import choose_precision
from entrodrop.runfolder import RunFolder, checkpoint_step, latest_checkpoint
from entrodrop.trackers import TrackerMissing, report_to
from entrodrop.training.baselines import (
    DropoutPatch,
    apply_hidden_dropout,
    baseline_strength,
    training_arguments,
)
from entrodrop.training.callbacks import (
    BarCallback,
    FinalLogCallback,
    MetricsCallback,
    StatusCallback,
    StopCallback,
    Subscriber,
    stage_text,
)
from entrodrop.training.collator import BlockDataset, EntroDropCollator
from entrodrop.training.diagnostics import (
    Diagnostics,
    build_diagnostics,
    entropy_median,
    evenly_spaced,
)
from entrodrop.training.lora import knob_arguments, load_training_model
from entrodrop.training.reference import Cancelled, model_fingerprint, reference_entropies
from entrodrop.training.trainer import EntroDropTrainer

log = logging.getLogger("entrodrop.training")

MEDIAN_SAMPLE_TOKENS = 8192  # training tokens scored for the low/high split when not all are


class TrainingFailed(RuntimeError):
    """A run that failed; the message is meant for a person and is also in status.json."""


# ---------------------------------------------------------------- set-up pieces


def use_bf16(config: RunConfig) -> bool:
    """bf16 mixed precision where the hardware does it natively (entrodrop.precision), or as asked."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = choose_precision(device, config.dtype)
    log.info("precision: %s", precision.reason)
    return precision.bf16


def training_args(config: RunConfig, run_dir: Path, progress: bool) -> Any:
    """TrainingArguments for a run (creating them also sets up the process group under a launcher)."""
    from transformers import TrainingArguments

    cpu = not torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under accelerate launch / torchrun
    return TrainingArguments(
        output_dir=str(run_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        logging_strategy="steps",
        logging_steps=config.eval_every,
        logging_first_step=True,  # a training-loss point from step 1, not only at eval_every
        eval_strategy="steps",
        eval_steps=config.eval_every,
        save_strategy="steps" if config.save_checkpoints else "no",
        save_steps=config.eval_every,
        save_total_limit=checkpoint_policy(config).keep,
        seed=config.seed,
        data_seed=config.seed,
        bf16=use_bf16(config),
        use_cpu=cpu,
        ddp_backend="gloo" if cpu and distributed else None,
        ddp_find_unused_parameters=False,  # every parameter takes part in every step
        report_to=report_to(config.report_to, run_dir),
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        remove_unused_columns=False,  # the collator's columns (example_index, entropies) stay
        log_level="warning",
        **training_arguments(config),
        **knob_arguments(config),
    )


@dataclass
class RunData:
    """Token blocks of one run: training, held-out (capped) and general text (capped, optional)."""

    train: torch.Tensor  # (N, T)
    heldout: torch.Tensor  # (H, T)
    general: torch.Tensor | None  # (G, T)


def _blocks(
    texts: Sequence[str], tokenizer: Any, config: RunConfig, what: str, cap: int | None
) -> torch.Tensor:
    try:
        blocks = build_blocks(texts, tokenizer, config.seq_len, max_tokens=cap)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from exc
    return blocks


def load_run_data(config: RunConfig, tokenizer: Any) -> RunData:
    """The run's token blocks; the log says which documents were held out."""
    texts = load_dataset(config.dataset, heldout=config.heldout_dataset)
    log.info("data split: %s", texts.split)
    train = _blocks(texts.train, tokenizer, config, "training data", config.max_train_tokens)
    heldout = _blocks(texts.heldout, tokenizer, config, "held-out data", None)
    cap = config.max_eval_tokens
    return RunData(
        train=train,
        heldout=evenly_spaced(heldout, cap),
        general=_general_blocks(config, tokenizer, cap),
    )


def _general_blocks(config: RunConfig, tokenizer: Any, cap: int | None) -> torch.Tensor | None:
    """The forgetting check's blocks: a named file must work; the default may be missing."""
    if config.general_dataset is not None:
        texts = general_texts(config.general_dataset)
        log.info("general text: %s (%d documents)", config.general_dataset, len(texts))
        return evenly_spaced(_blocks(texts, tokenizer, config, "general text", None), cap)
    try:
        general = _blocks(general_texts(), tokenizer, config, "general text", None)
    except DataError as exc:
        log.warning("no general-text loss: %s", exc)
        return None
    return evenly_spaced(general, cap)


def load_model(config: RunConfig) -> LoadedModel:
    """The starting checkpoint in float32 on the CPU (the Trainer moves it and autocasts), with
    the config's adapter on top; QLoRA: 4-bit on the GPU."""
    return load_training_model(config)


@dataclass
class Prepared:
    """What the reference pre-pass produced."""

    train_entropies: torch.Tensor | None  # (N, T), only for the reference entropy source
    diagnostics: Diagnostics


def reference_pass(
    config: RunConfig,
    loaded: LoadedModel,
    data: RunData,
    autocast_dtype: torch.dtype | None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[str, int, int], None] | None = None,
) -> Prepared:
    """Score with the frozen starting model (before any update): cached, so usually a file read."""
    model, model_fp = loaded.model, model_fingerprint(loaded.path)
    train_ent = None
    if config.method in DROPPING_METHODS and config.entrodrop.entropy_source == "reference":
        train_ent = reference_entropies(
            model, data.train, model_fp, autocast_dtype, should_stop, "training", progress
        )
    median_source = train_ent
    if median_source is None:  # the online source: a spread-out sample of training tokens is enough
        sample = evenly_spaced(data.train, MEDIAN_SAMPLE_TOKENS)
        median_source = reference_entropies(
            model, sample, model_fp, autocast_dtype, should_stop, "training sample", progress
        )
    diagnostics = build_diagnostics(
        model,
        data.heldout,
        data.general,
        entropy_median(median_source),
        model_fp,
        autocast_dtype,
        should_stop,
        progress,
    )
    return Prepared(train_ent, diagnostics)


@dataclass
class Run:
    """One run as its steps hand it on: what was asked, where it writes, what set-up built."""

    config: RunConfig
    folder: RunFolder
    stopper: StopCallback
    progress: bool = False  # a progress bar on stderr
    resume: bool = False  # continue from the latest complete checkpoint, if there is one
    subscribers: Sequence[Subscriber] = ()
    started: float = field(default_factory=time.time)
    # Built by set_up(), in this order: the arguments (under a launcher they start the process
    # group), the checkpoint to continue from, the model, its data.
    args: Any = field(init=False)  # TrainingArguments
    resume_from: Path | None = field(init=False, default=None)
    loaded: LoadedModel = field(init=False)
    data: RunData = field(init=False)
    dropout_patch: DropoutPatch | None = field(init=False, default=None)
    metrics: MetricsCallback = field(init=False)
    status: StatusCallback = field(init=False)
    timing: dict[str, float] = field(default_factory=dict)  # seconds per part, for estimates

    def __post_init__(self) -> None:
        self.metrics = MetricsCallback(self.folder, self.subscribers)
        self.status = StatusCallback(self.folder)

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        """Time a part of the run into `timing` (summary.json's, read by the cost estimate)."""
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timing[part] = time.monotonic() - t0

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.args.bf16 else None


def set_up(run: Run) -> None:
    """Arguments, the checkpoint to resume from, model and data, in the order they depend on."""
    config, folder = run.config, run.folder
    run.args = training_args(config, folder.path, run.progress)
    folder.writer = run.args.process_index == 0
    log.info("run %s: %s", folder.path.name, config.model_dump_json())
    log.info(
        "processes: %d, device: %s, bf16 autocast: %s, effective batch: %s",
        run.args.world_size,
        run.args.device,
        run.args.bf16,
        effective_batch_text(config, run.args.world_size),
    )
    if run.resume:
        choose_checkpoint(run)
    run.status.stage("loading")
    run.loaded = load_model(config)
    if config.adapter is None or config.adapter.kind != "qlora":  # 4-bit weights stay put
        run.loaded.model.to(run.args.device)
    run.data = load_run_data(config, run.loaded.tokenizer)
    log.info(
        "blocks of %d tokens: %d training, %d held-out, %d general",
        config.seq_len,
        len(run.data.train),
        len(run.data.heldout),
        0 if run.data.general is None else len(run.data.general),
    )
    if config.method in DROPPING_METHODS and config.entrodrop.drop_mode in ("input", "both"):
        log.info(
            "drop_mode %s: train/loss is measured on the corrupted inputs, so it rises as the "
            "drop rate grows; eval/loss is measured on clean inputs",
            config.entrodrop.drop_mode,
        )
    if config.method == "hidden_dropout":
        run.dropout_patch = apply_hidden_dropout(run.loaded.model, baseline_strength(config))


def choose_checkpoint(run: Run) -> None:
    """Resume from the latest complete checkpoint; the metrics logged after it are cut here
    (this process is metrics.jsonl's only writer) and logged again as the steps rerun."""
    run.resume_from = latest_checkpoint(run.folder.path)
    if run.resume_from is None:
        log.info("resume: no checkpoint in %s, starting from the beginning", run.folder.path)
        return
    log.info("resuming from %s", run.resume_from.name)
    run.folder.truncate_metrics_after(checkpoint_step(run.resume_from))


# ---------------------------------------------------------------- logging to log.txt


@contextmanager
def quiet_loading_bars() -> Iterator[None]:
    """No per-file tqdm bars from loading and saving weights (the run has its own progress)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextmanager
def log_file(folder: RunFolder) -> Iterator[None]:
    """Send entrodrop's and transformers' log records to the run's log.txt (main process)."""
    if not folder.writer:
        yield
        return
    handler = logging.FileHandler(folder.log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours, hf = logging.getLogger("entrodrop"), logging.getLogger("transformers")
    old_level = ours.level
    ours.setLevel(logging.INFO)
    handler.setLevel(logging.INFO)
    ours.addHandler(handler)
    hf.addHandler(handler)
    try:
        yield
    finally:
        ours.removeHandler(handler)
        hf.removeHandler(handler)
        ours.setLevel(old_level)
        handler.close()


def describe(exc: BaseException) -> str:
    """A one-line message for a person: ours are already readable, others get their type."""
    if isinstance(exc, (ModelLoadError, DataError, TrainingFailed, TrackerMissing)):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---------------------------------------------------------------- the run


def train(
    config: RunConfig,
    run_dir: Path,
    progress: bool = False,
    resume: bool = False,
    subscribers: Sequence[Subscriber] = (),
) -> dict[str, Any]:
    """Fine-tune as the config says, writing the run folder; returns the summary.

    Raises :class:`TrainingFailed` (after writing status `failed` with the message) on any error.
    A stop request (SIGTERM, SIGINT, a STOP file) ends the run `cancelled` after a checkpoint.
    ``subscribers`` get every new batch of metric rows (``fn(rows)``) on the main process.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(run_dir, writer=int(os.environ.get("RANK", "0")) == 0)
    run = Run(config, folder, StopCallback(folder.stop_path), progress, resume, subscribers)
    restore_signals = run.stopper.install_signal_handlers()
    status_fields: dict[str, Any] = {
        "step": 0,
        "total_steps": config.max_steps or 0,  # known exactly once the Trainer starts
        "progress": 0.0,
        "error": None,
        "eta_s": None,
    }
    if not resume:
        status_fields["started_at"] = run.started
    folder.write_status(
        "running",
        stage="loading",
        stage_text=stage_text("loading"),
        starting=True,
        **status_fields,
    )
    try:
        with log_file(folder), quiet_loading_bars():
            return _attempt(run)
    finally:
        restore_signals()


def _attempt(run: Run) -> dict[str, Any]:
    """Train, turning each way a run can end into its final status."""
    folder = run.folder
    try:
        return _train(run)
    except Cancelled as exc:
        log.info("cancelled before training: %s", exc)
        folder.write_status("cancelled", eta_s=None)
        return {"status": "cancelled", "run_dir": str(folder.path), "steps": 0}
    except KeyboardInterrupt:
        log.warning("interrupted twice: stopped without a final checkpoint")
        folder.write_status("cancelled", error="interrupted", eta_s=None)
        return {"status": "cancelled", "run_dir": str(folder.path)}
    except BaseException as exc:
        message = describe(exc)
        log.error("run failed: %s\n%s", message, traceback.format_exc())
        folder.write_status("failed", error=message, eta_s=None)
        raise TrainingFailed(message) from exc


def _train(run: Run) -> dict[str, Any]:
    with run.timed("setup_s"):
        set_up(run)
    # rank 0 fills the cache first; an adapter run scores its base with the adapter switched off
    with (
        run.timed("reference_s"),
        run.args.main_process_first(desc="reference pre-pass"),
        base_weights(run.loaded.model),
    ):
        prepared = reference_pass(
            run.config,
            run.loaded,
            run.data,
            run.autocast_dtype,
            run.stopper.requested_here,
            run.status.reference_progress,
        )
    if run.stopper.requested_here():
        raise Cancelled("stop requested before the first step")
    trainer = build_trainer(run, prepared)
    if run.resume_from is None:
        run.status.begin_evaluation()
        trainer.evaluate()  # step 0: the starting model, the baseline of "best" and "rebound"
    t0 = time.time()
    trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
    train_s = time.time() - t0
    if run.stopper.stopped:
        return _finish(run, trainer, "cancelled", train_s)
    if run.dropout_patch is not None:
        run.dropout_patch.undo(run.loaded.model)  # the saved model has its own dropout settings
    if run.config.save_model:
        with run.timed("save_s"):
            save_final_model(trainer, run.folder.model_dir)
    return _finish(run, trainer, "succeeded", train_s)


def build_trainer(run: Run, prepared: Prepared) -> EntroDropTrainer:
    """The EntroDropTrainer for a set-up run, with the run folder's callbacks."""
    config = run.config
    trainer = EntroDropTrainer(
        model=run.loaded.model,
        args=run.args,
        train_dataset=BlockDataset(run.data.train, prepared.train_entropies),
        eval_dataset=BlockDataset(run.data.heldout),
        processing_class=run.loaded.tokenizer,
        data_collator=EntroDropCollator(),
        entrodrop=config.entrodrop if config.method in DROPPING_METHODS else None,
        drop_method="random" if config.method == "random" else "entrodrop",
        diagnostics=prepared.diagnostics,
        callbacks=[run.metrics, run.status, run.stopper, FinalLogCallback()],
    )
    # No log dicts printed to stdout: they are in metrics.jsonl and log.txt.
    trainer.remove_callback(PrinterCallback)
    if run.progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarCallback)
    return trainer


def save_final_model(trainer: EntroDropTrainer, model_dir: Path) -> None:
    """model/: config, model.safetensors and tokenizer (no pickles), written by the main process;
    an adapter run: adapter_config.json and adapter_model.safetensors only (peft's save)."""
    trainer.accelerator.wait_for_everyone()
    if trainer.args.process_index == 0:
        model = trainer.accelerator.unwrap_model(trainer.model)
        model.save_pretrained(str(model_dir), safe_serialization=True)
        if trainer.processing_class is not None:
            trainer.processing_class.save_pretrained(str(model_dir))
    trainer.accelerator.wait_for_everyone()


def eval_size(run: Run) -> dict[str, int]:
    """Tokens one evaluation scores (held-out and general text) and the training tokens."""
    general = 0 if run.data.general is None else run.data.general.numel()
    return {
        "eval_tokens": run.data.heldout.numel() + general,
        "train_tokens": run.data.train.numel(),
    }


def _finish(
    run: Run, trainer: EntroDropTrainer, outcome: Literal["succeeded", "cancelled"], train_s: float
) -> dict[str, Any]:
    """Write summary.json and the final status; returns the summary."""
    folder, state, metrics = run.folder, trainer.state, run.metrics
    saved = outcome == "succeeded" and run.config.save_model
    summary: dict[str, Any] = {
        "status": outcome,
        "run_dir": str(folder.path),
        "method": run.config.method,
        "steps": state.global_step,
        "total_steps": state.max_steps,
        "final": dict(metrics.latest),
        "final_eval_loss": metrics.latest.get(EVAL_LOSS),
        "best_eval_loss": None if metrics.best_eval is None else metrics.best_eval[1],
        "best_eval_step": None if metrics.best_eval is None else metrics.best_eval[0],
        "train_s": train_s,
        "step_time_s": run.status.mean_step_s,
        "wall_s": time.time() - run.started,
        "timing": {**run.timing, **run.status.timing(), **eval_size(run)},
        "model_dir": str(folder.model_dir) if saved else None,
        "last_checkpoint": str(p) if (p := latest_checkpoint(folder.path)) else None,
    }
    folder.write_summary(summary)
    folder.write_status(
        outcome,
        step=state.global_step,
        total_steps=state.max_steps,
        progress=state.global_step / max(1, state.max_steps),
        eta_s=None if outcome != "succeeded" else 0.0,
    )
    log.info(
        "run %s: %s after %d steps (%.3g s/step)",
        folder.path.name,
        outcome,
        state.global_step,
        run.status.mean_step_s or 0,
    )
    return summary


# ---------------------------------------------------------------- command line


def end_process_group() -> None:
    """Tear torch.distributed down while the interpreter is whole, once training has ended here.

    Left to the interpreter's exit, gloo's worker threads can outlive the objects they hold and
    abort the process ("terminate called without an active exception", SIGABRT) after a run that
    succeeded: the launcher then reports the run failed. A no-op in a single process. No barrier
    first: every collective of the run is behind each process that gets here, and a process
    cancelled before the first step gets here alone.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()  # local: waits on no other process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrodrop.training.run",
        description="Run one EntroDrop fine-tune from RUN_DIR/config.json (a RunConfig).",
    )
    parser.add_argument("--run-dir", required=True, type=Path, help="the run folder")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = RunFolder(ns.run_dir, writer=int(os.environ.get("RANK", "0")) == 0)
    try:
        config = folder.read_config()
    except (OSError, ValueError) as exc:
        message = f"cannot read {folder.config_path}: {describe(exc)}"
        if ns.run_dir.is_dir():
            folder.write_status("failed", error=message)
        print(f"error: {message}", file=sys.stderr)
        return 2
    try:
        summary = train(config, ns.run_dir, progress=ns.progress, resume=ns.resume)
    except TrainingFailed as exc:
        # No teardown here: another process may be stuck in a collective the teardown would
        # wait on; the launcher ends the others when this one exits non-zero.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    end_process_group()
    if folder.writer:
        print(
            f"{summary['status']}: {summary.get('steps', 0)} steps, final eval loss "
            f"{summary.get('final_eval_loss')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
