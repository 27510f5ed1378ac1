"""The data behind the runs pages: each function feeds both a page and its JSON twin."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from app.errors import InsufficientStorage, RunConflict
from app.runs import cost, timings
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
from app.studies.store import StudyStore
from entrodrop import metrics as m
from entrodrop import runfolder as rf
from entrodrop.config import (
    DEFAULT_BASELINE_STRENGTH,
    DROPPING_METHODS,
    RunConfig,
    effective_batch_text,
)
from entrodrop.export import (
    DiskTooSmall,
    ExportError,
    check_disk,
    export_dir,
    export_run,
    zip_chunks,
)
from entrodrop.launch import Launcher, headless_commands
from entrodrop.metrics import EVAL_LOSS

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


def _live(run: RunRecord, run_dir: Any) -> dict[str, Any]:
    # The training process's own words for what it is doing (status.json's stage_text, e.g.
    # "scoring with the starting model (held-out data: the low/high-entropy split) 3/12"),
    # whether it is still starting (no ETA yet) and the current stage's own remaining time.
    if run.status != "running":
        return {"stage": None, "starting": False, "stage_eta_s": None}
    st = rf.read_status(run_dir) or {}
    text, stage_eta = st.get("stage_text"), st.get("stage_eta_s")
    return {
        "stage": text if isinstance(text, str) else None,
        "starting": st.get("starting", not st) is True,  # no status.json yet: starting too
        "stage_eta_s": stage_eta if isinstance(stage_eta, int | float) else None,
    }


def best_record(run: RunRecord, run_dir: Path) -> dict[str, Any]:
    """The best evaluation and early stopping of a run: summary.json once it has ended,
    status.json's record so far while it trains (entrodrop.runfolder's names)."""
    source = rf.read_json(run_dir / rf.SUMMARY) if run.status not in rf.ACTIVE else None
    source = source or rf.read_status(run_dir) or {}
    best = rf.best_checkpoint(run_dir)
    metrics = source.get(rf.BEST_METRICS)
    return {
        rf.BEST_METRIC: run.config.get("best_metric") or EVAL_LOSS,
        rf.BEST_STEP: source.get(rf.BEST_STEP),
        rf.BEST_METRICS: metrics if isinstance(metrics, dict) else None,
        "best_checkpoint": best.name if best is not None else None,
        rf.STOPPED_EARLY: bool(source.get(rf.STOPPED_EARLY)),
        rf.STOP_REASON: source.get(rf.STOP_REASON),
        # Early stopping may end the run before its last step: a time or ETA is an upper bound.
        "eta_at_most": run.config.get("early_stopping_patience") is not None,
    }


def studies_of(runner: JobRunner) -> dict[str, dict[str, Any]]:
    """Run id -> the study it belongs to (app.studies.store.StudyStore.memberships)."""
    return StudyStore(runner.settings).memberships()


def _stored(runner: JobRunner, run_id: str) -> bool:
    return runner.storage.get_run(run_id) is not None


def pair_link(run: RunRecord, exists: Callable[[str], bool]) -> str | None:
    """The compare page of a run's matched pair while both runs exist: after one is deleted the
    other stands alone (no chip, no link to a run that is gone)."""
    ids = run.group_id.split(",") if run.group_id else []
    if len(ids) < 2 or not all(i == run.id or exists(i) for i in ids):
        return None
    return f"/compare?runs={run.group_id}"


def run_summary(
    runner: JobRunner,
    run: RunRecord,
    studies: dict[str, dict[str, Any]] | None = None,
    exists: Callable[[str], bool] | None = None,
) -> RunPublic:
    """A run as the runs list shows it (and GET /api/runs returns it).

    `studies` (studies_of) and `exists` (is a run id in the runs table) are looked up here
    unless the caller has them for many runs at once.
    """
    return RunPublic(**_summary_fields(runner, run, studies, exists))


def _bookkeeping(run: RunRecord, now: float) -> dict[str, Any]:
    """The run's record as stored: who, when, what it trained, how it ended."""
    end = run.finished_at if run.finished_at else now
    current = (end - run.started_at) if run.started_at else None
    cfg = run.config
    return {
        "id": run.id,
        "name": run.name,
        "notes": run.notes,
        "tags": run.tags,
        "status": run.status,
        "progress": round(min(1.0, max(0.0, run.progress)), 4),
        "step": run.step,
        "total_steps": run.total_steps,
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
        "can_delete": run.status not in rf.ACTIVE,
        "tokens_per_step": timings.tokens_per_step(
            cfg, int(run.launcher.get("num_processes") or 1)
        ),
    }


def _summary_fields(
    runner: JobRunner,
    run: RunRecord,
    studies: dict[str, dict[str, Any]] | None = None,
    exists: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    now = time.time()
    study = (studies if studies is not None else studies_of(runner)).get(run.id)
    run_dir = runner.run_dir(run.id)
    checkpoint = rf.latest_checkpoint(run_dir)
    has_model = rf.has_final_model(run_dir)
    stopped = run.status in RESUMABLE and run.attempts > 0  # a run that never started: neither
    best = best_record(run, run_dir)
    live = _live(run, run_dir)
    return {
        **_bookkeeping(run, now),
        **live,
        "eta_s": None if live["starting"] else _eta(run, now),
        "study": study,
        "can_resume": stopped and checkpoint is not None,
        "can_restart": stopped and checkpoint is None,
        "checkpoint": checkpoint.name if checkpoint else None,
        "checkpoint_step": rf.checkpoint_step(checkpoint) if checkpoint else None,
        "has_model": has_model,
        "disk_bytes": disk_bytes(run_dir),
        **best,
        "links": run_links(
            run,
            has_model or checkpoint is not None,
            exists or partial(_stored, runner),
            study,
            best["best_checkpoint"] is not None,
        ),
    }


def run_links(
    run: RunRecord,
    inspectable: bool,
    exists: Callable[[str], bool],
    study: dict[str, Any] | None,
    has_best: bool = False,
) -> dict[str, str | None]:
    """A run's pages and API calls: its JSON, metrics, events, tokens, Inspect (final and
    best), the export, its pair and its study."""
    exportable = inspectable and run.status not in rf.ACTIVE
    return {
        "page": f"/runs/{run.id}",
        "api": f"/api/runs/{run.id}",
        "metrics": f"/api/runs/{run.id}/metrics",
        "csv": f"/api/runs/{run.id}/metrics.csv",
        "events": f"/api/runs/{run.id}/events",
        "tokens": f"/api/runs/{run.id}/tokens",
        "inspect": f"/?model=run:{run.id}" if inspectable else None,
        "inspect_best": f"/?model=run:{run.id}:best" if has_best else None,
        "export": f"/api/runs/{run.id}/export.zip" if exportable else None,
        "compare": pair_link(run, exists),
        "study": study["page"] if study else None,
    }


def runs_list(runner: JobRunner) -> RunsPublic:
    """GET /api/runs and /runs: every run, newest first, each with its study (if any)."""
    records = runner.storage.list_runs()
    ids = {r.id for r in records}
    studies = studies_of(runner)
    runs = [run_summary(runner, r, studies, ids.__contains__) for r in records]
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
    # What the list's filters offer, from the runs themselves.
    tags = sorted({t for r in runs for t in r.tags})
    return RunsPublic(
        runs=runs,
        counts=counts,
        disk=cost.home_disk(runner.settings.home, sum(r.disk_bytes for r in runs)),
        tags=tags,
        max_compare=MAX_COMPARE,
        facts=run_facts(),
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
        export=export_info(runner, run),
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
    configs = req.configs()
    processes = req.launcher.num_processes if req.launcher.kind == "accelerate" else 1
    # The whole request's cost: a matched baseline twin runs as long again.
    found = cost.for_configs(settings, configs, processes)
    dumped = [c.model_dump(mode="json") for c in configs]
    return RunCheck(
        configs=dumped,
        config_json=json.dumps(dumped[0], indent=2),
        launcher=req.launcher,
        commands=headless_commands(req.launcher),
        estimate={**found["runs"][0], "runs": len(configs)},
        estimate_text=cost.describe(found["runs"][0]),
        total=found["total"],
        total_text=cost.describe_total(found["total"]),
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
        row |= best_record(r, runner.run_dir(r.id))
        row["final"] = {name: last.get(name) for name in COMPARE_METRICS}
        row["benchmarks"] = benchmark_columns(last)
        table.append(row)
    studies = studies_of(runner)
    return RunCompare(
        runs=[run_summary(runner, r, studies) for r in runs],
        differences=differences,
        table=table,
        metric_names=list(COMPARE_METRICS),
        metric_labels=METRIC_LABELS,
        metrics={r.id: runner.storage.metrics(r.id, attempt=max(1, r.attempts)) for r in runs},
        panels=PANELS,
        facts=run_facts(),
    )


def benchmark_columns(last: dict[str, float | None]) -> dict[str, float]:
    """Each benchmark task's headline metric from a run's last values, by 'task: metric'."""
    tasks: dict[str, dict[str, float]] = {}
    for name, value in last.items():
        if (found := m.parse_benchmark(name)) is not None and value is not None:
            tasks.setdefault(found[0], {})[found[1]] = value
    out = {}
    for task, values in sorted(tasks.items()):
        if (metric := m.headline(values)) is not None:
            out[f"{task}: {metric}"] = values[metric]
    return out


def export_info(runner: JobRunner, run: RunRecord) -> dict[str, Any]:
    """Where the run page's download puts the exported folder, and the same export by CLI."""
    run_dir = runner.run_dir(run.id)
    # What this run can export: the page's choice lists only what exists (final, best, steps).
    kept = [str(rf.checkpoint_step(c)) for c in rf.checkpoints(run_dir)]
    which = [rf.FINAL_MODEL] if rf.has_final_model(run_dir) else []
    which += [rf.BEST_MODEL] if rf.best_checkpoint(run_dir) is not None else []
    merge = bool(run.config.get("adapter"))  # a LoRA run can also export merged weights
    home, commands = runner.settings.home, {}
    for choice in which + kept:
        for merged in (False, True) if merge else (False,):
            out = export_dir(home, run.id, choice, merged)
            flag = " --merge" if merged else ""
            key = f"{choice}:merge" if merged else choice
            commands[key] = f"entrodrop export {run.id} --checkpoint {choice}{flag} --out {out}"
    first = (which + kept + [rf.BEST_MODEL])[0]
    return {
        "folder": str(export_dir(home, run.id, first).parent),
        "command": commands.get(first, f"entrodrop export {run.id} --checkpoint {first}"),
        "commands": commands,
        "checkpoints": which + kept,
        "merge": merge,
    }


def export_zip(
    runner: JobRunner, run_id: str, which: rf.Which, merge: bool
) -> tuple[Path, Iterator[bytes]]:
    """GET /api/runs/{id}/export.zip: export the run's model into <home>/exports/ (replacing an
    earlier export of the same checkpoint), then its zip as chunks made while they are sent."""
    run = runner.get(run_id)
    if run.status in rf.ACTIVE:
        raise RunConflict(f"run {run_id} is {run.status}: export it once it has ended")
    run_dir, out = runner.run_dir(run_id), export_dir(runner.settings.home, run_id, which, merge)
    try:
        check_disk(run_dir, which, out, merge)
        export = export_run(run_dir, which, out, merge)
    except DiskTooSmall as exc:
        raise InsufficientStorage(str(exc)) from None
    except ExportError as exc:
        raise RunConflict(str(exc)) from None
    return export.folder, zip_chunks(export.folder)
