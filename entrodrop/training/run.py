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
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import PrinterCallback, ProgressCallback

from entrodrop.adapters import base_weights
from entrodrop.config import DROPPING_METHODS, RunConfig, effective_batch_text
from entrodrop.data import DataError
from entrodrop.metrics import EVAL_LOSS, GENERAL_LOSS
from entrodrop.models import LoadedModel, ModelLoadError, load_tokenizer
from entrodrop.precision import choose_precision
from entrodrop.runfolder import (
    BEST_METRIC,
    BEST_METRICS,
    BEST_STEP,
    STOP_REASON,
    STOPPED_EARLY,
    RunFolder,
    best_checkpoint,
    checkpoint_step,
    checkpoints,
    is_resumable_checkpoint,
    latest_checkpoint,
)
from entrodrop.trackers import TrackerMissing, report_to
from entrodrop.training.baselines import (
    DropoutPatch,
    apply_hidden_dropout,
    baseline_strength,
    training_arguments,
)
from entrodrop.training.benchmarks import (
    BenchmarkRequest,
    Target,
    best_target,
    evaluate_folder,
    run_benchmarks,
)
from entrodrop.training.best import (
    EarlyStopping,
    RetentionCallback,
    best_arguments,
    build_callbacks,
    stop_reason,
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
from entrodrop.training.diagnostics import Diagnostics, build_diagnostics, entropy_median
from entrodrop.training.lora import knob_arguments, load_training_model
from entrodrop.training.recording import RecordSources, TokenRecorder, build_recorder
from entrodrop.training.reference import Cancelled, model_fingerprint, reference_entropies
from entrodrop.training.rundata import RunData, load_run_data
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
        **best_arguments(config),
    )


def group_by_length(args: Any) -> None:
    """Draw batches of examples of similar length (transformers' LengthGroupedSampler): little
    padding. transformers 5 names it train_sampling_strategy, 4.x a group_by_length flag."""
    if hasattr(args, "train_sampling_strategy"):
        args.train_sampling_strategy = "group_by_length"
    else:
        args.group_by_length = True


def load_model(config: RunConfig) -> LoadedModel:
    """The starting checkpoint in float32 on the CPU (the Trainer moves it and autocasts), with
    the config's adapter on top; QLoRA: 4-bit on the GPU."""
    return load_training_model(config)


@dataclass
class Prepared:
    """What the reference pre-pass produced."""

    train_entropies: torch.Tensor | None  # (N, T), only for the reference entropy source
    diagnostics: Diagnostics
    model_fp: str = ""  # the starting checkpoint's fingerprint (the reference cache's key)


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
    sample = data.train
    if config.method in DROPPING_METHODS and config.entrodrop.entropy_source == "reference":
        train_ent = reference_entropies(
            model, data.train.ids, model_fp, autocast_dtype, should_stop, "training", progress
        )
        train_ent = train_ent.masked_fill(data.train.attention_mask == 0, math.nan)  # padding
    median_source = train_ent
    if median_source is None:  # the online source: a spread-out sample of training tokens is enough
        sample = data.train.evenly_spaced(MEDIAN_SAMPLE_TOKENS)
        median_source = reference_entropies(
            model, sample.ids, model_fp, autocast_dtype, should_stop, "training sample", progress
        )
    diagnostics = build_diagnostics(
        model,
        data.heldout,
        data.general,
        entropy_median(median_source, sample.trained),  # over the trained (answer) tokens
        model_fp,
        autocast_dtype,
        should_stop,
        progress,
    )
    return Prepared(train_ent, diagnostics, model_fp)


def make_recorder(run: Run, prepared: Prepared) -> TokenRecorder:
    """The run's token recorder (call it with the starting weights: it may score some)."""
    config = run.config
    sources = RecordSources(
        model=run.loaded.model,
        model_fp=prepared.model_fp,
        tokenizer=run.loaded.tokenizer,
        train=run.data.train.ids,
        train_entropies=prepared.train_entropies,
        general_tokens=config.record_general_tokens,
        train_tokens=config.record_train_tokens,
        drops=config.method in DROPPING_METHODS,
        ranks=config.record_ranks,
        train_mask=run.data.train.trained,  # answer tokens only, for instruction data
    )
    resumed = run.resume_from is not None
    return build_recorder(run.folder, prepared.diagnostics, sources, config.eval_every, resumed)


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
    retention: RetentionCallback = field(init=False)
    early_stopping: EarlyStopping | None = field(init=False)
    timing: dict[str, float] = field(default_factory=dict)  # seconds per part, for estimates

    def __post_init__(self) -> None:
        self.metrics = MetricsCallback(self.folder, self.subscribers, self.config.best_metric)
        self.status = StatusCallback(self.folder, best=lambda: self.metrics.best)
        self.retention, self.early_stopping = build_callbacks(self.config)

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
    if run.resume_from is None:
        folder.remove_tokens()  # a start from step 0 starts a new token record
    run.status.stage("loading")
    tokenizer, name = load_tokenizer(config.model)  # the data fails here, before any weights
    run.data = load_run_data(config, tokenizer, name)
    if config.best_metric == GENERAL_LOSS and run.data.general is None:
        raise TrainingFailed(
            f"best_metric {GENERAL_LOSS} needs general text, and none could be read: name a "
            "general_dataset or judge by a held-out metric"
        )
    log.info(
        "rows of at most %d tokens: %d training, %d held-out, %d general",
        config.seq_len,
        len(run.data.train),
        len(run.data.heldout),
        0 if run.data.general is None else len(run.data.general),
    )
    if run.data.train.padded:  # examples of their own lengths: batch those of similar length
        group_by_length(run.args)
    run.loaded = load_model(config)
    if config.adapter is None or config.adapter.kind != "qlora":  # 4-bit weights stay put
        run.loaded.model.to(run.args.device)
    if config.method in DROPPING_METHODS and config.entrodrop.drop_mode in ("input", "both"):
        log.info(
            "drop_mode %s: train/loss is measured on the corrupted inputs, so it rises as the "
            "drop rate grows; eval/loss is measured on clean inputs",
            config.entrodrop.drop_mode,
        )
    if config.method == "hidden_dropout":
        run.dropout_patch = apply_hidden_dropout(run.loaded.model, baseline_strength(config))


def choose_checkpoint(run: Run) -> None:
    """Resume from the latest complete checkpoint with optimizer state; the metrics logged
    after it are cut here (this process is metrics.jsonl's only writer) and logged again as the
    steps rerun. The rows kept rebuild the best evaluation so far (transformers' own record,
    best_metric and best_global_step, comes back with trainer_state.json)."""
    found = [p for p in checkpoints(run.folder.path) if is_resumable_checkpoint(p)]
    run.resume_from = found[-1] if found else None
    if run.resume_from is None:
        if latest_checkpoint(run.folder.path) is not None:
            log.info("resume: only weights-only checkpoints (no optimizer state): starting over")
            run.folder.truncate_metrics_after(-1)
        else:
            log.info("resume: no checkpoint in %s, starting from the beginning", run.folder.path)
        return
    log.info("resuming from %s", run.resume_from.name)
    run.folder.truncate_metrics_after(checkpoint_step(run.resume_from))
    run.folder.truncate_tokens_after(checkpoint_step(run.resume_from))
    run.metrics.restore(run.folder.read_metrics())
    if run.early_stopping is not None:
        run.early_stopping.restore(run.resume_from)


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
        recorder = make_recorder(run, prepared) if run.config.record_tokens else None
    if run.stopper.requested_here():
        raise Cancelled("stop requested before the first step")
    trainer = build_trainer(run, prepared, recorder)
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
    benchmarks = None
    if run.config.eval_tasks and run.args.process_index == 0:  # the others are done
        with run.timed("benchmarks_s"):
            benchmarks = _benchmarks(run, trainer)
    return _finish(run, trainer, "succeeded", train_s, benchmarks)


def _benchmarks(run: Run, trainer: EntroDropTrainer) -> dict[str, Any]:
    """The run's eval_tasks on its final weights (in memory) and its best checkpoint."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.eval()
    step = trainer.state.global_step
    final = replace(run.loaded, model=model)
    targets = [Target("final", step, lambda: final)]
    if (best := best_target(run.folder.path, step, str(run.args.device))) is not None:
        targets.append(best)
    config = run.config
    request = BenchmarkRequest(
        list(config.eval_tasks), config.eval_limit, config.eval_allow_code_execution
    )
    outcome = run_benchmarks(
        run.folder, targets, request, run.stopper.requested_here, run.status.benchmark_progress
    )
    return outcome.summary(request)


def build_trainer(
    run: Run, prepared: Prepared, recorder: TokenRecorder | None = None
) -> EntroDropTrainer:
    """The EntroDropTrainer for a set-up run, with the run folder's callbacks."""
    config = run.config
    trainer = EntroDropTrainer(
        model=run.loaded.model,
        args=run.args,
        train_dataset=BlockDataset.from_rows(run.data.train, prepared.train_entropies),
        eval_dataset=BlockDataset.from_rows(run.data.heldout),
        processing_class=run.loaded.tokenizer,
        data_collator=EntroDropCollator(pad_token_id=run.loaded.tokenizer.pad_token_id or 0),
        entrodrop=config.entrodrop if config.method in DROPPING_METHODS else None,
        drop_method="random" if config.method == "random" else "entrodrop",
        diagnostics=prepared.diagnostics,
        token_recorder=recorder,
        callbacks=[
            run.metrics,
            run.status,
            run.stopper,
            FinalLogCallback(),
            run.retention,
            *([run.early_stopping] if run.early_stopping is not None else []),
        ],
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


def best_record(run: Run, trainer: EntroDropTrainer, outcome: str) -> dict[str, Any]:
    """summary.json's and status.json's best evaluation and early stopping fields."""
    best, state = run.metrics.best, trainer.state
    stopped_at = run.early_stopping.stopped_at if run.early_stopping is not None else None
    early = outcome == "succeeded" and stopped_at is not None and stopped_at < state.max_steps
    kept = best_checkpoint(run.folder.path)
    return {
        BEST_METRIC: run.config.best_metric,
        BEST_STEP: None if best is None else best.step,
        BEST_METRICS: None if best is None else best.metrics,
        "best_checkpoint": str(kept) if kept is not None else None,
        STOPPED_EARLY: early,
        STOP_REASON: stop_reason(run.config, state.global_step, best) if early else None,
    }


def eval_size(run: Run) -> dict[str, int]:
    """Tokens one evaluation scores (held-out and general text) and the training tokens."""
    general = 0 if run.data.general is None else run.data.general.n_tokens
    return {
        "eval_tokens": run.data.heldout.n_tokens + general,
        "train_tokens": run.data.train.n_tokens,
    }


def _finish(
    run: Run,
    trainer: EntroDropTrainer,
    outcome: Literal["succeeded", "cancelled"],
    train_s: float,
    benchmarks: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write summary.json and the final status; returns the summary."""
    folder, state, metrics = run.folder, trainer.state, run.metrics
    saved = outcome == "succeeded" and run.config.save_model
    record = best_record(run, trainer, outcome)
    summary: dict[str, Any] = {
        "status": outcome,
        "run_dir": str(folder.path),
        "method": run.config.method,
        "steps": state.global_step,
        "total_steps": state.max_steps,
        "final": dict(metrics.latest),
        "final_eval_loss": metrics.latest.get(EVAL_LOSS),
        "train_tokens": run.data.train.n_tokens,  # the model card's "training tokens"
        **record,
        "train_s": train_s,
        "step_time_s": run.status.mean_step_s,
        "wall_s": time.time() - run.started,
        "timing": {**run.timing, **run.status.timing(), **eval_size(run)},
        "model_dir": str(folder.model_dir) if saved else None,
        "last_checkpoint": str(p) if (p := latest_checkpoint(folder.path)) else None,
        "data": run.data.report,
        "benchmarks": benchmarks,
    }
    folder.write_summary(summary)
    if record[STOP_REASON]:
        log.info("%s", record[STOP_REASON])
    folder.write_status(
        outcome,
        step=state.global_step,
        total_steps=state.max_steps,
        # A run early stopping ended is done: its progress is whole, its step says where it ended.
        progress=1.0 if outcome == "succeeded" else state.global_step / max(1, state.max_steps),
        eta_s=None if outcome != "succeeded" else 0.0,
        **{k: record[k] for k in (BEST_STEP, BEST_METRICS, STOPPED_EARLY, STOP_REASON)},
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


def evaluate_main(folder: RunFolder) -> int:
    """Benchmark a finished run (the dashboard's Evaluate action). The run stays `succeeded`:
    its training is done whatever happens here; a failure is reported in status.json's error."""
    stopper = StopCallback(folder.stop_path)
    restore_signals = stopper.install_signal_handlers()
    status = StatusCallback(folder)
    error = None
    try:
        with log_file(folder), quiet_loading_bars():
            evaluate_folder(folder, stopper.requested_here, status.benchmark_progress)
    except Exception as exc:  # a broken model or request: say it, the run's result stands
        error = f"evaluation failed: {describe(exc)}"
        log.error("%s\n%s", error, traceback.format_exc())
    finally:
        restore_signals()
    folder.write_status("succeeded", progress=1.0, eta_s=0.0, starting=False, error=error)
    return 0 if error is None else 1


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
    parser.add_argument(
        "--evaluate", action="store_true", help="benchmark the finished run (no training)"
    )
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
    if ns.evaluate:
        return evaluate_main(folder)
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
