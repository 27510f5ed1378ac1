"""Trainer callbacks: metrics lines and subscribers, status.json, clean stop, the schedule clock."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import (
    ProgressCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from entrodrop import metrics
from entrodrop.launch import parent_alive
from entrodrop.runfolder import BEST_METRICS, BEST_STEP, RunFolder
from entrodrop.training.collator import ScheduleClock

log = logging.getLogger(__name__)

MetricRow = dict[str, Any]
Subscriber = Callable[[list[MetricRow]], None]


def metric_rows(logs: Mapping[str, Any], step: int, epoch: float | None) -> list[MetricRow]:
    """One row per known, finite metric in a Trainer log dict."""
    now = time.time()
    rows = []
    for key, value in logs.items():
        name = metrics.TRAINER_NAMES.get(key, key)
        if not name.startswith(metrics.PREFIXES) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            log.warning("step %d: %s is %s, not written", step, name, value)
            continue
        rows.append(
            {"step": step, "name": name, "value": float(value), "epoch": epoch or 0.0, "time": now}
        )
    return rows


class MetricsCallback(TrainerCallback):
    """Appends every logged metric to metrics.jsonl and hands the rows to subscribers (main process).

    ``subscribe(fn)``: ``fn(rows)`` is called with the new rows each time the Trainer logs; the
    dashboard or a user's script can watch a run this way. ``latest`` and ``best`` (by
    ``best_metric``, :func:`entrodrop.metrics.best_evaluation`) feed the run summary.
    """

    def __init__(
        self,
        folder: RunFolder | None = None,
        subscribers: Sequence[Subscriber] = (),
        best_metric: str = metrics.EVAL_LOSS,
    ) -> None:
        self.folder = folder
        self.subscribers = list(subscribers)
        self.best_metric = best_metric
        self.latest: dict[str, float] = {}
        self._evaluations: list[MetricRow] = []  # the selectable metrics' rows: a few per eval

    @property
    def best(self) -> metrics.Best | None:
        """The best evaluation so far (the same rule every reader of metrics.jsonl applies)."""
        return metrics.best_evaluation(self._evaluations, self.best_metric)

    def restore(self, rows: Sequence[MetricRow]) -> None:
        """On resume: the latest values and the evaluations of the rows kept (metrics.jsonl
        cut back to the checkpoint), so the summary's final and best cover the whole run."""
        for row in rows:
            self._take(row)

    def _take(self, row: MetricRow) -> None:
        self.latest[row["name"]] = row["value"]
        if row["name"] in metrics.SELECTABLE:
            self._evaluations.append(row)

    def subscribe(self, fn: Subscriber) -> None:
        self.subscribers.append(fn)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        rows = metric_rows(logs, state.global_step, state.epoch)
        if not rows:
            return
        if self.folder is not None:
            self.folder.append_metrics(rows)
        for row in rows:
            self._take(row)
        log.info(
            "step %d: %s",
            state.global_step,
            "  ".join(f"{r['name']}={r['value']:.4g}" for r in rows),
        )
        for fn in self.subscribers:
            try:
                fn(rows)
            except Exception:  # a broken subscriber must not kill the run; say so loudly
                log.exception("metrics subscriber %r failed", fn)


# The stages of a run as status.json names them (`stage`), with the words a person reads
# (`stage_text`, e.g. "scoring with the starting model (held-out data: the low/high-entropy
# split) 3/12"). The one place they live. The pre-pass's `what` says what it scores and why:
# REFERENCE_WHAT below.
STAGES = {
    "loading": "loading model",
    "reference": "scoring with the starting model",
    "training": "training step",
    "evaluating": "evaluating",
    "benchmarks": "benchmarks",
}


# What the pre-pass scores with the starting model, and what for (the `what` of its stage): the
# reference entropies the drops use (entropy source `reference`), or only the split of the
# held-out loss into low- and high-entropy tokens (every run; the `online` source needs no more).
REFERENCE_WHAT = {
    "training": "training data: reference entropies for the drops",
    "training sample": "a sample of the training data: the entropy median for the low/high split",
    "held-out": "held-out data: the low/high-entropy split",
}


def stage_text(
    stage: str, done: int | None = None, total: int | None = None, what: str = ""
) -> str:
    """A stage in a person's words, with its count when it has one."""
    what = REFERENCE_WHAT.get(what, what) if stage == "reference" else what
    words = STAGES[stage] + (f" ({what})" if what else "")
    return f"{words} {done}/{total}" if total else words


def remaining_evaluations(step: int, max_steps: int, eval_every: int | None) -> int:
    """Evaluations still to come after `step`: one at every multiple of eval_every up to the end."""
    if not eval_every or eval_every <= 0:
        return 0
    return max(0, max_steps // eval_every - step // eval_every)


class StatusCallback(TrainerCallback):
    """Keeps status.json current (main process): the stage, step, progress and an ETA.

    Until the first step ends (loading, the reference pre-pass, the step-0 evaluation, the first
    step) the run is `starting` and its ETA is null: nothing measured yet says how long the steps take (the
    pre-pass's own remaining time is `stage_eta_s`). During training the ETA is the remaining
    steps x the mean step time plus the remaining evaluations x the mean evaluation time (an
    evaluation can take longer than many steps, so leaving it out made the ETA rise at each one).
    It also times each part of the run (`timing()`: steps, evaluations, checkpoint saves), which
    the run's summary keeps for the next run's cost estimate.
    """

    def __init__(
        self,
        folder: RunFolder,
        min_interval_s: float = 1.0,
        best: Callable[[], metrics.Best | None] | None = None,
    ) -> None:
        self.folder = folder
        self.min_interval_s = min_interval_s
        self.best = best  # the best evaluation so far, shown while the run trains
        self.stage_name = ""
        self._t0 = 0.0
        self._step0 = 0
        self._last_write = 0.0
        self._step_start = 0.0
        self._step_times: list[float] = []
        self._eval_start: float | None = None
        self._eval_times: list[float] = []
        self._eval_s_in_training = 0.0
        self._batch_t0 = 0.0
        self._mark = 0.0  # the end of the last step or evaluation: a checkpoint save starts there
        self._save_times: list[float] = []
        self.starting = True  # until the first step: no ETA yet

    @property
    def mean_step_s(self) -> float | None:
        """Mean wall time of a training step (forward, backward, update; evaluations excluded)."""
        return sum(self._step_times) / len(self._step_times) if self._step_times else None

    @property
    def mean_eval_s(self) -> float | None:
        """Mean wall time of one evaluation (held-out and general text)."""
        return sum(self._eval_times) / len(self._eval_times) if self._eval_times else None

    def stage(self, name: str, force: bool = True, **fields: Any) -> None:
        """Write status.json with a new stage (always) or the same stage's progress (throttled)."""
        text = stage_text(
            name, fields.pop("done", None), fields.pop("total", None), fields.pop("what", "")
        )
        changed = name != self.stage_name
        if changed:
            log.info("%s", text)
        self.stage_name = name
        now = time.monotonic()
        if not (force or changed) and now - self._last_write < self.min_interval_s:
            return
        self._last_write = now
        if self.starting:
            fields["eta_s"] = None
        self.folder.write_status(
            "running", stage=name, stage_text=text, starting=self.starting, **fields
        )

    def benchmark_progress(self, done: int, total: int, what: str, eta_s: float | None) -> None:
        """The benchmarks stage's hook (entrodrop.training.benchmarks), before each task."""
        self.stage("benchmarks", done=done, total=total, what=what, eta_s=eta_s, stage_eta_s=eta_s)

    def reference_progress(self, what: str, done: int, total: int) -> None:
        """The pre-pass's hook, called before the first batch (done=0) and after each one."""
        now = time.monotonic()
        if done == 0:
            self._batch_t0 = now
        eta = (now - self._batch_t0) / done * (total - done) if done else None
        self.stage("reference", force=done == 0, done=done, total=total, what=what, stage_eta_s=eta)

    def begin_evaluation(self, state: TrainerState | None = None) -> None:
        """An evaluation starts now (the step-0 one from run.py, the others from on_step_end)."""
        self._eval_start = time.monotonic()
        fields: dict[str, Any] = {}
        if state is not None and state.max_steps > 0:
            fields = {"step": state.global_step, "total_steps": state.max_steps}
        self.stage("evaluating", **fields)

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._eval_start is None:
            return
        self._mark = time.monotonic()
        took = self._mark - self._eval_start
        self._eval_times.append(took)
        if self._t0:  # an evaluation during training: its time is not step time
            self._eval_s_in_training += took
        self._eval_start = None
        if self._t0 and state.global_step < state.max_steps:
            self._write(state, args, force=True)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._t0, self._step0 = time.monotonic(), state.global_step
        self._write(state, args, force=True)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._mark:
            self._save_times.append(time.monotonic() - self._mark)

    def timing(self) -> dict[str, float | int | None]:
        """What each part of training took here: steps, evaluations, checkpoint saves."""

        def mean(xs: list[float]) -> float | None:
            return sum(xs) / len(xs) if xs else None

        return {
            "steps": len(self._step_times),
            "step_s": self.mean_step_s,
            "evaluations": len(self._eval_times),
            "eval_s": self.mean_eval_s,
            "checkpoints": len(self._save_times),
            "checkpoint_s": mean(self._save_times),
        }

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._step_start = time.monotonic()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._mark = time.monotonic()
        self._step_times.append(self._mark - self._step_start)
        self.starting = False  # a step is done: its time makes an ETA
        # DefaultFlowCallback (first in the list) has decided by now whether this step evaluates.
        if control.should_evaluate and state.is_world_process_zero:
            self.begin_evaluation(state)
            return
        self._write(state, args, force=state.global_step >= state.max_steps)

    def _eta(self, state: TrainerState, args: TrainingArguments) -> float | None:
        done = state.global_step - self._step0
        if done <= 0:
            return None
        step_s = (time.monotonic() - self._t0 - self._eval_s_in_training) / done
        eta = step_s * (state.max_steps - state.global_step)
        every = int(args.eval_steps or 0) if args.eval_strategy == "steps" else 0
        evals = remaining_evaluations(state.global_step, state.max_steps, every)
        if evals and self.mean_eval_s is not None:
            eta += evals * self.mean_eval_s
        return max(0.0, eta)

    def _write(self, state: TrainerState, args: TrainingArguments, force: bool) -> None:
        if not state.is_world_process_zero:
            return
        total = max(1, state.max_steps)
        self.stage(
            "training",
            force=force,
            done=state.global_step,
            total=total,
            step=state.global_step,
            total_steps=total,
            progress=state.global_step / total,
            eta_s=self._eta(state, args),
            **self.best_fields(),
        )

    def best_fields(self) -> dict[str, Any]:
        """status.json's record of the best evaluation so far (summary.json's names)."""
        best = self.best() if self.best is not None else None
        if best is None:
            return {}
        return {BEST_STEP: best.step, BEST_METRICS: best.metrics}


class StopCallback(TrainerCallback):
    """SIGTERM / SIGINT or a STOP file -> the run stops cleanly after this step, saving a checkpoint.

    Every process must stop at the same step (otherwise the others wait forever in the next
    gradient all-reduce), so the processes agree on the request with a one-integer all-reduce.
    A second signal while stopping raises KeyboardInterrupt.
    """

    def __init__(self, stop_file: Path | None = None, save_on_stop: bool = True) -> None:
        self.stop_file = stop_file
        self.save_on_stop = save_on_stop
        self.signalled = False
        self.stopped = False

    def request(self) -> None:
        self.signalled = True

    def requested_here(self) -> bool:
        return (
            self.signalled
            or (self.stop_file is not None and self.stop_file.exists())
            or not parent_alive()
        )

    def install_signal_handlers(self) -> Callable[[], None]:
        """Catch SIGTERM/SIGINT (main thread only); returns a function that restores the old ones."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: Any) -> None:
            if self.signalled:
                raise KeyboardInterrupt(f"signal {signum} received twice")
            log.info("signal %d received: stopping after this step", signum)
            self.signalled = True

        for s in previous:
            signal.signal(s, handler)

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h)

        return restore

    def _agreed(self, args: TrainingArguments) -> bool:
        flag = self.requested_here()
        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return flag
        t = torch.tensor([int(flag)], device=args.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._agreed(args):
            self.stopped = True
            control.should_training_stop = True
            control.should_save = self.save_on_stop
            control.should_log = True
            if self.save_on_stop and args.save_only_model:
                # A stopped run is one to resume: its last checkpoint keeps the optimizer state
                # even when the run's periodic checkpoints are weights-only.
                args.save_only_model = False


class FinalLogCallback(TrainerCallback):
    """Log the training loss at the last step too, not only every `logging_steps`."""

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.global_step >= state.max_steps:
            control.should_log = True


class ScheduleCallback(TrainerCallback):
    """Sets ``clock.progress`` = global_step / max_steps before each step, for EntroDropCollator.

    Needed only with a plain ``Trainer``; ``EntroDropTrainer`` keeps its clock current itself.
    """

    def __init__(self, clock: ScheduleClock) -> None:
        self.clock = clock

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.clock.progress = state.global_step / max(1, state.max_steps)


class BarCallback(ProgressCallback):
    """One tqdm bar for the run, the latest losses in its postfix (no log dicts printed)."""

    SHOWN = {"loss": "loss", metrics.EVAL_LOSS: "eval", metrics.FRACTION_REALISED: "dropped"}

    def __init__(self) -> None:
        super().__init__()
        self._latest: dict[str, str] = {}

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        bar = self.training_bar
        if not state.is_world_process_zero or bar is None or not logs:
            return
        self._latest.update(
            {short: f"{logs[k]:.4g}" for k, short in self.SHOWN.items() if k in logs}
        )
        if self._latest:
            bar.set_postfix(self._latest, refresh=False)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        super().on_step_end(args, state, control, **kwargs)
        if control.should_evaluate and self.training_bar is not None:
            self.training_bar.set_description("evaluating")  # else the bar sits still, unexplained

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        super().on_evaluate(args, state, control, **kwargs)
        if self.training_bar is not None:
            self.training_bar.set_description("training")
