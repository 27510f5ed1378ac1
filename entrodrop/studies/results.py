"""A study's results from its run folders: outcomes per run, the summary with readings, the CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from entrodrop.runfolder import RunFolder
from entrodrop.studies.config import StudyConfig
from entrodrop.studies.outcomes import BENCH_OUTCOME, Outcomes, judged_outcomes, run_outcomes
from entrodrop.studies.reading import outcome_list, with_readings
from entrodrop.studies.stats import RunKey, summary

CSV_COLUMNS = ("table", "variant", "vs", "n", "metric", "mean", "ci95", "excludes_zero")


def finished_rows(runs: list[dict[str, Any]], runs_dir: Path) -> dict[RunKey, list[dict[str, Any]]]:
    """(variant, seed) -> metric rows (metrics.jsonl) of every run that succeeded."""
    return {
        (run["variant"], int(run["seed"])): RunFolder(
            runs_dir / run["id"], writer=False
        ).read_metrics()
        for run in runs
        if run.get("status") == "succeeded"
    }


def finished_outcomes(
    runs: list[dict[str, Any]], runs_dir: Path, study: StudyConfig
) -> dict[RunKey, Outcomes]:
    """(variant, seed) -> outcomes of every run that succeeded, each judged as its variant is
    (a variant with early stopping by its best checkpoint)."""
    return study_outcomes(study, finished_rows(runs, runs_dir))


def study_outcomes(
    study: StudyConfig, rows: Mapping[RunKey, list[dict[str, Any]]]
) -> dict[RunKey, Outcomes]:
    """(variant, seed) -> judged outcomes, from each run's metric rows."""
    configs = dict(study.variant_configs())
    return {
        (variant, seed): judged_outcomes(run_rows, configs[variant])
        if variant in configs
        else run_outcomes(run_rows)
        for (variant, seed), run_rows in rows.items()
    }


def study_results(study: StudyConfig, outcomes: dict[RunKey, Outcomes]) -> dict[str, Any]:
    """{"summary": [...], "paired": [... with "reading"]}, variants in the study's order."""
    labels = [label for label, _ in study.variant_configs()]
    return with_readings(summary(outcomes, labels, study.comparisons()))


def results_csv(result: dict[str, Any]) -> str:
    """One row per (variant, outcome) and per paired comparison: a tidy table for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    names = [o["name"] for o in outcome_list(result)]
    for row in result["summary"]:
        for name in (n for n in names if n in row):
            stat = row[name]
            writer.writerow(
                {"table": "summary", "variant": row["variant"], "vs": "", "metric": name}
                | {"n": stat["n"], "mean": stat["mean"], "ci95": stat["ci95"]}
                | {"excludes_zero": ""}
            )
    for row in result["paired"]:
        bench = [f"{n}_diff" for n in names if n.startswith(BENCH_OUTCOME) and f"{n}_diff" in row]
        diffs = ["final_heldout_diff", *bench]
        for metric in diffs:
            stat = row[metric]
            excludes = (
                row["excludes_zero"]
                if metric == "final_heldout_diff"
                else stat.get("excludes_zero")
            )
            writer.writerow(
                {"table": "paired", "variant": row["variant"], "vs": row["vs_label"]}
                | {"metric": metric, "n": stat["n"], "mean": stat["mean"]}
                | {"ci95": stat["ci95"], "excludes_zero": excludes}
            )
    return buffer.getvalue()
