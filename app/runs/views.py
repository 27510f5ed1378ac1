"""The data behind the runs pages: each function feeds both a page and its JSON twin."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from app.runs import cost
from app.runs.facts import COMPARE_METRICS, METRIC_LABELS, PANELS, run_facts
from app.runs.form import flat_values
from app.runs.runner import RESUMABLE, JobRunner
from app.runs.schemas import (
    MetricRow,
    RunCheck,
    RunCompare,
    RunDetail,
    RunPublic,
    RunsPublic,
)
from app.runs.storage import RunRecord
from app.runs.validate import RunRequest
from app.settings import Settings
from entrodrop import runfolder as rf
from entrodrop.config import (
    DEFAULT_BASELINE_STRENGTH,
    DROPPING_METHODS,
    RunConfig,
    effective_batch_text,
)
from entrodrop.launch import Launcher, headless_commands

MAX_COMPARE = 8


def method_label(config: dict[str, Any]) -> str:
    """A short description of a run's method, e.g. `entrodrop (sigmoid, q=0.5, r<=0.5, loss)`."""
    method = str(config.get("method", "?"))
    ed = config.get("entrodrop") or {}
    if method in DROPPING_METHODS:
        cut = (
            f"tau={ed.get('threshold')}"
            if ed.get("selection") == "threshold"
            else f"q={ed.get('quantile')}"
        )
        return f"{method} ({ed.get('schedule')}, {cut}, r<={ed.get('rate_max')}, {ed.get('drop_mode')})"
    if config.get("baseline_strength") is not None and method != "none":
        return f"{method} ({config['baseline_strength']})"
    return method


def disk_bytes(folder: Path) -> int:
    """Bytes of every file under a run folder (checkpoints included); 0 for a missing one."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a checkpoint rotated away meanwhile
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _eta(run: RunRecord, now: float) -> float | None:
    # The child's own estimate, counted down since it was written. No guess before it has one:
    # start-up (and a resume's reload) would make any elapsed-time guess wrong.
    if run.status != "running" or run.eta_s is None:
        return None
    return max(0.0, run.eta_s - (now - run.updated_at))


def _stage(run: RunRecord, run_dir: Any) -> str | None:
    # The training process's own words for what it is doing (status.json's stage_text, e.g.
    # "scoring reference entropies (training) 3/12"), while it runs.
    if run.status != "running":
        return None
    text = (rf.read_status(run_dir) or {}).get("stage_text")
    return text if isinstance(text, str) else None


def run_summary(runner: JobRunner, run: RunRecord) -> RunPublic:
    """A run as the runs list shows it (and GET /api/runs returns it)."""
    return RunPublic(**_summary_fields(runner, run))


def _summary_fields(runner: JobRunner, run: RunRecord) -> dict[str, Any]:
    now = time.time()
    run_dir = runner.run_dir(run.id)
    checkpoint = rf.latest_checkpoint(run_dir)
    has_model = rf.has_final_model(run_dir)
    end = run.finished_at if run.finished_at else now
    cfg = run.config
    stopped = run.status in RESUMABLE and run.attempts > 0  # a run that never started: neither
    current = (end - run.started_at) if run.started_at else None
    return {
        "id": run.id,
        "name": run.name,
        "notes": run.notes,
        "tags": run.tags,
        "status": run.status,
        "progress": round(min(1.0, max(0.0, run.progress)), 4),
        "step": run.step,
        "total_steps": run.total_steps,
        "eta_s": _eta(run, now),
        "stage": _stage(run, run_dir),
        # Every attempt's wall time: a resume does not reset the clock.
        "elapsed_s": None if current is None else run.prior_elapsed_s + current,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "method": cfg.get("method"),
        "method_label": method_label(cfg),
        "model": cfg.get("model"),
        "dataset": cfg.get("dataset"),
        "best_eval_loss": run.best_eval_loss,
        "final_eval_loss": run.final_eval_loss,
        "error": run.error,
        "group_id": run.group_id,
        "launcher": run.launcher,
        "attempts": run.attempts,
        "cancel_requested": run.cancel_requested,
        "can_cancel": run.status in rf.ACTIVE,
        "can_resume": stopped and checkpoint is not None,
        "can_restart": stopped and checkpoint is None,
        "can_delete": run.status not in rf.ACTIVE,
        "checkpoint": checkpoint.name if checkpoint else None,
        "checkpoint_step": rf.checkpoint_step(checkpoint) if checkpoint else None,
        "tokens_per_step": cost.tokens_per_step(cfg, int(run.launcher.get("num_processes") or 1)),
        "has_model": has_model,
        "disk_bytes": disk_bytes(run_dir),
        "links": {
            "page": f"/runs/{run.id}",
            "api": f"/api/runs/{run.id}",
            "metrics": f"/api/runs/{run.id}/metrics",
            "csv": f"/api/runs/{run.id}/metrics.csv",
            "events": f"/api/runs/{run.id}/events",
            "inspect": f"/?model=run:{run.id}" if (has_model or checkpoint) else None,
            "compare": f"/compare?runs={run.group_id}" if run.group_id else None,
        },
    }


def runs_list(runner: JobRunner) -> RunsPublic:
    """GET /api/runs and /runs: every run, newest first."""
    runs = [run_summary(runner, r) for r in runner.storage.list_runs()]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    # What the list's filters offer, from the runs themselves.
    tags = sorted({t for r in runs for t in r.tags})
    return RunsPublic(
        runs=runs, counts=counts, tags=tags, max_compare=MAX_COMPARE, facts=run_facts()
    )


def patch_run(runner: JobRunner, run_id: str, changes: dict[str, Any]) -> RunDetail:
    """PATCH /api/runs/{id}: a new name, notes or tags (validated by RunPatch); the run after."""
    runner.get(run_id)
    if changes:
        runner.storage.update_run(run_id, **changes)
    return run_detail(runner, run_id)


def applied_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config fields that apply to its method: no EntroDrop block for a method that drops no
    tokens, no baseline strength where none applies (both would be ignored by training)."""
    method = config.get("method")
    shown = dict(config)
    if method not in DROPPING_METHODS:
        shown.pop("entrodrop", None)
    if method not in DEFAULT_BASELINE_STRENGTH:
        shown.pop("baseline_strength", None)
    return shown


def run_detail(runner: JobRunner, run_id: str) -> RunDetail:
    """GET /api/runs/{id} and /runs/{id}: the summary plus config, commands and log tails."""
    run = runner.get(run_id)
    run_dir = runner.run_dir(run_id)
    return RunDetail(
        **_summary_fields(runner, run),
        config=run.config,
        config_json=json.dumps(applied_config(run.config), indent=2),
        commands=headless_commands(Launcher(**run.launcher)),
        effective_batch=effective_batch_of(run.config, run.launcher),
        run_dir=str(run_dir),
        log_tail=rf.tail_lines(run_dir / rf.LOG, 60),
        output_tail=rf.tail_lines(run_dir / rf.OUTPUT, 40),
        last_values=runner.storage.last_values(run_id),
        panels=PANELS,
        summary_file=rf.read_json(run_dir / rf.SUMMARY),
        facts=run_facts(),
    )


def effective_batch_of(config: dict[str, Any], launcher: dict[str, Any]) -> str | None:
    """Blocks and tokens per optimizer step (batch x accumulation x processes), or None."""
    try:
        processes = Launcher(**launcher).num_processes
        return effective_batch_text(RunConfig.model_validate(config), processes)
    except (ValueError, TypeError):  # a config an older version wrote: shown without it
        return None


def metrics_csv(runner: JobRunner, run_id: str) -> str:
    """The run's metrics as CSV: attempt,step,name,value,epoch,time (every attempt, in order)."""
    runner.get(run_id)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = ["attempt", "step", "name", "value", "epoch", "time"]
    writer.writerow(columns)
    for row in runner.storage.metrics(run_id):
        writer.writerow([row[c] for c in columns])
    return buf.getvalue()


def run_check(req: RunRequest, settings: Settings) -> RunCheck:
    """POST /api/runs/check: the configs, their JSON, the commands and the expected cost."""
    configs = [c.model_dump(mode="json") for c in req.configs()]
    processes = req.launcher.num_processes if req.launcher.kind == "accelerate" else 1
    # The whole request's cost: a matched baseline twin runs as long again.
    estimate = cost.estimate(settings.home, req.config, processes)
    estimate["runs"] = len(configs)
    return RunCheck(
        configs=configs,
        config_json=json.dumps(configs[0], indent=2),
        launcher=req.launcher,
        commands=headless_commands(req.launcher),
        estimate=estimate,
        estimate_text=cost.describe(estimate),
    )


def metric_rows(
    runner: JobRunner,
    run_id: str,
    after: int = 0,
    names: list[str] | None = None,
    attempt: str = "current",
) -> list[MetricRow]:
    """GET /api/runs/{id}/metrics: rows after a cursor, of some names, of one attempt or all."""
    run = runner.get(run_id)
    number = (
        None if attempt == "all" else int(attempt) if attempt.isdigit() else max(1, run.attempts)
    )
    rows = runner.storage.metrics(run_id, after_id=after, names=names, attempt=number)
    return [MetricRow(**row) for row in rows]


def compare(runner: JobRunner, run_ids: list[str]) -> RunCompare:
    """GET /api/compare and /compare: runs side by side, config differences, best/final metrics."""
    runs = [runner.get(i) for i in run_ids]
    flat = [flat_values(r.config) | {"launcher": Launcher(**r.launcher).kind} for r in runs]
    keys = sorted(set().union(*flat)) if flat else []
    differences = [
        {"key": k, "values": [f.get(k) for f in flat]}
        for k in keys
        if len({json.dumps(f.get(k)) for f in flat}) > 1
    ]
    table = []
    for r in runs:
        last = runner.storage.last_values(r.id)
        row: dict[str, Any] = {"id": r.id, "method_label": method_label(r.config)}
        row["best_eval_loss"] = r.best_eval_loss
        row["final"] = {name: last.get(name) for name in COMPARE_METRICS}
        table.append(row)
    return RunCompare(
        runs=[run_summary(runner, r) for r in runs],
        differences=differences,
        table=table,
        metric_names=list(COMPARE_METRICS),
        metric_labels=METRIC_LABELS,
        metrics={r.id: runner.storage.metrics(r.id, attempt=max(1, r.attempts)) for r in runs},
        panels=PANELS,
        facts=run_facts(),
    )
