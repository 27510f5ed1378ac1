"""Check a new study (FastAPI validated its body, a StudyConfig), say what it will cost, and
queue every run of it through the one job runner."""

from __future__ import annotations

from typing import Any

from app.errors import FieldError, RequestInvalid
from app.runs import cost
from app.runs.runner import JobRunner
from app.runs.validate import check_run, queue_room
from app.settings import Settings
from app.studies.store import StudyStore, run_name
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


def estimate_study(
    study: StudyConfig, planned: list[tuple[str, int, RunConfig]], settings: Settings
) -> dict[str, Any]:
    """The whole study's time and disk (every run), and one run's estimate per variant."""
    found = cost.for_configs(settings, [config for _, _, config in planned], 1)
    per_variant: dict[str, dict[str, Any]] = {}
    for (label, _, _), est in zip(planned, found["runs"], strict=True):
        per_variant.setdefault(label, est)  # every seed of a variant costs the same
    return {
        "name": study.name,
        "runs": len(planned),
        "estimate": found["total"],
        "estimate_text": cost.describe_total(found["total"]),
        "variants": [{"label": k, "estimate": v} for k, v in per_variant.items()],
    }


def check_study(study: StudyConfig, runner: JobRunner) -> dict[str, Any]:
    """POST /api/studies/check: check as a create would, and say what the study will cost."""
    check_size(study, runner.settings)
    return estimate_study(study, checked_configs(study, runner), runner.settings)


def create_study(study: StudyConfig, runner: JobRunner, store: StudyStore) -> dict[str, Any]:
    """Check, queue every run (seed by seed, variants in order) and record the study."""
    count = check_size(study, runner.settings)
    planned = checked_configs(study, runner)  # every check passes before anything is queued
    cost.check_disk(estimate_study(study, planned, runner.settings)["estimate"])  # 507
    # The study's runs wait in the one queue: they share its bound with single runs (429).
    with queue_room(runner.storage, runner.settings, count, "this study"):
        runs = []
        for variant, seed, config in planned:
            run_id = runner.submit(config).id
            runner.storage.update_run(run_id, name=run_name(study.name, variant, seed))
            runs.append({"id": run_id, "variant": variant, "seed": seed})
        return store.create(study, runs)
