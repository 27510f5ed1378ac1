"""Response models of the studies API: they document /docs and name every field the pages use.

Like the runs API's, they allow more keys (`extra="allow"`) so a model never silently drops one
that app.studies.views returns.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.runs.schemas import HomeDisk, RequestEstimate, RunEstimate
from entrodrop.studies.status import STUDY_STATUSES


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Stat(_Open):
    """Mean over seeds with the half-width of its 95% interval (None when n < 2)."""

    mean: float | None
    ci95: float | None
    n: int
    why: str | None = Field(
        None, description="why some finished runs have no value (e.g. too short to rebound)"
    )


class StudyLinks(_Open):
    page: str
    api: str
    csv: str
    cancel: str
    report: str = Field(description="the study as one self-contained HTML file (download)")
    tokens: str


class StudyFacts(_Open):
    statuses: list[str]
    status_words: dict[str, str] = Field(
        description="what a badge says for each study status and each of its runs' statuses"
    )
    active: list[str]
    run_active: list[str]
    outcomes: list[dict[str, str]]
    metric_labels: dict[str, str]
    no_interval: str


class StudyRunPublic(_Open):
    """One run of a study: its variant, seed and live status."""

    id: str
    variant: str
    seed: int
    status: str
    error: str | None
    step: int
    total_steps: int | None
    progress: float
    final_eval_loss: float | None
    page: str | None


class StudyPublic(_Open):
    """A study as the list shows it."""

    id: str
    name: str
    status: str = Field(
        description=", ".join(STUDY_STATUSES) + " (entrodrop.studies.status says what each means)"
    )
    resume: str | None = Field(
        description="for a study `entrodrop study` ran whose process has ended with runs not "
        "succeeded: the command that continues it (null otherwise)"
    )
    created_at: float | None
    variants: list[str]
    seeds: list[int]
    n_runs: int
    counts: dict[str, int]
    links: StudyLinks


class StudiesPublic(_Open):
    studies: list[StudyPublic]
    facts: StudyFacts


class SummaryRow(_Open):
    """Per variant: n and each outcome's mean ± 95% CI over seeds."""

    variant: str
    n: int
    final_heldout: Stat
    best_heldout: Stat
    high_entropy_rebound: Stat
    final_general: Stat


class PairedRow(_Open):
    """Per-seed differences of final held-out loss against `none`, `early_stop` or the matching
    `random`."""

    variant: str
    vs: str
    vs_label: str
    seeds: list[int]
    final_heldout_diff: Stat
    excludes_zero: bool | None = Field(
        description="the 95% interval lies on one side of zero; null without an interval (n < 2)"
    )
    reading: str


class StudyDetail(StudyPublic):
    """One study: its runs, summary, paired differences, readings and curves per variant."""

    config: dict[str, Any]
    runs: list[StudyRunPublic]
    summary: list[SummaryRow]
    paired: list[PairedRow]
    readings: list[str]
    verdict: str = Field(
        description="whether any variant beat plain fine-tuning stopped at its best "
        "evaluation (the early_stop variant), in one sentence"
    )
    machine: dict[str, Any] | None = Field(
        None, description="the machine the study's runs train on, as recorded in study.json"
    )
    curves: dict[str, dict[str, dict[str, list[Any]]]]
    panels: list[dict[str, Any]]
    facts: StudyFacts


class StudyCreated(_Open):
    """The new study's id, its queued runs and its page."""

    id: str
    runs: list[StudyRunPublic]
    url: str


class VariantEstimate(_Open):
    label: str
    estimate: RunEstimate = Field(description="one run of this variant (every seed the same)")


class StudyCheck(_Open):
    """What a study would queue and cost here: the whole study's time and disk."""

    name: str
    runs: int
    estimate: RequestEstimate
    estimate_text: str
    variants: list[VariantEstimate]


class StudyDeleted(_Open):
    """The deleted study's id and the runs deleted with it (none unless ?runs=true)."""

    id: str
    deleted_runs: list[str]


class StudyForm(_Open):
    """What the new-study form offers."""

    defaults: dict[str, Any]
    base_fields: list[dict[str, Any]]
    entrodrop_fields: list[dict[str, Any]]
    variants: list[dict[str, Any]]
    presets: list[dict[str, Any]]
    seeds: list[int]
    max_runs: int
    disk: HomeDisk
    parallel: int = Field(description="runs at once (ENTRODROP_MAX_CONCURRENT_RUNS)")
    estimate_url: str = Field(description="POST a study config here for its time and disk")
    finished_runs: list[dict[str, Any]] = Field(
        description="runs whose model a study can start from"
    )
    path_rules: dict[str, dict[str, Any]] = Field(
        description="per kind (model, data): by_path (allowed at all) and the rule in words"
    )
    max_upload_bytes: int
    upload_suffixes: list[str]
