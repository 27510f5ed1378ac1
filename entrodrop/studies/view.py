"""What a study's page and its report show, from the study's runs and their metric rows.

The dashboard (app.studies.views: runs from its runs table) and ``entrodrop study --report``
(runs from the study folder) both build their data here, so the page, its JSON twin and the
shared HTML report hold the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from entrodrop.metrics import SELECTABLE, label
from entrodrop.runfolder import ACTIVE, STATUSES, SUMMARY, RunFolder, read_json, read_status
from entrodrop.studies.config import StudyConfig
from entrodrop.studies.curves import study_curves
from entrodrop.studies.folder import StudyFolder
from entrodrop.studies.outcomes import GENERAL, HELDOUT, HIGH_ENTROPY, OUTCOMES
from entrodrop.studies.reading import NO_INTERVAL
from entrodrop.studies.results import study_outcomes, study_results
from entrodrop.studies.stats import RunKey
from entrodrop.studies.status import MISSING, STUDY_ACTIVE, STUDY_STATUSES, study_status

Rows = list[dict[str, Any]]

# The study page's plots: one curve per variant (mean over seeds, 95% band) per panel.
CURVE_PANELS: list[dict[str, Any]] = [
    {"id": "heldout", "title": "Held-out loss (all tokens)", "name": HELDOUT},
    {
        "id": "rebound",
        "title": "Rebound: held-out loss on high-entropy tokens",
        "name": HIGH_ENTROPY,
    },
    {"id": "general", "title": "General-text loss (forgetting)", "name": GENERAL},
]
CURVE_NAMES = tuple(p["name"] for p in CURVE_PANELS)
# The metric rows a study reads per run: its curves, and every metric a run can be judged by
# (a variant with early stopping is judged at its best evaluation by its best_metric).
ROW_NAMES = tuple(dict.fromkeys((*CURVE_NAMES, *SELECTABLE)))


def study_facts(result: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the studies pages show, sent in their data so neither Jinja nor JS retypes it; with
    a study's `result`, its outcomes (the fixed ones and its benchmarks') in table order."""
    fixed = [{"name": name, "label": text} for name, text in OUTCOMES.items()]
    return {
        "statuses": list(STUDY_STATUSES),
        # The badges' words: a study's statuses, and its runs' (a deleted run is "missing").
        "status_words": {s: s for s in (*STATUSES, *STUDY_STATUSES, MISSING)},
        "active": list(STUDY_ACTIVE),
        "run_active": list(ACTIVE),
        # A list, not a mapping: the page's JSON (Jinja's tojson) sorts mapping keys.
        "outcomes": (result or {}).get("outcomes") or fixed,
        "metric_labels": {name: label(name) for name in CURVE_NAMES},
        "no_interval": NO_INTERVAL,
    }


def study_results_view(
    study: StudyConfig, runs: Sequence[Mapping[str, Any]], rows: Mapping[RunKey, Rows]
) -> dict[str, Any]:
    """Summary, paired differences (with readings and the verdict) over the succeeded runs;
    curves over every run with rows so far. ``runs``: {"variant", "seed", "status"} each."""
    done = {
        (r["variant"], int(r["seed"])): rows.get((r["variant"], int(r["seed"])), [])
        for r in runs
        if r["status"] == "succeeded"
    }
    result = study_results(study, study_outcomes(study, done))
    labels = [name for name, _ in study.variant_configs()]
    curves = study_curves({k: v for k, v in rows.items() if v}, labels, CURVE_NAMES)
    return {**result, "readings": [p["reading"] for p in result["paired"]], "curves": curves}


# ---------------------------------------------------------------- from a study folder alone


def folder_run(runs_dir: Path, entry: Mapping[str, Any]) -> dict[str, Any]:
    """One run of a study folder as the page lists it, from study.json and the run's folder."""
    run_dir = runs_dir / entry["id"]
    status = str(entry.get("status", "queued"))
    st = read_status(run_dir) or {}
    summary = (read_json(run_dir / SUMMARY) or {}) if status == "succeeded" else {}
    final = summary.get("final_eval_loss")
    return {
        "id": entry["id"],
        "variant": entry["variant"],
        "seed": int(entry["seed"]),
        "status": status,
        "error": entry.get("error"),
        "step": int(st.get("step") or 0),
        "total_steps": st.get("total_steps"),
        "progress": 1.0 if status == "succeeded" else float(st.get("progress") or 0.0),
        "final_eval_loss": final if isinstance(final, int | float) else None,
        "best_step": summary.get("best_step"),
        "stopped_early": bool(summary.get("stopped_early")),
        "page": None,
    }


def folder_rows(runs_dir: Path, runs: Sequence[Mapping[str, Any]]) -> dict[RunKey, Rows]:
    """(variant, seed) -> the metric rows of every run that has logged some (its metrics.jsonl)."""
    out: dict[RunKey, Rows] = {}
    for run in runs:
        rows = RunFolder(runs_dir / run["id"], writer=False).read_metrics()
        kept = [r for r in rows if r.get("name") in ROW_NAMES and r.get("value") is not None]
        if kept:
            out[(run["variant"], int(run["seed"]))] = kept
    return out


def study_runs_dir(folder: StudyFolder, record: Mapping[str, Any]) -> Path:
    """Where the study's run folders are: as recorded, else beside its studies folder (a study
    committed or copied with its runs, as bench/results/study-<name>/{studies,runs}/)."""
    recorded = Path(record["runs_dir"])
    beside = folder.path.parent.parent / "runs"
    return beside if not recorded.is_dir() and beside.is_dir() else recorded


def folder_study_view(folder: StudyFolder) -> dict[str, Any]:
    """A study's page data from its folder alone (``entrodrop study --report``): the same keys
    as the dashboard's GET /api/studies/{id}, without the server's links."""
    record = folder.read()
    study = StudyConfig.model_validate(record["config"])
    runs_dir = study_runs_dir(folder, record)
    runs = [folder_run(runs_dir, entry) for entry in record["runs"]]
    ended = not folder.is_running()
    return {
        "id": record["id"],
        "name": record["name"],
        "status": study_status((r["status"] for r in runs), ended=ended),
        "created_at": record.get("created_at"),
        "variants": [name for name, _ in study.variant_configs()],
        "seeds": study.seeds,
        "n_runs": len(runs),
        "config": record["config"],
        "machine": record.get("machine"),
        "runs": runs,
        **(result := study_results_view(study, runs, folder_rows(runs_dir, runs))),
        "panels": CURVE_PANELS,
        "facts": study_facts(result),
    }
