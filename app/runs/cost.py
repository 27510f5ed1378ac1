"""What a run will cost before it starts: its steps, its time part by part, and its disk.

The time is the sum of its parts: start-up (the process, the model load, the data), the reference
pre-pass, the evaluations (one at step 0, then one every `eval_every` steps), the steps, the
checkpoint saves and the final model's save. Each part is

- `measured`: a finished run of the same kind on this machine timed it (app/runs/timings.py);
- `scaled`: this model's speed here was measured at another shape (tokens per second);
- `prior`: from the model's size and a short probe of the machine (entrodrop/speed.py).

A run set by epochs learns its step count from the data: from an earlier run that counted this
data's blocks, else from the data's size (about speed.CHARS_PER_TOKEN characters a token). The disk
comes from entrodrop/disk.py. docs/runs.md says how close the estimate comes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import AppError
from app.runs import timings
from app.runs.timings import (
    bench_key,
    checkpoint_key,
    data_key,
    eval_key,
    full_reference,
    model_key,
    reference_key,
    step_key,
    tokens_per_step,
)
from app.settings import Settings
from entrodrop import disk, speed
from entrodrop import runfolder as rf
from entrodrop.config import RunConfig
from entrodrop.data import DataError, load_dataset
from entrodrop.eval.tasks import offline_tasks_of, offline_tokens

WARN_ABOVE_S = 600.0  # the form warns before a launch that takes longer than this
PRIOR_EVAL_TOKENS = 4096  # held-out + general tokens per evaluation when max_eval_tokens is unset
MEDIAN_SAMPLE_TOKENS = 8192  # tokens the pre-pass scores for the entropy split (training/run.py)
# Warn when a request would fill more than this share of the free space under the home.
DISK_WARN_SHARE = 0.9


@functools.lru_cache(maxsize=64)
def _train_chars(spec: str, heldout: str | None, budget: int | None, stamp: float) -> int | None:
    """Characters of a dataset's training documents (cached while the file is unchanged)."""
    try:
        texts = load_dataset(spec, max_text_bytes=budget, heldout=heldout)
    except (DataError, OSError, ValueError):
        return None
    return sum(len(t) for t in texts.train)


def data_tokens(config: RunConfig, budget: int | None) -> tuple[int | None, str]:
    """Training tokens in the data, before any run has counted them: from its characters."""
    path = Path(config.dataset)
    stamp = path.stat().st_mtime if path.is_file() else 0.0
    chars = _train_chars(config.dataset, config.heldout_dataset, budget, stamp)
    if chars is None:
        return config.max_train_tokens, "max_train_tokens"
    tokens = int(chars / speed.CHARS_PER_TOKEN)
    if config.max_train_tokens is not None:
        tokens = min(tokens, config.max_train_tokens)
    return tokens, "data size"


@dataclass
class Part:
    """One part of a run's time, and where the number comes from."""

    key: str
    label: str
    seconds: float
    source: str  # measured | scaled | prior | unknown (not counted in the duration)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "seconds": self.seconds,
            "source": self.source,
        }


def _pick(measured: float | None, scaled: float | None, prior: float) -> tuple[float, str]:
    if measured is not None:
        return measured, "measured"
    if scaled is not None:
        return scaled, "scaled"
    return prior, "prior"


@dataclass
class Shape:
    """What the parts of one run depend on, worked out once."""

    config: RunConfig
    cfg: dict[str, Any]
    steps: int
    per_step: int
    train_tokens: int
    eval_tokens: int
    params: int
    flops: float
    need: disk.DiskEstimate


def parts(tables: timings.Tables, s: Shape) -> list[Part]:
    """The run's time, part by part, each measured, scaled or a prior."""
    cfg, mk = s.cfg, model_key(s.cfg)
    train_rate, fwd_rate = tables["train_tok_s"].get(mk), tables["fwd_tok_s"].get(mk)
    step = _pick(
        tables["step_s"].get(step_key(cfg)),
        s.per_step / train_rate if train_rate else None,
        speed.step_prior_s(s.params, s.per_step, s.flops),
    )
    one_eval = _pick(
        tables["eval_s"].get(eval_key(cfg)),
        s.eval_tokens / fwd_rate if fwd_rate else None,
        speed.forward_prior_s(s.params, s.eval_tokens, s.flops),
    )
    ref_tokens = (
        s.train_tokens if full_reference(cfg) else min(s.train_tokens, MEDIAN_SAMPLE_TOKENS)
    ) + s.eval_tokens // 2
    reference = _pick(
        tables["reference_s"].get(reference_key(cfg)),
        ref_tokens / fwd_rate if fwd_rate else None,
        speed.forward_prior_s(s.params, ref_tokens, s.flops),
    )
    need = s.need
    ckpt = _pick(
        tables["checkpoint_s"].get(checkpoint_key(s.config)),
        None,
        speed.write_prior_s(need.checkpoint_bytes),
    )
    save = _pick(tables["save_s"].get(mk), None, speed.write_prior_s(need.model_bytes))
    startup = _pick(tables["startup_s"].get(mk), None, speed.startup_prior_s(s.params))
    evaluations = 1 + s.steps // s.config.eval_every
    return [
        Part("startup", "start-up (process, model, data)", startup[0], startup[1]),
        Part("reference", "reference pre-pass", reference[0], reference[1]),
        Part("evaluations", f"{evaluations} evaluations", evaluations * one_eval[0], one_eval[1]),
        Part("steps", f"{s.steps:,} steps", s.steps * step[0], step[1]),
        Part(
            "checkpoints",
            f"{need.checkpoints_saved} checkpoint saves",
            need.checkpoints_saved * ckpt[0],
            ckpt[1],
        ),
        Part("save", "saving the model", save[0] if s.config.save_model else 0.0, save[1]),
        *benchmarks_part(tables, s),
    ]


def benchmarks_part(tables: timings.Tables, s: Shape) -> list[Part]:
    """The benchmarks stage: its seconds per model scored, measured or (offline tasks only) a
    prior from their tokens, times the models scored (the final one; the best one as well where
    checkpoints are kept: at most, as it may be the final one). Network tasks have no prior."""
    tasks = s.config.eval_tasks
    if not tasks:
        return []
    scored = 2 if s.config.save_checkpoints else 1
    label = f"benchmarks ({', '.join(tasks)}; {scored} model{'s' if scored > 1 else ''})"
    measured = tables["bench_s"].get(bench_key(s.cfg))
    if measured is not None:
        return [Part("benchmarks", label, scored * measured, "measured")]
    chosen = offline_tasks_of(tasks)
    if chosen is None:
        return [Part("benchmarks", label + ", not counted: tasks from the hub", 0.0, "unknown")]
    tokens = offline_tokens(s.config.eval_limit, chosen)
    prior = speed.forward_prior_s(s.params, tokens, s.flops)
    return [Part("benchmarks", label, scored * prior, "prior")]


def count_steps(
    config: RunConfig, tables: timings.Tables, per_step: int, budget: int | None
) -> tuple[int | None, int | None, str]:
    """(steps, training tokens, where the steps come from): max_steps, a run that counted this
    data's blocks, or the data's size."""
    cfg = config.model_dump(mode="json")
    blocks = tables["blocks"].get(data_key(cfg))
    tokens: int | None
    if blocks is not None:
        tokens, source = int(blocks * config.seq_len), "measured"
    else:
        tokens, source = data_tokens(config, budget)
    if config.max_steps is not None:
        return config.max_steps, tokens or config.max_steps * per_step, "max_steps"
    if tokens is None:
        return None, None, "unknown"
    return max(1, round(config.epochs * tokens / per_step)), tokens, source


def estimate(
    home: Path,
    config: RunConfig,
    processes: int,
    model_dir: Path | None = None,
    free_bytes: int | None = None,
    text_budget: int | None = None,
) -> dict[str, Any]:
    """Steps, tokens, the duration part by part and the disk of one run with this config here.

    `model_dir`: the model's local folder (its size; None: a small GPT-2's); `free_bytes`: the
    free space under the home, to warn or refuse against.
    """
    cfg = config.model_dump(mode="json")
    tables = timings.load(home)
    per_step = tokens_per_step(cfg, processes)
    steps, train_tokens, steps_source = count_steps(config, tables, per_step, text_budget)
    size = disk.model_size(model_dir)
    out: dict[str, Any] = {
        "steps": steps,
        "steps_source": steps_source,
        "tokens_per_step": per_step,
        "tokens": steps * per_step if steps is not None else None,
        "step_time_s": None,
        "parts": [],
        "duration_s": None,
        "warn": False,
        "warn_above_s": WARN_ABOVE_S,
        "disk": None,
        # Early stopping may end the run sooner: the steps and the time are upper bounds.
        "at_most": config.early_stopping_patience is not None,
    }
    if steps is None or train_tokens is None:
        return out
    eval_cap = config.max_eval_tokens or PRIOR_EVAL_TOKENS // 2
    used = disk.run_disk(config, size, steps, train_tokens, _model_config(model_dir))
    flops = speed.probe_flops(speed.run_device())
    shape = Shape(
        config, cfg, steps, per_step, train_tokens, 2 * eval_cap, size.params, flops, used
    )
    found = parts(tables, shape)
    duration = sum(p.seconds for p in found)
    out.update(
        step_time_s=next(p.seconds for p in found if p.key == "steps") / steps,
        parts=[p.to_dict() for p in found],
        duration_s=duration,
        warn=duration > WARN_ABOVE_S,
        disk=disk_verdict(used.to_dict(), free_bytes, SIZE_FROM[size.measured]),
    )
    return out


def _model_config(model_dir: Path | None) -> dict[str, Any]:
    """The model's config.json as a dict ({} when there is none here)."""
    path = model_dir / "config.json" if model_dir else None
    found = rf.read_json(path) if path is not None and path.is_file() else None
    return found if isinstance(found, dict) else {}


SIZE_FROM = {True: "the model's files", False: "its config (or a small model's)"}


def disk_verdict(
    need: dict[str, Any], free: int | None, size_from: str, least: int | None = None
) -> dict[str, Any]:
    """The disk a request needs against the free space: `warn` when it would fill the disk (or
    nearly), `fits` False when even `least` (the first run's peak; one run: its own) cannot."""
    least = need["peak_bytes"] if least is None else least
    return {
        **need,
        "least_bytes": least,
        "free_bytes": free,
        "size_from": size_from,
        "warn": free is not None and need["peak_bytes"] > DISK_WARN_SHARE * free,
        "fits": free is None or least <= free,
    }


def combine(runs: list[dict[str, Any]], parallel: int, free: int | None) -> dict[str, Any]:
    """A study's estimate from its runs': the whole time (and the wall time with `parallel` runs
    at once) and the whole disk (finished runs keep their final bytes; the runs in progress add
    what they hold at their largest)."""
    durations = [r["duration_s"] for r in runs]
    known = all(d is not None for d in durations)
    total = sum(durations) if known else None
    at_once = max(1, min(parallel, len(runs)))
    disks = [r["disk"] for r in runs]
    out: dict[str, Any] = {
        "runs": len(runs),
        "parallel": at_once,
        "duration_s": total,
        "wall_s": None if total is None else total / at_once,
        "warn": total is not None and total / at_once > WARN_ABOVE_S,
        "warn_above_s": WARN_ABOVE_S,
        "disk": None,
    }
    if all(d is not None for d in disks):
        final = sum(d["final_bytes"] for d in disks)
        extra = sorted((d["peak_bytes"] - d["final_bytes"] for d in disks), reverse=True)
        need = {"peak_bytes": final + sum(extra[:at_once]), "final_bytes": final}
        least = max(d["peak_bytes"] for d in disks)
        sizes = {d["size_from"] for d in disks}
        out["disk"] = disk_verdict(need, free, sizes.pop() if len(sizes) == 1 else "both", least)
    return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def describe_disk(d: dict[str, Any] | None) -> str:
    """The disk part of an estimate in words."""
    if d is None:
        return ""
    text = f"disk {_bytes(d['final_bytes'])} at the end, {_bytes(d['peak_bytes'])} at most"
    if d["free_bytes"] is not None:
        text += f" ({_bytes(d['free_bytes'])} free under the home)"
    if not d["fits"]:
        text += "; that does not fit"
    elif d["warn"]:
        text += "; that (nearly) fills the disk"
    return text


def describe_total(total: dict[str, Any]) -> str:
    """A request's whole estimate in a sentence (a study, or a run with its baseline)."""
    if total["duration_s"] is None:
        return f"{total['runs']} runs; their duration is not known yet."
    text = f"{total['runs']} run{'s' if total['runs'] != 1 else ''}: about "
    text += _duration(total["duration_s"])
    if total["parallel"] > 1:
        text += f" of runs, {_duration(total['wall_s'])} with {total['parallel']} at once"
    if total["warn"]:
        text += f"; longer than {total['warn_above_s'] / 60:.0f} minutes"
    disk_text = describe_disk(total["disk"])
    return text + (f"; {disk_text}." if disk_text else ".")


def describe(est: dict[str, Any]) -> str:
    """The estimate in one or two sentences for the form."""
    if est["steps"] is None:
        return "Steps follow from the epochs and the data, which could not be read here."
    bound = "at most " if est.get("at_most") else ""
    text = f"{bound}{est['steps']:,} steps, {est['tokens']:,} training tokens"
    if est["duration_s"] is None:
        return text + "."
    parts = ", ".join(
        p["label"]
        if p["source"] == "unknown"
        else f"{p['label']} {_duration(p['seconds'])} ({p['source']})"
        for p in est["parts"]
        if p["seconds"] > 0 or p["source"] == "unknown"
    )
    text += f"; {bound or 'about '}{_duration(est['duration_s'])} here: {parts}"
    if est["warn"]:
        text += f"; longer than {est['warn_above_s'] / 60:.0f} minutes"
    disk_text = describe_disk(est["disk"])
    return text + "." + (f" {disk_text[0].upper()}{disk_text[1:]}." if disk_text else "")


def model_dir(spec: str, runs_path: Path) -> Path | None:
    """The local folder of a checked model spec, when it has one here (its size is read there)."""
    from app.capacity import config_path  # the one place that resolves a spec to its files

    found = config_path(spec, runs_path)
    return found.parent if found is not None and found.is_file() else None


def for_configs(settings: Settings, configs: list[RunConfig], processes: int) -> dict[str, Any]:
    """The estimate of each run of a request (a run and its baseline, a study) and of them all,
    against the free space under the home: {"runs": [...], "total": {...}}."""
    free = disk.free_bytes(settings.home)
    runs = [
        estimate(
            settings.home,
            config,
            processes,
            model_dir(config.model, settings.runs_path),
            free,
            settings.text_budget,
        )
        for config in configs
    ]
    return {"runs": runs, "total": combine(runs, settings.max_concurrent_runs, free)}


def home_disk(home: Path, used: int | None = None) -> dict[str, Any]:
    """The home folder's disk: what its runs use (when counted) and what is free."""
    return {"home": str(home), "used_bytes": used, "free_bytes": disk.free_bytes(home)}


class DiskFull(AppError):
    """A request whose runs cannot fit in the free space under the home at all."""

    status_code = 507


def check_disk(total: dict[str, Any]) -> None:
    """Refuse (507) a request that cannot fit on the disk at all; say how much it needs."""
    d = total.get("disk")
    if d is None or d["fits"]:
        return
    who = "this run needs" if total["runs"] == 1 else "its largest run alone needs"
    raise DiskFull(
        f"not enough disk space: {who} {_bytes(d['least_bytes'])} at its largest (checkpoints "
        f"and model), and {_bytes(d['free_bytes'])} is free under the home; free some space "
        "(delete old runs) or save fewer checkpoints (save_checkpoints, save_model)"
    )
