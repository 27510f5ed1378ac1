"""Request and response models of the runs API: they validate the body's shape and document /docs.

Response models name every field the pages rely on and allow more (`extra="allow"`), so a model
never silently drops a key the data functions in app.runs.views return.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.runs.facts import (
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    TAG_PATTERN,
)
from entrodrop.config import PRESETS, RunConfig
from entrodrop.launch import Launcher


class RunCreate(RunConfig):
    """Body of POST /api/runs: a run config plus how to launch it and an optional baseline twin.

    Missing fields take RunConfig's defaults, or the named preset's values where one is given.
    """

    preset: str | None = Field(
        None,
        description=f"Start from a named preset ({', '.join(PRESETS)}); the body's fields win.",
        json_schema_extra={"enum": [*PRESETS, None]},
    )
    launcher: Launcher | None = None
    compare_with: Literal["none", "random"] | None = None


Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_TAG_CHARS, pattern=TAG_PATTERN)
]


class RunPatch(BaseModel):
    """Body of PATCH /api/runs/{id}: any of name, notes and tags; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=MAX_NAME_CHARS, description="a short title")
    notes: str | None = Field(None, max_length=MAX_NOTES_CHARS, description="free text")
    tags: list[Tag] | None = Field(
        None, max_length=MAX_TAGS, description="labels: letters, digits and _ . : + -"
    )


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class RunLinks(_Open):
    page: str
    api: str
    metrics: str
    csv: str
    events: str
    inspect: str | None
    compare: str | None = Field(
        description="the compare page of its matched pair, while both runs of it exist"
    )
    study: str | None = Field(None, description="the page of the study it belongs to")


class RunStudy(_Open):
    """The study a run belongs to."""

    id: str
    name: str
    variant: str | None
    seed: int | None
    run_name: str = Field(description="the name the study gives the run: study · variant · seed")
    page: str


class RunPublic(_Open):
    """A run as the runs list shows it."""

    id: str
    name: str
    notes: str
    tags: list[str]
    status: str = Field(description="queued, running, succeeded, failed, cancelled, interrupted")
    progress: float = Field(ge=0.0, le=1.0)
    step: int
    total_steps: int | None
    eta_s: float | None
    stage: str | None = Field(
        None, description="while running: what the training process is doing, e.g. 'evaluating'"
    )
    elapsed_s: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    method: str | None
    method_label: str
    model: str | None
    dataset: str | None
    best_eval_loss: float | None
    final_eval_loss: float | None
    error: str | None
    group_id: str | None
    study: RunStudy | None = Field(None, description="the study that queued it, if any")
    launcher: dict[str, Any]
    attempts: int
    cancel_requested: bool
    can_cancel: bool
    can_resume: bool = Field(description="stopped with a complete checkpoint to continue from")
    can_restart: bool = Field(description="stopped with no checkpoint: it can only start again")
    can_delete: bool
    checkpoint: str | None = Field(description="the latest complete checkpoint folder's name")
    checkpoint_step: int | None
    tokens_per_step: int
    has_model: bool
    disk_bytes: int
    links: RunLinks


class RunFacts(_Open):
    """The facts the runs pages show (statuses, metric labels, panels, dropping methods)."""

    statuses: list[str]
    status_words: dict[str, str] = Field(description="what each status's badge says")
    stopping_word: str = Field(description="added to a running run's badge once asked to stop")
    not_started: str = Field(description="the runs list's Started for a run that never started")
    active: list[str]
    resumable: list[str]
    methods: list[str]
    dropping_methods: list[str]
    metric_labels: dict[str, str]
    panels: list[dict[str, Any]]
    drop_panels: list[str]
    compare_metrics: list[str]
    x_axes: list[dict[str, str]]
    limits: dict[str, Any]


class RunsPublic(_Open):
    """Every run, newest first, and how many are in each status."""

    runs: list[RunPublic]
    counts: dict[str, int]
    tags: list[str]
    max_compare: int
    facts: RunFacts


class RunDetail(RunPublic):
    """One run: its summary plus config, commands, log tails and last metric values."""

    config: dict[str, Any]
    config_json: str
    commands: list[str]
    effective_batch: str | None
    run_dir: str
    log_tail: list[str]
    output_tail: list[str]
    last_values: dict[str, float | None]
    panels: list[dict[str, Any]]
    summary_file: dict[str, Any] | None
    facts: RunFacts


class MetricRow(_Open):
    """One metric value: the row id is the cursor of `after` and of the event stream."""

    id: int
    step: int
    name: str
    value: float | None
    epoch: float | None
    time: float | None
    attempt: int = Field(description="the launch that logged it (a resume or restart adds one)")


class RunCompare(_Open):
    """Runs side by side: config differences, final values, all metric rows."""

    runs: list[RunPublic]
    differences: list[dict[str, Any]]
    table: list[dict[str, Any]]
    metric_names: list[str]
    metric_labels: dict[str, str]
    metrics: dict[str, list[MetricRow]]
    panels: list[dict[str, Any]]
    facts: RunFacts


class RunCreated(_Open):
    """The queued run (and its baseline twin): ids and the page to watch them on."""

    id: str
    ids: list[str]
    url: str


class RunDeleted(_Open):
    """A deleted run: its row, metrics and folder are gone."""

    id: str
    deleted: bool


class RunCheck(_Open):
    """A validated request: configs, their JSON and the commands that reproduce them headless."""

    configs: list[dict[str, Any]]
    config_json: str
    launcher: Launcher
    commands: list[str]
    estimate: dict[str, Any]
    estimate_text: str


class UploadPublic(_Open):
    """A saved upload: the dataset value to use in a run config."""

    dataset: str
    name: str
    bytes: int
    n_texts: int
    n_chars: int


class RunForm(_Open):
    """What the new-run form offers: defaults (the `quick` preset), fields, methods, folders."""

    values: dict[str, Any]
    defaults: dict[str, Any]
    preset: str | None
    methods: list[dict[str, str]]
    baseline_strength_defaults: dict[str, float]
    compare_methods: list[str]
    training_fields: list[dict[str, Any]]
    advanced_fields: list[dict[str, Any]]
    entrodrop_fields: list[dict[str, Any]]
    adapter_fields: list[dict[str, Any]]
    no_adapter: str
    finished_runs: list[dict[str, Any]]
    allowed_data_dirs: list[str]
    path_rules: dict[str, dict[str, Any]] = Field(
        description="per kind (model, data): by_path (allowed at all) and the rule in words"
    )
    max_upload_bytes: int
    upload_suffixes: list[str]
    facts: RunFacts


class PreviewPoint(_Open):
    progress: float
    rate: float
    n_dropped: int


class RunPreview(_Open):
    """The first training blocks and the tokens dropped at s = 0, 0.5 and 1."""

    model: str
    method: str
    drops_apply: bool
    tau: float | None
    n_tokens: int
    points: list[PreviewPoint]
    rows: list[list[dict[str, Any]]]
    note: str
