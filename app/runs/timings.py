"""The measured timings of finished runs on this machine, kept for the next runs' estimates.

After a run succeeds the runner hands its summary.json `timing` (what its steps, evaluations,
checkpoint saves, pre-pass and final save took) and its wall time from launch to exit to
`remember`; they are kept in <home>/step_times.json, each part under what it depends on (model,
precision, shape, data), with this model's speed in tokens per second and the start-up as what
the parts leave of the wall time. A run set by epochs also leaves its training block count.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from entrodrop import disk
from entrodrop import runfolder as rf
from entrodrop.config import DROPPING_METHODS, RunConfig

log = logging.getLogger(__name__)

STEP_TIMES = "step_times.json"
MAX_ENTRIES = 500  # each table stays small: the oldest measurements go first
# step_s: seconds a step; blocks: training blocks per epoch; the others: seconds of one such
# part (one evaluation, one checkpoint save); *_tok_s: this model's tokens per second here;
# bench_s: the benchmarks stage's seconds per model scored (final, best).
TABLES = ("step_s", "blocks", "eval_s", "reference_s", "startup_s", "checkpoint_s", "save_s",
          "train_tok_s", "fwd_tok_s", "bench_s")  # fmt: skip
Tables = dict[str, dict[str, float]]


def step_key(config: dict[str, Any]) -> str:
    """What a step's time depends on most: model, precision, sequence length, batch size."""
    return "|".join(
        str(config.get(k)) for k in ("model", "dtype", "seq_len", "batch_size", "grad_accum")
    )


def tokens_per_step(config: dict[str, Any], processes: int) -> int:
    """Training tokens one optimizer step sees: batch × accumulation × length × processes."""
    return (
        int(config.get("batch_size") or 1)
        * int(config.get("grad_accum") or 1)
        * int(config.get("seq_len") or 1)
        * max(1, processes)
    )


# Config fields the number of training blocks depends on (a held-out file makes all of
# `dataset` train).
DATA_KEYS = ("model", "dataset", "heldout_dataset", "seq_len", "max_train_tokens")


def data_key(config: dict[str, Any]) -> str:
    """What the number of training blocks depends on: model (tokenizer), data, length, cap."""
    return "|".join(str(config.get(k)) for k in DATA_KEYS)


def model_key(config: dict[str, Any]) -> str:
    """Start-up and this model's speed per token: the model and the precision."""
    return f"{config.get('model')}|{config.get('dtype')}"


def eval_key(config: dict[str, Any]) -> str:
    """What an evaluation's time depends on: model, precision, shape, the evaluated data."""
    keys = ("model", "dtype", "seq_len", "batch_size", "max_eval_tokens", "dataset",
            "heldout_dataset", "general_dataset")  # fmt: skip
    return "|".join(str(config.get(k)) for k in keys)


def bench_key(config: dict[str, Any]) -> str:
    """What the benchmarks stage takes per model scored depends on: model, precision, tasks."""
    tasks = ",".join(config.get("eval_tasks") or [])
    return f"{model_key(config)}|{tasks}|{config.get('eval_limit')}"


def full_reference(config: dict[str, Any]) -> bool:
    """Whether the pre-pass scores all training tokens (the reference entropy source)."""
    ed = config.get("entrodrop") or {}
    return config.get("method") in DROPPING_METHODS and ed.get("entropy_source") == "reference"


def reference_key(config: dict[str, Any]) -> str:
    return f"{data_key(config)}|{config.get('dtype')}|{full_reference(config)}"


def checkpoint_key(config: RunConfig) -> str:
    adapter = config.adapter.kind if config.adapter else "full"
    return f"{config.model}|{adapter}|{disk.checkpoint_policy(config).optimizer_state}"


def _positive(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def load(home: Path) -> dict[str, dict[str, float]]:
    data = rf.read_json(home / STEP_TIMES) or {}
    tables: dict[str, dict[str, float]] = {}
    for table in TABLES:
        raw = data.get(table)
        raw = raw if isinstance(raw, dict) else {}
        tables[table] = {k: v for k, x in raw.items() if (v := _positive(x)) is not None}
    return tables


def _put(table: dict[str, float], key: str, value: float | None) -> None:
    if value is None:
        return
    table.pop(key, None)  # re-inserted last: the newest entries survive the cap
    table[key] = value
    for old in list(table)[:-MAX_ENTRIES]:
        del table[old]


def remember(
    home: Path, run_dir: Path, config: dict[str, Any], processes: int, wall_s: float | None = None
) -> None:
    """After a succeeded run: keep what its parts took (`wall_s`: the attempt's wall time, from
    launch to exit) and, set by epochs, its training blocks."""
    summary = rf.read_json(run_dir / rf.SUMMARY) or {}
    timing = summary.get("timing")
    timing = timing if isinstance(timing, dict) else {}
    tables = load(home)
    step_s = _positive(summary.get("step_time_s"))
    _put(tables["step_s"], step_key(config), step_s)
    steps, epochs = _positive(summary.get("total_steps")), _positive(config.get("epochs"))
    if steps is not None and epochs is not None and config.get("max_steps") is None:
        per_step = tokens_per_step(config, processes)
        _put(tables["blocks"], data_key(config), steps / epochs * per_step / config["seq_len"])
    _remember_parts(tables, config, processes, timing, wall_s)
    _remember_benchmarks(tables, config, summary.get("benchmarks"), timing)
    try:
        rf.write_json_atomic(home / STEP_TIMES, tables)
    except OSError as exc:  # an estimate is a convenience: never fail a run over it
        log.warning("cannot record the run's timing in %s: %s", home / STEP_TIMES, exc)


def _remember_parts(
    tables: dict[str, dict[str, float]],
    config: dict[str, Any],
    processes: int,
    timing: dict[str, Any],
    wall_s: float | None,
) -> None:
    """Each timed part under its key, this model's speeds, and start-up as what remains."""
    get = {k: _positive(timing.get(k)) for k in timing}
    cfg = RunConfig.model_validate(config)
    _put(tables["eval_s"], eval_key(config), get.get("eval_s"))
    _put(tables["reference_s"], reference_key(config), get.get("reference_s"))
    _put(tables["checkpoint_s"], checkpoint_key(cfg), get.get("checkpoint_s"))
    _put(tables["save_s"], model_key(config), get.get("save_s"))
    step_s, eval_s, eval_tokens = get.get("step_s"), get.get("eval_s"), get.get("eval_tokens")
    if step_s:
        _put(tables["train_tok_s"], model_key(config), tokens_per_step(config, processes) / step_s)
    if eval_s and eval_tokens:
        _put(tables["fwd_tok_s"], model_key(config), eval_tokens / eval_s)
    if wall_s is None:
        return
    counted = sum(
        (get.get(n) or 0.0) * (get.get(c) or 0.0)
        for n, c in (
            ("steps", "step_s"),
            ("evaluations", "eval_s"),
            ("checkpoints", "checkpoint_s"),
        )
    )
    done = sum(get.get(k) or 0.0 for k in ("reference_s", "save_s", "benchmarks_s"))
    rest = wall_s - counted - done
    _put(tables["startup_s"], model_key(config), max(0.1, rest))


def _remember_benchmarks(
    tables: Tables, config: dict[str, Any], bench: Any, timing: dict[str, Any]
) -> None:
    """The benchmarks stage's seconds per model it scored (summary.json's "final" and "best")."""
    seconds = _positive(timing.get("benchmarks_s"))
    if (
        seconds is None
        or not isinstance(bench, dict)
        or bench.get("stopped")
        or bench.get("errors")
    ):
        return  # a stage cut short or failed says little about a whole one
    scored = sum(1 for which in ("final", "best") if isinstance(bench.get(which), dict))
    if scored:
        _put(tables["bench_s"], bench_key(config), seconds / scored)
