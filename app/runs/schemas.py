"""Request and response models of the runs API: FastAPI validates the bodies with them, the views
build the responses as them, and /docs shows them.

Response models forbid keys they do not name (`extra="forbid"`): a view that adds a key must add
it here, so the documented model is the answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.runs.facts import (
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    TAG_PATTERN,
)
from entrodrop.config import PRESETS, RunConfig, with_preset
from entrodrop.launch import Launcher
from entrodrop.names import NOTES_ALLOWED, check_printable
from entrodrop.runfolder import Status

# The baselines a run may be matched with (a twin that differs only by its method).
CompareMethod = Literal["none", "random"]
COMPARE_METHODS: tuple[CompareMethod, ...] = get_args(CompareMethod)


class RunCreate(RunConfig):
    """Body of POST /api/runs (and /check, /preview): a run config plus how to launch it and an
    optional baseline twin. Missing fields take RunConfig's defaults, or the named preset's
    values where one is given (the body's own values win over the preset's)."""

    preset: str | None = Field(
        None,
        description=f"Start from a named preset ({', '.join(PRESETS)}); the body's fields win.",
        json_schema_extra={"enum": [*PRESETS, None]},
    )
    launcher: Launcher | None = Field(None, description="How to start it; default one process.")
    compare_with: CompareMethod | None = Field(
        None, description="Also queue a twin with this method: same seed, data and schedule."
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_under_the_body(cls, data: Any) -> Any:
        # The preset fills what the body leaves out; an unknown one is reported at its field.
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            return with_preset(data, data["preset"])
        return data

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"must be one of {', '.join(PRESETS)}")
        return value

    def run_config(self) -> RunConfig:
        """The run's own config: the body without its launch and matching keys."""
        return RunConfig.model_validate(self.model_dump(include=set(RunConfig.model_fields)))


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

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str | None) -> str | None:
        return None if value is None else check_printable(value)

    @field_validator("notes")
    @classmethod
    def _printable_notes(cls, value: str | None) -> str | None:
        return None if value is None else check_printable(value, NOTES_ALLOWED)


class _Public(BaseModel):
    # The view builds this model itself: a key it does not name is a bug, not an extension.
    model_config = ConfigDict(extra="forbid")


class RunLinks(_Public):
    page: str
    api: str
    metrics: str
    csv: str
    events: str
    inspect: str | None
    compare: str | None


class RunPublic(_Public):
    """A run as the runs list shows it."""

    id: str
    name: str
    notes: str
    tags: list[str]
    status: Status = Field(description="queued, running, succeeded, failed, cancelled, interrupted")
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


class MetricFact(_Public):
    """One metric of the vocabulary (entrodrop.metrics): how a person reads it."""

    name: str
    label: str
    unit: str
    log: bool
    lower_is_better: bool | None


class Panel(_Public):
    """One chart of the run and compare pages: the metrics it draws."""

    id: str
    title: str
    names: list[str]
    log: bool


class XAxis(_Public):
    id: str
    label: str


class PatchLimits(_Public):
    """What PATCH /api/runs/{id} takes (the page's inputs carry the same bounds)."""

    name: int
    notes: int
    tags: int
    tag: int
    tag_pattern: str


class RunFacts(_Public):
    """The facts the runs pages show (statuses, metric labels, panels, dropping methods)."""

    statuses: list[Status]
    active: list[Status]
    resumable: list[Status]
    methods: list[str]
    dropping_methods: list[str]
    metric_labels: dict[str, str]
    metrics: dict[str, MetricFact]
    deterministic_metrics: list[str]
    panels: list[Panel]
    drop_panels: list[str]
    compare_metrics: list[str]
    x_axes: list[XAxis]
    limits: PatchLimits


class RunsPublic(_Public):
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
    panels: list[Panel]
    summary_file: dict[str, Any] | None
    facts: RunFacts


class MetricRow(_Public):
    """One metric value: the row id is the cursor of `after` and of the event stream."""

    id: int
    step: int
    name: str
    value: float | None
    epoch: float | None
    time: float | None
    attempt: int = Field(description="the launch that logged it (a resume or restart adds one)")


class CompareRow(_Public):
    """One run's line of the compare table: best held-out loss and final values."""

    id: str
    method_label: str
    best_eval_loss: float | None
    final: dict[str, float | None]


class Difference(_Public):
    """A setting that differs between the compared runs, with each run's value."""

    key: str
    values: list[Any]


class RunCompare(_Public):
    """Runs side by side: config differences, final values, all metric rows."""

    runs: list[RunPublic]
    differences: list[Difference]
    table: list[CompareRow]
    metric_names: list[str]
    metric_labels: dict[str, str]
    metrics: dict[str, list[MetricRow]]
    panels: list[Panel]
    facts: RunFacts


class RunCreated(_Public):
    """The queued run (and its baseline twin): ids and the page to watch them on."""

    id: str
    ids: list[str]
    url: str


class RunDeleted(_Public):
    """A deleted run: its row, metrics and folder are gone."""

    id: str
    deleted: bool


class RunCheck(_Public):
    """A validated request: configs, their JSON and the commands that reproduce them headless."""

    configs: list[dict[str, Any]]
    config_json: str
    launcher: Launcher
    commands: list[str]
    estimate: dict[str, Any]
    estimate_text: str


class UploadPublic(_Public):
    """A saved upload: the dataset value to use in a run config."""

    dataset: str
    name: str
    bytes: int
    n_texts: int
    n_chars: int


class FormField(_Public):
    """One input of a form, built from the pydantic field it sets (label, help, bounds)."""

    name: str
    label: str
    kind: Literal["select", "int", "float", "bool", "text"]
    default: Any
    nullable: bool
    help: str
    options: list[Any]
    min: float | None
    max: float | None


class MethodChoice(_Public):
    name: str
    help: str


class FinishedRun(_Public):
    """A finished run whose model a new run can start from (`run:<id>`)."""

    id: str
    method: str | None
    model: str | None


class RunForm(_Public):
    """What the new-run form offers: defaults (the `quick` preset), fields, methods, folders."""

    values: dict[str, Any]
    defaults: dict[str, Any]
    preset: str | None
    methods: list[MethodChoice]
    baseline_strength_defaults: dict[str, float]
    compare_methods: list[CompareMethod]
    training_fields: list[FormField]
    advanced_fields: list[FormField]
    entrodrop_fields: list[FormField]
    adapter_fields: list[FormField]
    no_adapter: str
    finished_runs: list[FinishedRun]
    allowed_data_dirs: list[str]
    max_upload_bytes: int
    upload_suffixes: list[str]
    facts: RunFacts


class PreviewPoint(_Public):
    progress: float
    rate: float
    n_dropped: int


class PreviewCell(_Public):
    """One token of the preview: its text, entropy and whether it is dropped at each point."""

    text: str
    entropy: float | None
    dropped: list[bool]


class RunPreview(_Public):
    """The first training blocks and the tokens dropped at s = 0, 0.5 and 1."""

    model: str
    method: str
    drops_apply: bool
    tau: float | None
    n_tokens: int
    points: list[PreviewPoint]
    rows: list[list[PreviewCell]]
    note: str
