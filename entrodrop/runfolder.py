"""The run folder: THE contract between the server and a training process.

One folder per run, ``<home>/runs/<run id>/``. The server writes ``config.json`` (and ``STOP`` to
ask for a stop) and appends the launcher's own output to ``output.txt``; the training process
writes everything else, each file in one way only:

========================  ==========================================================  ============
file                      what                                                        written
========================  ==========================================================  ============
``config.json``           the RunConfig                                               server
``status.json``           status, stage, stage_text, step, total_steps, progress,     atomically
                          eta_s, error, pid... (stages: training/callbacks.py)
``metrics.jsonl``         one JSON line per metric value: step, name, value, epoch    appended
``log.txt``               entrodrop's and transformers' log records                   appended
``output.txt``            the process's stdout/stderr, one ATTEMPT_HEADER per launch   server
``STOP``                  exists: stop after this step, with a checkpoint             server
``summary.json``          the run's outcome, final and best metrics (SUMMARY_FIELDS)  atomically
``evaluate.json``         a request to benchmark the finished run (tasks, limit)      server
``checkpoint-<step>/``    Trainer checkpoints (safetensors), used to resume; the      Trainer
                          last ``save_total_limit`` are kept, plus the best one
``model/``                the final model (config, safetensors, tokenizer)            at the end
                          or, for a LoRA run, its adapter (ADAPTER_FILES, tokenizer)
``tokens.safetensors``    the per-token record: each probe token's loss and entropy   atomically
                          at every evaluation (entrodrop/tokens/record.py)
========================  ==========================================================  ============

``metrics.jsonl`` has one writer, the training process: on resume it cuts the rows logged after
its checkpoint (:meth:`RunFolder.truncate_metrics_after`) and logs those steps again; the server
only reads it. Readers never see half a ``status.json``, ``summary.json`` or token record; the
record follows the attempt as the metrics do: a resume cuts it back to its checkpoint's step
(:meth:`RunFolder.truncate_tokens_after`), a start from step 0 removes the old one.

A checkpoint counts only when it is complete (:func:`is_complete_checkpoint`): a process killed
while saving leaves a ``checkpoint-<step>/`` without its trainer state, or with half its weights,
and resume, Inspect and the run page must all pass over it.

The best checkpoint: ``trainer_state.json`` (transformers' record, in every checkpoint) names
the step of the best evaluation (``best_global_step``); :func:`best_checkpoint` finds its folder,
which the retention keeps beside the last one. ``summary.json`` repeats it as ``best_step`` with
``best_metrics``, and says whether early stopping ended the run (``stopped_early``).
``run:<id>`` is a run's final model, ``run:<id>:best`` its best checkpoint,
``run:<id>:<step>`` one checkpoint (:func:`parse_run_spec`, :func:`run_checkpoint`).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import signal
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from entrodrop.config import RunConfig

if TYPE_CHECKING:
    from entrodrop.tokens.record import TokenRecord

# ---------------------------------------------------------------- file names

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
LOG = "log.txt"
OUTPUT = "output.txt"
STOP = "STOP"
SUMMARY = "summary.json"
EVALUATE = "evaluate.json"  # the server's request to benchmark a finished run: tasks, limit
MODEL = "model"
# The per-token record: entrodrop/tokens/record.py reads and writes it (docs/tokens.md).
TOKENS = "tokens.safetensors"
# transformers' names, written out so that the server need not import transformers (~1 s) to
# list a folder; tests/test_runfolder.py checks that they still equal transformers' own
# (trainer_utils.PREFIX_CHECKPOINT_DIR, trainer.TRAINER_STATE_NAME, utils.SAFE_WEIGHTS_*).
CHECKPOINT_PREFIX = "checkpoint"
TRAINER_STATE = "trainer_state.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# peft's names (peft.utils.CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME): a LoRA run's checkpoints and
# model/ hold only its adapter, both files together.
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
# Ours, one per process in each checkpoint of a run that drops tokens: the drop generator's state
# (and the online input mode's entropy memory). Written with the weights, before the Trainer's
# trainer_state.json, so a checkpoint that counts as complete always holds it.
DROP_STATE = "entrodrop_state_{rank}.safetensors"
# transformers' scheduler file (trainer.SCHEDULER_NAME): written with the optimizer state, and
# left out of a weights-only checkpoint (save_only_model), which cannot continue a run.
SCHEDULER_STATE = "scheduler.pt"

# summary.json's keys about the best evaluation and early stopping (the pages and the CLI
# read them; the training process writes them).
BEST_STEP = "best_step"  # the step of the best evaluation (>= 1), or null
BEST_METRIC = "best_metric"  # the metric that judged it (RunConfig.best_metric)
BEST_METRICS = "best_metrics"  # every evaluation metric at that step
STOPPED_EARLY = "stopped_early"  # true when early stopping ended the run
STOP_REASON = "stop_reason"  # why, in words; null otherwise


def drop_state_path(checkpoint: Path, rank: int) -> Path:
    """Where process `rank` keeps its drop state in a checkpoint folder."""
    return checkpoint / DROP_STATE.format(rank=rank)


# ---------------------------------------------------------------- statuses

Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
STATUSES: tuple[Status, ...] = get_args(Status)
ACTIVE: tuple[Status, ...] = ("queued", "running")
FINAL: tuple[Status, ...] = ("succeeded", "failed", "cancelled", "interrupted")
# What a training process may write into status.json. `queued` and `interrupted` are the
# server's: a run waiting for a process, or one whose server stopped under it.
PROCESS_STATUSES: tuple[Status, ...] = ("running", "succeeded", "failed", "cancelled")

# ---------------------------------------------------------------- run ids

RUN_ID_FORMAT = "r%Y%m%d-%H%M%S-"  # + 4 hex digits: r20261127-093512-3fa2 (UTC, time-ordered)
# What readers accept as a run id: one safe path segment. It takes the ids made now, those of
# older servers (r261127093512-3fa2) and folders a user named (`entrodrop train --run-dir`).
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def new_run_id() -> str:
    """A short, URL-safe, time-ordered run id, e.g. r20261127-093512-3fa2."""
    return time.strftime(RUN_ID_FORMAT, time.gmtime()) + secrets.token_hex(2)


def is_run_id(name: str) -> bool:
    """True if `name` can name a run folder (never `..`, a slash or an empty string)."""
    return bool(RUN_ID.match(name))


# ---------------------------------------------------------------- checkpoints

_CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Where the Trainer saves the checkpoint of `step`: <run_dir>/checkpoint-<step>."""
    return Path(run_dir) / f"{CHECKPOINT_PREFIX}-{step}"


def _step(path: Path) -> int | None:
    found = _CHECKPOINT_NAME.match(path.name)
    return int(found.group(1)) if found else None


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint-<step> folder (ValueError for any other name)."""
    step = _step(path)
    if step is None:
        raise ValueError(f"{path.name!r} is not a {CHECKPOINT_PREFIX}-<step> folder")
    return step


def has_weights(path: Path) -> bool:
    """Full weights (safetensors) or a whole adapter (its config and its safetensors)."""
    return any((path / name).is_file() for name in WEIGHT_FILES) or all(
        (path / name).is_file() for name in ADAPTER_FILES
    )


def is_complete_checkpoint(path: Path) -> bool:
    """A checkpoint-<step>/ with weights (or an adapter) and the trainer state (written last:
    after the weights, the optimizer and our drop state, so everything resume needs is there)."""
    return _step(path) is not None and (path / TRAINER_STATE).is_file() and has_weights(path)


def checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints of a run, oldest (lowest step) first; half-written ones skipped."""
    try:
        found = [p for p in run_dir.iterdir() if is_complete_checkpoint(p)]
    except OSError:  # no such folder yet
        return []
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step (numbers, not mtimes, decide), or None."""
    found = checkpoints(run_dir)
    return found[-1] if found else None


def is_resumable_checkpoint(path: Path) -> bool:
    """A complete checkpoint with the optimizer and scheduler state a run continues from (a
    weights-only one has neither)."""
    return is_complete_checkpoint(path) and (path / SCHEDULER_STATE).is_file()


def trainer_state(path: Path) -> dict[str, Any]:
    """A checkpoint's trainer_state.json ({} when missing or unreadable)."""
    return read_json(path / TRAINER_STATE) or {}


def best_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint of the run's best evaluation, or None (no checkpoint kept, or
    none evaluated yet): the step transformers recorded in the latest checkpoint's
    trainer_state.json (``best_global_step``), else summary.json's ``best_step``."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None
    step = trainer_state(latest).get("best_global_step")
    if not isinstance(step, int) or step < 1:
        step = (read_json(run_dir / SUMMARY) or {}).get(BEST_STEP)
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    found = checkpoint_dir(run_dir, step)
    return found if is_complete_checkpoint(found) else None


def has_final_model(run_dir: Path) -> bool:
    """True once the run saved its final model/: config.json (written with the weights) or a
    whole adapter."""
    model = run_dir / MODEL
    return (model / "config.json").is_file() or all((model / n).is_file() for n in ADAPTER_FILES)


def run_model_dir(run_dir: Path) -> Path | None:
    """The model a run produced: its final model/, else its latest complete checkpoint."""
    if has_final_model(run_dir):
        return run_dir / MODEL
    return latest_checkpoint(run_dir)


# ---------------------------------------------------------------- run:<id>[:which] specs

Which = str | int  # "final", "best" or a step
FINAL_MODEL, BEST_MODEL = "final", "best"  # which model of a run
RUN_SPEC_PREFIX = "run:"


def parse_run_spec(spec: str) -> tuple[str, Which]:
    """``run:<id>`` -> (id, "final"); ``run:<id>:best`` -> (id, "best"); ``run:<id>:<step>`` ->
    (id, step); ValueError for anything else (the id is checked with :func:`is_run_id`)."""
    if not spec.startswith(RUN_SPEC_PREFIX):
        raise ValueError(f"{spec!r} is not a run:<id> spec")
    run_id, sep, which = spec[len(RUN_SPEC_PREFIX) :].partition(":")
    if not is_run_id(run_id):
        raise ValueError(f"invalid run id {run_id!r}")
    return run_id, parse_which(which if sep else FINAL_MODEL)  # "run:<id>:" names nothing


def parse_which(which: str) -> Which:
    """'final', 'best' or a step number (a checkpoint), as a spec or `--checkpoint` gives it."""
    text = which.strip()
    if text in (FINAL_MODEL, BEST_MODEL):
        return text
    if text.isdigit() and len(text) <= 9:
        return int(text)
    raise ValueError(f"checkpoint {which!r}: use 'final', 'best' or a step number")


def run_checkpoint(run_dir: Path, which: Which) -> Path:
    """The folder of a run's final model, best checkpoint or checkpoint at a step; ValueError
    saying why when the run has none (final: model/, else the latest complete checkpoint)."""
    if which == FINAL_MODEL:
        found = run_model_dir(run_dir)
        if found is None:
            raise ValueError(f"run {run_dir.name!r} has no model or checkpoint yet")
        return found
    if which == BEST_MODEL:
        best = best_checkpoint(run_dir)
        if best is None:
            raise ValueError(
                f"run {run_dir.name!r} has no best checkpoint (it kept no checkpoints, or has "
                "not evaluated after its first step yet)"
            )
        return best
    assert isinstance(which, int)
    step = checkpoint_dir(run_dir, which)
    if not is_complete_checkpoint(step):
        kept = ", ".join(str(checkpoint_step(p)) for p in checkpoints(run_dir)) or "none"
        raise ValueError(f"run {run_dir.name!r} has no checkpoint at step {which} (kept: {kept})")
    return step


# ---------------------------------------------------------------- atomic writers


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file through a temporary one and a rename: readers see the old or the new file."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Bytes through a temporary file and a rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """JSON (NaN and inf written as null) through :func:`write_text_atomic`."""
    write_text_atomic(path, json.dumps(_finite(dict(data)), indent=2) + "\n")


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---------------------------------------------------------------- readers


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None if the file is missing, partial or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_status(run_dir: Path, since: float = 0.0) -> dict[str, Any] | None:
    """status.json, or None; None too if older than `since` (a resumed run's folder holds the
    previous attempt's status until the new process rewrites it)."""
    st = read_json(run_dir / STATUS)
    if st is None:
        return None
    updated = st.get("updated_at")
    if since and isinstance(updated, int | float) and updated < since - 1.0:
        return None
    return st


def tail_lines(path: Path, n: int = 40, max_bytes: int = 32_768) -> list[str]:
    """The last `n` lines of a text file, reading at most `max_bytes` from its end."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line is probably cut
    # Progress bars redraw with carriage returns: keep only what a terminal would show last.
    return [line.rsplit("\r", 1)[-1] for line in lines][-n:]


ATTEMPT_HEADER = "--- attempt "  # the server's line in output.txt before each launch

# "ValueError: ...", "torch.OutOfMemoryError: ...", "entrodrop.data.DataError: ..."
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(Error|Exception|Exit|Interrupt)\b.*:\s*\S")


def error_from_lines(lines: list[str]) -> str | None:
    """The most telling error line of a log tail: the last exception line, else the last line."""
    starts = [i for i, line in enumerate(lines) if line.startswith(ATTEMPT_HEADER)]
    if starts:
        lines = lines[starts[-1] + 1 :]  # only this attempt's output
    for line in reversed(lines):
        text = line.strip()
        if _EXC_LINE.match(text):
            return text[:2000]
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:2000]
    return None


def describe_exit(code: int | None) -> str:
    """A person's words for a process exit code (negative: killed by a signal)."""
    if code is None:
        return "the training process ended"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the training process was killed by {name}{hint}"
    return f"the training process exited with code {code}"


# ---------------------------------------------------------------- one run's folder


class RunFolder:
    """Reads and writes one run's files. Only the main process writes (``writer=True``)."""

    def __init__(self, path: str | Path, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self._status: dict[str, Any] = {}

    config_path = property(lambda self: self.path / CONFIG)
    metrics_path = property(lambda self: self.path / METRICS)
    status_path = property(lambda self: self.path / STATUS)
    log_path = property(lambda self: self.path / LOG)
    stop_path = property(lambda self: self.path / STOP)
    model_dir = property(lambda self: self.path / MODEL)
    summary_path = property(lambda self: self.path / SUMMARY)
    tokens_path = property(lambda self: self.path / TOKENS)

    def read_config(self) -> RunConfig:
        return RunConfig.model_validate_json(self.config_path.read_text(encoding="utf-8"))

    def write_config(self, config: RunConfig) -> None:
        """config.json, the launcher's one write, atomically (the folder is created if needed)."""
        write_text_atomic(self.config_path, config.model_dump_json(indent=2) + "\n")

    # ---------------------------------------------------------------- status.json

    def write_status(self, status: Status | None = None, **fields: Any) -> None:
        """Merge fields into status.json and replace it atomically (readers never see half a file)."""
        if not self.writer:
            return
        if not self._status:  # keep started_at and friends from an earlier attempt (resume)
            self._status = read_json(self.status_path) or {}
        if status is not None:
            if status not in PROCESS_STATUSES:
                raise ValueError(f"a training process cannot write status {status!r}")
            self._status["status"] = status
        self._status.update(fields)
        self._status.setdefault("error", None)
        self._status.setdefault("eta_s", None)
        self._status["pid"] = os.getpid()
        self._status["updated_at"] = time.time()
        write_json_atomic(self.status_path, self._status)

    def read_status(self) -> dict[str, Any]:
        return dict(json.loads(self.status_path.read_text(encoding="utf-8")))

    # ---------------------------------------------------------------- metrics.jsonl

    def append_metrics(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append rows as JSON lines and flush at once, so a killed process loses nothing written."""
        if not self.writer:
            return
        lines = "".join(json.dumps(dict(r)) + "\n" for r in rows)
        if lines:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line cut short by a kill: skip it
                continue
        return rows

    def truncate_metrics_after(self, step: int) -> None:
        """On resume: drop rows logged after the checkpoint, which the resumed run logs again.

        The file is replaced (a new inode), which tells the server's reader to read it anew.
        """
        if not self.writer or not self.metrics_path.is_file():
            return
        kept = [r for r in self.read_metrics() if int(r.get("step", 0)) <= step]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        if self.writer:
            write_json_atomic(self.summary_path, summary)

    # ---------------------------------------------------------------- the token record

    def write_tokens(self, record: TokenRecord) -> None:
        """The per-token record, replaced atomically (main process only)."""
        from entrodrop.tokens.record import encode

        if self.writer:
            write_bytes_atomic(self.tokens_path, encode(record))

    def read_tokens(self) -> TokenRecord:
        """The per-token record (NoTokenRecord if there is none)."""
        from entrodrop.tokens.record import read_record

        return read_record(self.tokens_path)

    def truncate_tokens_after(self, step: int) -> None:
        """On resume: drop the rows of evaluations after the checkpoint, as for the metrics.

        An unreadable record is removed: the resumed run starts a new one rather than fail.
        """
        from entrodrop.tokens import TokenRecordError

        if not self.writer or not self.tokens_path.is_file():
            return
        try:
            record = self.read_tokens()
        except TokenRecordError:
            self.remove_tokens()
            return
        self.write_tokens(record.until(step))

    def remove_tokens(self) -> None:
        """A run starting from step 0 starts a new record: the last attempt's goes."""
        if self.writer:
            self.tokens_path.unlink(missing_ok=True)
