"""The data behind the studies pages: each function feeds both a page and its JSON twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.runs.runner import JobRunner
from app.studies.schemas import StudiesPublic, StudyDetail, StudyPublic
from app.studies.store import MANAGED_BY, StudyStore
from entrodrop.runfolder import SUMMARY, RunFolder, read_json, read_status
from entrodrop.studies.config import StudyConfig
from entrodrop.studies.folder import StudyFolder
from entrodrop.studies.results import results_csv
from entrodrop.studies.status import MISSING, study_status
from entrodrop.studies.view import CURVE_PANELS, ROW_NAMES, study_facts, study_results_view


def _links(study_id: str) -> dict[str, str]:
    return {
        "page": f"/studies/{study_id}",
        "api": f"/api/studies/{study_id}",
        "csv": f"/api/studies/{study_id}.csv",
        "cancel": f"/api/studies/{study_id}/cancel",
        "report": f"/studies/{study_id}/report.html",
        "tokens": f"/api/studies/{study_id}/tokens",
    }


def cli_study_ended(store: StudyStore, record: dict[str, Any]) -> bool:
    """A study `entrodrop study` ran whose process is gone (no one holds its lock): its file's
    `running` runs were cut off, and nothing runs its queued ones until `--resume`."""
    if record.get("managed_by") == MANAGED_BY:
        return False
    return not StudyFolder(store.root / record["id"]).is_running()


def resume_command(store: StudyStore, study_id: str) -> str:
    """What continues a CLI study no process runs any more (the server cannot)."""
    return f"entrodrop study --resume {store.root / study_id}"


def study_runs(runner: JobRunner, record: dict[str, Any], ended: bool) -> list[dict[str, Any]]:
    """The study's runs with their live status from the runs table (or the file's, for a CLI
    study; `ended`: cli_study_ended, probed once per request by the caller)."""
    server = record.get("managed_by") == MANAGED_BY
    out = []
    for entry in record["runs"]:
        run = runner.storage.get_run(entry["id"])
        row = {"id": entry["id"], "variant": entry["variant"], "seed": int(entry["seed"])}
        if run is not None:
            row |= {"status": run.status, "error": run.error, "step": run.step}
            row |= {"total_steps": run.total_steps, "progress": run.progress}
            row |= {"final_eval_loss": run.final_eval_loss, "page": f"/runs/{run.id}"}
        else:
            status = MISSING if server else str(entry.get("status", MISSING))
            if ended and status == "running":
                status = "interrupted"  # its process died mid-run; the file could not say so
            row |= {"status": status, "error": entry.get("error"), "page": None}
            folder = None if server else StudyStore.runs_path(record) / entry["id"]
            row |= _folder_progress(folder, status)
        out.append(row)
    return out


def _folder_progress(run_dir: Path | None, status: str) -> dict[str, Any]:
    """Step, progress and final loss of a run the runs table does not know: from its own folder
    (a CLI study's run writes status.json and summary.json there as any run does); a server
    study's lost run (no folder to read) has none."""
    done = status == "succeeded"
    st = read_status(run_dir) if run_dir is not None else None
    if run_dir is None or st is None:
        return {"step": 0, "total_steps": None, "progress": float(done), "final_eval_loss": None}
    final = (read_json(run_dir / SUMMARY) or {}).get("final_eval_loss") if done else None
    return {
        "step": int(st.get("step") or 0),
        "total_steps": st.get("total_steps"),
        "progress": 1.0 if done else float(st.get("progress") or 0.0),
        "final_eval_loss": final if isinstance(final, int | float) else None,
    }


def _counts(runs: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def study_item(
    store: StudyStore, record: dict[str, Any], runs: list[dict[str, Any]], ended: bool
) -> StudyPublic:
    """A study as the list shows it, given its runs (study_runs) and whether it has ended."""
    return StudyPublic(**_item_fields(store, record, runs, ended))


def _item_fields(
    store: StudyStore, record: dict[str, Any], runs: list[dict[str, Any]], ended: bool
) -> dict[str, Any]:
    config = record["config"]
    status = study_status((r["status"] for r in runs), ended=ended)
    return {
        "id": record["id"],
        "name": record["name"],
        "status": status,
        # How to finish a CLI study no process runs (cut off or stopped).
        "resume": resume_command(store, record["id"])
        if ended and any(r["status"] != "succeeded" for r in runs)
        else None,
        "created_at": record.get("created_at"),
        "variants": [label for label, _ in StudyConfig.model_validate(config).variant_configs()],
        "seeds": config.get("seeds", []),
        "n_runs": len(runs),
        "counts": _counts(runs),
        "links": _links(record["id"]),
    }


def _listed(runner: JobRunner, store: StudyStore, record: dict[str, Any]) -> StudyPublic:
    ended = cli_study_ended(store, record)
    return study_item(store, record, study_runs(runner, record, ended), ended)


def studies_list(runner: JobRunner, store: StudyStore) -> StudiesPublic:
    """GET /api/studies and /studies: every study, newest first."""
    return StudiesPublic(
        studies=[_listed(runner, store, r) for r in store.records()], facts=study_facts()
    )


def _rows(runner: JobRunner, record: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    """One run's metric rows with a value (a non-finite value is stored as null: left out)."""
    if run["page"] is not None:
        rows = runner.storage.metrics(run["id"], names=list(ROW_NAMES))
    elif run["status"] in ("succeeded", "running"):  # a CLI study's run: its folder is the record
        rows = RunFolder(StudyStore.runs_path(record) / run["id"], writer=False).read_metrics()
    else:
        rows = []
    return [r for r in rows if r.get("value") is not None]


def study_results_data(
    runner: JobRunner, record: dict[str, Any], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Summary and paired differences over the succeeded runs; curves over every run so far
    (entrodrop.studies.view, which `entrodrop study --report` uses too)."""
    study = StudyConfig.model_validate(record["config"])
    rows = {(r["variant"], r["seed"]): _rows(runner, record, r) for r in runs}
    return study_results_view(study, runs, rows)


def study_detail(runner: JobRunner, store: StudyStore, study_id: str) -> StudyDetail:
    """GET /api/studies/{id} and /studies/{id}: runs, summary, paired, readings, curves."""
    record = store.get(study_id)
    ended = cli_study_ended(store, record)
    runs = study_runs(runner, record, ended)
    result = study_results_data(runner, record, runs)
    return StudyDetail(
        **_item_fields(store, record, runs, ended),
        config=record["config"],
        machine=record.get("machine"),
        runs=runs,
        **result,
        panels=CURVE_PANELS,
        facts=study_facts(result),
    )


def study_csv(runner: JobRunner, store: StudyStore, study_id: str) -> str:
    """The summary and paired tables as one tidy CSV (entrodrop.studies.results's columns)."""
    record = store.get(study_id)
    runs = study_runs(runner, record, cli_study_ended(store, record))
    return results_csv(study_results_data(runner, record, runs))
