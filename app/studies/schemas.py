"""Response models of the studies API: the views build them, /docs shows them. Like the runs
API's, they forbid keys they do not name, so the documented model is the answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.runs.schemas import (
    BenchmarkFacts,
    FinishedRun,
    FormField,
    HomeDisk,
    RequestEstimate,
    RunEstimate,
)
from entrodrop.runfolder import Status
from entrodrop.studies.status import STUDY_STATUSES, Missing, StudyStatus


class _Public(BaseModel):
    # The view builds this model itself: a key it does not name is a bug, not an extension.
    model_config = ConfigDict(extra="forbid")


class Stat(_Public):
    """Mean over seeds with the half-width of its 95% interval (None when n < 2)."""

    mean: float | None
    ci95: float | None
    n: int
    why: str | None = Field(
        None, description="why some finished runs have no value (e.g. too short to rebound)"
    )
    excludes_zero: bool | None = Field(
        None, description="a benchmark difference's interval lies on one side of zero"
    )


class StudyLinks(_Public):
    page: str
    api: str
    csv: str
    cancel: str
    report: str = Field(description="the study as one self-contained HTML file (download)")
    tokens: str


class OutcomeFact(_Public):
    name: str
    label: str


class StudyFacts(_Public):
    statuses: list[StudyStatus]
    status_words: dict[str, str] = Field(
        description="what a badge says for each study status and each of its runs' statuses"
    )
    active: list[StudyStatus]
    run_active: list[Status]
    outcomes: list[OutcomeFact]
    metric_labels: dict[str, str]
    no_interval: str


class StudyRunPublic(_Public):
    """One run of a study: its variant, seed and live status."""

    id: str
    variant: str
    seed: int
    status: Status | Missing = Field(description="the run's status; missing: its row is gone")
    error: str | None
    step: int
    total_steps: int | None
    progress: float
    final_eval_loss: float | None
    page: str | None


class StudyPublic(_Public):
    """A study as the list shows it."""

    id: str
    name: str
    status: StudyStatus = Field(
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


class StudiesPublic(_Public):
    studies: list[StudyPublic]
    facts: StudyFacts


class SummaryRow(_Public):
    """Per variant: n and each outcome's mean ± 95% CI over seeds; a study with benchmarks also
    has a `bench:<task>:<metric>` Stat per task (named by the study's own tasks, hence open)."""

    model_config = ConfigDict(extra="allow")

    variant: str
    n: int
    final_heldout: Stat
    best_heldout: Stat
    high_entropy_rebound: Stat
    final_general: Stat


class PairedRow(_Public):
    """Per-seed differences of final held-out loss against `none`, `early_stop` or the matching
    `random` (and of each benchmark's headline metric: `bench:<task>:<metric>_diff`)."""

    model_config = ConfigDict(extra="allow")

    variant: str
    vs: str
    vs_label: str
    seeds: list[int]
    final_heldout_diff: Stat
    excludes_zero: bool | None = Field(
        description="the 95% interval lies on one side of zero; null without an interval (n < 2)"
    )
    reading: str


class Curve(_Public):
    """One metric of one variant over its seeds: the mean and its 95% band per step."""

    step: list[int]
    epoch: list[float]
    mean: list[float]
    lo: list[float]
    hi: list[float]
    n: list[int]


class CurvePanel(_Public):
    id: str
    title: str
    name: str


class StudyDetail(StudyPublic):
    """One study: its runs, summary, paired differences, readings and curves per variant."""

    config: dict[str, Any]
    runs: list[StudyRunPublic]
    summary: list[SummaryRow]
    paired: list[PairedRow]
    outcomes: list[OutcomeFact] = Field(
        description="the summary's outcomes in table order: the fixed ones, then a "
        "`bench:<task>:<metric>` per benchmark task its runs report"
    )
    readings: list[str]
    verdict: str = Field(
        description="whether any variant beat plain fine-tuning stopped at its best "
        "evaluation (the early_stop variant), in one sentence"
    )
    machine: dict[str, Any] | None = Field(
        None, description="the machine the study's runs train on, as recorded in study.json"
    )
    curves: dict[str, dict[str, Curve]] = Field(description="variant -> metric -> curve")
    panels: list[CurvePanel]
    facts: StudyFacts


class StudyCreated(_Public):
    """The new study's id, its queued runs and its page."""

    id: str
    runs: list[StudyRunPublic]
    url: str


class VariantEstimate(_Public):
    label: str
    estimate: RunEstimate = Field(description="one run of this variant (every seed the same)")


class StudyCheck(_Public):
    """What a study would queue and cost here: the whole study's time and disk."""

    name: str
    runs: int
    estimate: RequestEstimate
    estimate_text: str
    variants: list[VariantEstimate]


class StudyDeleted(_Public):
    """The deleted study's id and the runs deleted with it (none unless ?runs=true)."""

    id: str
    deleted_runs: list[str]


class VariantChoice(_Public):
    """One item of the variants checklist: the label a study gives it, and its spec."""

    label: str
    spec: str | dict[str, Any]
    help: str


class VariantPreset(_Public):
    name: str
    labels: list[str]


class StudyForm(_Public):
    """What the new-study form offers."""

    defaults: dict[str, Any]
    values: dict[str, Any]
    base_fields: list[FormField]
    entrodrop_fields: list[FormField]
    shared_fields: list[str]
    variants: list[VariantChoice]
    presets: list[VariantPreset]
    default_preset: str
    seeds: list[int]
    max_seeds: int
    max_variants: int
    max_runs: int
    keep_checkpoints: bool
    keep_checkpoints_help: str | None
    allowed_data_dirs: list[str]
    disk: HomeDisk
    parallel: int = Field(description="runs at once (ENTRODROP_MAX_CONCURRENT_RUNS)")
    estimate_url: str = Field(description="POST a study config here for its time and disk")
    finished_runs: list[FinishedRun] = Field(description="runs whose model a study can start from")
    path_rules: dict[str, dict[str, Any]] = Field(
        description="per kind (model, data): by_path (allowed at all) and the rule in words"
    )
    max_upload_bytes: int
    upload_suffixes: list[str]
    benchmarks: BenchmarkFacts = Field(description="the lm-eval tasks the form offers")
