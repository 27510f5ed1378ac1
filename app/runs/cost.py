"""What a run will cost before it starts: steps, training tokens and a duration from measured steps.

Finished runs leave their mean step time (summary.json's `step_time_s`); the runner remembers it
in <home>/step_times.json keyed by model, precision, sequence length and batch shape, and the form
turns it into an estimate. A run set by epochs learns its step count from the data: the file also
keeps how many training blocks a finished run's model, data and length gave. With no measurement
for a key the estimate says so, never a guess.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from entrodrop import runfolder as rf
from entrodrop.config import RunConfig

log = logging.getLogger(__name__)

STEP_TIMES = "step_times.json"
WARN_ABOVE_S = 600.0  # the form warns before a launch that takes longer than this
MAX_ENTRIES = 500  # the file stays small: the oldest measurements go first


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


def _positive(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return float(value) if ok else None


def _load(home: Path) -> dict[str, dict[str, float]]:
    data = rf.read_json(home / STEP_TIMES) or {}
    tables: dict[str, dict[str, float]] = {}
    for table in ("step_s", "blocks"):
        raw = data.get(table)
        raw = raw if isinstance(raw, dict) else {}
        tables[table] = {k: v for k, x in raw.items() if (v := _positive(x)) is not None}
    return tables


def _put(table: dict[str, float], key: str, value: float) -> None:
    table.pop(key, None)  # re-inserted last: the newest entries survive the cap
    table[key] = value
    for old in list(table)[:-MAX_ENTRIES]:
        del table[old]


def remember(home: Path, run_dir: Path, config: dict[str, Any], processes: int) -> None:
    """After a succeeded run: keep its mean step time and (set by epochs) its training blocks."""
    summary = rf.read_json(run_dir / rf.SUMMARY) or {}
    tables = _load(home)
    step_s = _positive(summary.get("step_time_s"))
    if step_s is not None:
        _put(tables["step_s"], step_key(config), step_s)
    steps, epochs = _positive(summary.get("total_steps")), _positive(config.get("epochs"))
    if steps is not None and epochs is not None and config.get("max_steps") is None:
        blocks = (
            steps / epochs * tokens_per_step(config, processes) / int(config.get("seq_len") or 1)
        )
        _put(tables["blocks"], data_key(config), blocks)
    try:
        rf.write_json_atomic(home / STEP_TIMES, tables)
    except OSError as exc:  # an estimate is a convenience: never fail a run over it
        log.warning("cannot record the step time in %s: %s", home / STEP_TIMES, exc)


def estimate(home: Path, config: RunConfig, processes: int) -> dict[str, Any]:
    """Steps, tokens and (when measured) the duration of a run with this config on this machine."""
    cfg = config.model_dump(mode="json")
    tables = _load(home)
    per_step = tokens_per_step(cfg, processes)
    steps = config.max_steps
    blocks = tables["blocks"].get(data_key(cfg))
    if steps is None and blocks is not None:  # set by epochs: the blocks an earlier run counted
        steps = max(1, round(config.epochs * blocks * config.seq_len / per_step))
    step_s = tables["step_s"].get(step_key(cfg))
    duration = steps * step_s if steps is not None and step_s is not None else None
    return {
        "steps": steps,
        "tokens_per_step": per_step,
        "tokens": steps * per_step if steps is not None else None,
        "step_time_s": step_s,
        "duration_s": duration,
        "warn": duration is not None and duration > WARN_ABOVE_S,
        "warn_above_s": WARN_ABOVE_S,
        # Early stopping may end the run sooner: the steps and the time are upper bounds.
        "at_most": config.early_stopping_patience is not None,
    }


def describe(est: dict[str, Any]) -> str:
    """The estimate in one sentence for the form."""
    if est["steps"] is None:
        return (
            "Steps follow from the epochs and the data: known once a run has loaded this data "
            "(with this model and sequence length)."
        )
    bound = "at most " if est.get("at_most") else ""
    text = f"{bound}{est['steps']:,} steps, {est['tokens']:,} training tokens"
    if est["duration_s"] is None:
        return text + "; duration: no measurement yet for this model, precision and batch shape."
    minutes = est["duration_s"] / 60
    text += (
        f"; {bound or 'about '}{minutes:.1f} min here (measured {est['step_time_s']:.3g} s/step)"
    )
    if est["warn"]:
        text += f"; longer than {est['warn_above_s'] / 60:.0f} minutes"
    return text + "."
