"""The data behind the token endpoints: read the run folders' records, call the library's views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.errors import FieldError, RequestInvalid
from app.runs.runner import JobRunner
from app.studies.store import StudyStore
from entrodrop.runfolder import RunFolder
from entrodrop.studies.config import StudyConfig
from entrodrop.tokens import NoTokenRecord, TokenRecordError
from entrodrop.tokens.record import TokenRecord
from entrodrop.tokens.view import runs_compare_view, seeds_compare_view, tokens_csv, tokens_view


def read_record(run_dir: Path, run_id: str) -> TokenRecord:
    """A run's record; NoTokenRecord (404) says why there is none, without the server's paths."""
    try:
        return RunFolder(run_dir, writer=False).read_tokens()
    except NoTokenRecord:
        raise NoTokenRecord(
            f"run {run_id} has no token record yet: none is kept with record_tokens off, and a "
            "run writes its first row at its step-0 evaluation"
        ) from None


def run_record(runner: JobRunner, run_id: str) -> TokenRecord:
    runner.get(run_id)  # RunNotFound (404) for an unknown run
    return read_record(runner.run_dir(run_id), run_id)


def run_tokens(
    runner: JobRunner, run_id: str, step: int | None, rank: bool, top: int
) -> dict[str, Any]:
    """GET /api/runs/{id}/tokens."""
    return {"run_id": run_id, **tokens_view(run_record(runner, run_id), step, rank, top=top)}


def run_tokens_csv(runner: JobRunner, run_id: str, step: int | None) -> str:
    return tokens_csv(run_record(runner, run_id), step)


def compare_tokens(runner: JobRunner, ids: list[str], step: int | None) -> dict[str, Any]:
    """GET /api/compare/tokens: the second run minus the first, token by token."""
    if len(ids) != 2:
        raise RequestInvalid([FieldError(("runs",), "give exactly two run ids: a,b")])
    a, b = (run_record(runner, run_id) for run_id in ids)
    return runs_compare_view(a, b, ids, step)


def _variants(study: StudyConfig, a: str | None, b: str | None) -> tuple[list[str], str, str]:
    """The study's variant labels and the two compared: default `none` (or the first) and the
    first other one."""
    labels = [label for label, _ in study.variant_configs()]
    a = a or ("none" if "none" in labels else labels[0])
    b = b or next((label for label in labels if label != a), a)
    bad = [
        FieldError((name,), f"no variant {value!r}; the study has: {', '.join(labels)}")
        for name, value in (("a", a), ("b", b))
        if value not in labels
    ]
    if bad:
        raise RequestInvalid(bad)
    if a == b:
        raise RequestInvalid([FieldError(("b",), "pick two different variants")])
    return labels, a, b


def study_tokens(
    store: StudyStore, study_id: str, a: str | None, b: str | None, step: int | None
) -> dict[str, Any]:
    """GET /api/studies/{id}/tokens: variant b minus variant a per token, over the seeds where
    both runs have a record (the others are listed in ``skipped``)."""
    record = store.get(study_id)
    labels, a, b = _variants(StudyConfig.model_validate(record["config"]), a, b)
    runs_path = StudyStore.runs_path(record)
    run_ids = {(r["variant"], int(r["seed"])): r["id"] for r in record["runs"]}
    pairs, skipped = [], []
    for seed in record["config"].get("seeds", []):
        try:
            pair = [read_record(runs_path / run_ids[(v, seed)], run_ids[(v, seed)]) for v in (a, b)]
        except (KeyError, TokenRecordError) as exc:
            skipped.append({"seed": seed, "reason": str(exc) if str(exc) else "no run"})
            continue
        pairs.append((seed, pair[0], pair[1]))
    if not pairs:
        raise NoTokenRecord(
            f"no seed of study {study_id} has token records for both {a} and {b} yet"
        )
    view = seeds_compare_view(pairs, [a, b], step)
    return {"study_id": study_id, "available_variants": labels, "skipped": skipped, **view}
