"""What a run will cost before it starts: steps, training tokens and a duration from measured steps.

Finished runs leave their mean step time (summary.json's `step_time_s`); the runner remembers it
in <home>/step_times.json keyed by model, precision, sequence length and batch size, and the form
turns it into an estimate. With no measurement for that key the estimate says so, never a guess.
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


def _load(home: Path) -> dict[str, float]:
    data = rf.read_json(home / STEP_TIMES)
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and v > 0}


def remember(home: Path, run_dir: Path, config: dict[str, Any]) -> None:
    """After a finished run: keep its mean step time (a later run of the same key replaces it)."""
    summary = rf.read_json(run_dir / rf.SUMMARY) or {}
    step_s = summary.get("step_time_s")
    if not isinstance(step_s, int | float) or isinstance(step_s, bool) or step_s <= 0:
        return
    times = _load(home)
    times.pop(step_key(config), None)  # re-inserted last: the newest entries survive the cap
    times[step_key(config)] = float(step_s)
    kept = dict(list(times.items())[-MAX_ENTRIES:])
    try:
        rf.write_json_atomic(home / STEP_TIMES, kept)
    except OSError as exc:  # an estimate is a convenience: never fail a run over it
        log.warning("cannot record the step time in %s: %s", home / STEP_TIMES, exc)


def estimate(home: Path, config: RunConfig, processes: int) -> dict[str, Any]:
    """Steps, tokens and (when measured) the duration of a run with this config on this machine."""
    cfg = config.model_dump(mode="json")
    steps = config.max_steps
    per_step = tokens_per_step(cfg, processes)
    step_s = _load(home).get(step_key(cfg))
    duration = steps * step_s if steps is not None and step_s is not None else None
    return {
        "steps": steps,
        "tokens_per_step": per_step,
        "tokens": steps * per_step if steps is not None else None,
        "step_time_s": step_s,
        "duration_s": duration,
        "warn": duration is not None and duration > WARN_ABOVE_S,
        "warn_above_s": WARN_ABOVE_S,
    }


def describe(est: dict[str, Any]) -> str:
    """The estimate in one sentence for the form."""
    if est["steps"] is None:
        return "Steps follow from the epochs and the data: known once the data is loaded."
    text = f"{est['steps']:,} steps, {est['tokens']:,} training tokens"
    if est["duration_s"] is None:
        return text + "; duration: no measurement yet for this model, precision and batch shape."
    minutes = est["duration_s"] / 60
    text += f"; about {minutes:.1f} min here (measured {est['step_time_s']:.3g} s/step)"
    if est["warn"]:
        text += f"; longer than {est['warn_above_s'] / 60:.0f} minutes"
    return text + "."
