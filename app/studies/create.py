"""Check a new study (FastAPI validated its body, a StudyConfig) and queue every run of it
through the one job runner."""

from __future__ import annotations

from typing import Any

from app.errors import FieldError, RequestInvalid
from app.runs.runner import JobRunner
from app.runs.validate import check_run, queue_room
from app.settings import Settings
from app.studies.store import StudyStore
from entrodrop.config import RunConfig
from entrodrop.studies.config import StudyConfig


def check_size(study: StudyConfig, settings: Settings) -> int:
    """The study's run count, within the server's cap on runs per study (422 otherwise)."""
    count = len(study.variants) * len(study.seeds)
    if count > settings.max_study_runs:
        problem = FieldError(
            ("variants",),
            f"this study would queue {count} runs ({len(study.variants)} variants x "
            f"{len(study.seeds)} seeds); this server allows at most {settings.max_study_runs} "
            "per study (ENTRODROP_MAX_STUDY_RUNS)",
        )
        raise RequestInvalid([problem])
    return count


def checked_configs(study: StudyConfig, runner: JobRunner) -> list[tuple[str, int, RunConfig]]:
    """Every run's config through the same checks as POST /api/runs (model, dataset...).

    Errors are located under `base` (the shared fields: model, dataset) or the variant's label.
    """
    settings, storage = runner.settings, runner.storage
    try:
        check_run(study.base, settings, storage)
    except RequestInvalid as exc:
        raise RequestInvalid(
            [FieldError(("base", *e.loc), e.msg) for e in exc.field_errors]
        ) from exc
    out = []
    for run in study.expand():
        try:
            req = check_run(run.config, settings, storage)
        except RequestInvalid as exc:
            where = ("variants", run.variant)
            raise RequestInvalid(
                [FieldError((*where, *e.loc), e.msg) for e in exc.field_errors]
            ) from exc
        out.append((run.variant, run.seed, req.config))
    return out


def create_study(study: StudyConfig, runner: JobRunner, store: StudyStore) -> dict[str, Any]:
    """Check, queue every run (seed by seed, variants in order) and record the study."""
    count = check_size(study, runner.settings)
    planned = checked_configs(study, runner)  # every check passes before anything is queued
    # The study's runs wait in the one queue: they share its bound with single runs (429).
    with queue_room(runner.storage, runner.settings, count, "this study"):
        runs = [
            {"id": runner.submit(config).id, "variant": variant, "seed": seed}
            for variant, seed, config in planned
        ]
        return store.create(study, runs)
