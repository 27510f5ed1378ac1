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
from entrodrop.eval.tasks import OFFLINE
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


class EvaluateRequest(BaseModel):
    """Body of POST /api/runs/{id}/evaluate: lm-eval tasks scored on the run's final model and
    best checkpoint (docs/evaluation.md)."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(
        default_factory=lambda: [OFFLINE],
        min_length=1,
        max_length=20,
        description="'offline' (the bundled tasks) or lm-eval task names (those need network)",
    )
    limit: int | None = Field(None, ge=1, le=1_000_000, description="examples per task")
    allow_code_execution: bool = Field(
        False, description="let tasks run the code the model writes (loopback servers only)"
    )

    @field_validator("tasks")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        return RunConfig.model_validate({"eval_tasks": v}).eval_tasks  # one rule for names


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
    tokens: str
    inspect: str | None
    compare: str | None = Field(
        description="the compare page of its matched pair, while both runs of it exist"
    )
    study: str | None = Field(None, description="the page of the study it belongs to")
    inspect_best: str | None = Field(None, description="Inspect with the run's best checkpoint")
    export: str | None = Field(
        None, description="the model as a zip (add ?checkpoint=best|final|STEP, &merge=true)"
    )


class RunStudy(_Public):
    """The study a run belongs to."""

    id: str
    name: str
    variant: str | None
    seed: int | None
    run_name: str = Field(description="the name the study gives the run: study · variant · seed")
    page: str


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
    eta_s: float | None = Field(
        description="seconds left while running; null while starting (nothing measured yet)"
    )
    stage: str | None = Field(
        None, description="while running: what the training process is doing, e.g. 'evaluating'"
    )
    starting: bool = Field(
        False,
        description="while running: still loading, scoring references or taking its first step "
        "(no ETA yet)",
    )
    stage_eta_s: float | None = Field(
        None, description="seconds left of the current stage when it counts them (the pre-pass)"
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
    best_metric: str = Field(description="the metric that judges the best evaluation")
    best_step: int | None = Field(
        description="the step of the best evaluation after training began (so far, while it runs)"
    )
    best_metrics: dict[str, float] | None = Field(
        description="every evaluation metric at best_step"
    )
    best_checkpoint: str | None = Field(
        description="the best evaluation's checkpoint folder, when kept (model spec run:<id>:best)"
    )
    stopped_early: bool = Field(description="early stopping ended the run (it succeeded)")
    stop_reason: str | None = Field(description="why early stopping ended it, in words")
    eta_at_most: bool = Field(
        description="early stopping is on: the run may end sooner, so times are upper bounds"
    )
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
    y_label: str = Field(description="the y axis's title")
    note: str | None = Field(None, description="a sentence under the chart saying how to read it")


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


class BenchmarkFacts(_Public):
    """The lm-eval tasks the pages offer (entrodrop.eval.tasks; docs/evaluation.md)."""

    offline: str = Field(description="the group name of the bundled offline tasks")
    offline_tasks: list[str] = Field(description="the bundled tasks: no network needed")
    paper_suite: list[str] = Field(description="the paper's tasks (they need network)")
    code_tasks: list[str] = Field(description="tasks that run generated code (opt-in)")


class RunFacts(_Public):
    """The facts the runs pages show (statuses, metric labels, panels, dropping methods)."""

    statuses: list[Status]
    status_words: dict[str, str] = Field(description="what each status's badge says")
    stopping_word: str = Field(description="added to a running run's badge once asked to stop")
    not_started: str = Field(description="the runs list's Started for a run that never started")
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
    benchmarks: BenchmarkFacts
    limits: PatchLimits


class HomeDisk(_Public):
    """The disk under the home folder: what runs use, what is free."""

    home: str
    used_bytes: int | None = Field(None, description="every run folder together")
    free_bytes: int


class RunsPublic(_Public):
    """Every run, newest first, and how many are in each status."""

    runs: list[RunPublic]
    counts: dict[str, int]
    disk: HomeDisk
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
    export: ExportInfo = Field(description="the export's folder and the CLI line that does it")
    facts: RunFacts


class ExportInfo(_Public):
    """Where the run page's download puts the exported folder, and the same export by CLI."""

    folder: str
    command: str
    commands: dict[str, str] = Field(
        default_factory=dict,
        description="the CLI line per checkpoint choice ('<choice>:merge' with --merge)",
    )
    checkpoints: list[str] = Field(description="what exists to export: final, best, steps")
    merge: bool = Field(description="a LoRA run can also export merged weights")


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
    best_metric: str
    best_step: int | None
    best_metrics: dict[str, float] | None
    best_checkpoint: str | None
    stopped_early: bool
    stop_reason: str | None
    eta_at_most: bool
    final: dict[str, float | None]
    benchmarks: dict[str, float] = Field(
        default_factory=dict,
        description="each benchmark task's headline metric (its last value), by 'task: metric'",
    )


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


class EstimatePart(_Public):
    """One part of a run's time."""

    key: Literal[
        "startup", "reference", "evaluations", "steps", "checkpoints", "save", "benchmarks"
    ]
    label: str
    seconds: float
    source: Literal["measured", "scaled", "prior", "unknown"] = Field(
        description="measured: a run of the same kind here timed it; scaled: this model's "
        "speed here at another shape; prior: from the model's size and a machine probe; "
        "unknown: not counted (benchmarks fetched from the hub)"
    )


class DiskUse(_Public):
    """The disk a run (or a whole request) takes, against the free space under the home."""

    peak_bytes: int = Field(description="the most its folders hold at once")
    final_bytes: int = Field(description="what stays when it has ended")
    least_bytes: int = Field(description="what must fit to start at all (its largest run)")
    free_bytes: int | None = Field(description="free space under the home now")
    warn: bool = Field(description="it fills (or nearly fills) the free space")
    fits: bool = Field(description="false: creating it is refused with 507")
    size_from: str = Field(description="where the model's size came from")
    checkpoint_bytes: int | None = Field(None, description="one checkpoint (one run)")
    checkpoints_saved: int | None = None
    checkpoints_kept: int | None = None
    model_bytes: int | None = Field(None, description="the final model/ (one run)")


class RunEstimate(_Public):
    """What one run will take here: steps, time part by part, disk."""

    steps: int | None
    steps_source: str = Field(description="max_steps, measured (an earlier run), or data size")
    tokens_per_step: int
    tokens: int | None
    step_time_s: float | None
    parts: list[EstimatePart]
    duration_s: float | None = Field(description="the parts' sum; null only without steps")
    warn: bool
    warn_above_s: float
    disk: DiskUse | None
    at_most: bool = Field(
        False, description="early stopping is on: the steps and the time are upper bounds"
    )
    runs: int = Field(1, description="runs this request queues (a matched baseline: 2)")


class RequestEstimate(_Public):
    """What a whole request (a run and its baseline, a study) will take here."""

    runs: int
    parallel: int = Field(description="runs at once (ENTRODROP_MAX_CONCURRENT_RUNS)")
    duration_s: float | None = Field(description="every run's time, summed")
    wall_s: float | None = Field(description="the time until the last run ends")
    warn: bool
    warn_above_s: float
    disk: DiskUse | None


class RunCheck(_Public):
    """A validated request: configs, their JSON and the commands that reproduce them headless."""

    configs: list[dict[str, Any]]
    config_json: str
    launcher: Launcher
    commands: list[str]
    estimate: RunEstimate = Field(description="the first run's estimate")
    estimate_text: str
    total: RequestEstimate = Field(description="every run of the request together")
    total_text: str


class DataReport(_Public):
    """What a run's dataset gives its model: the object of `entrodrop data --json` and of a
    run's summary.json "data"."""

    format: str = Field(description="text, messages, sharegpt, alpaca or prompt_completion.")
    examples: int = Field(description="Examples (plain text: documents) in the dataset.")
    tokens: int = Field(description="Tokens after the chat template and truncation.")
    trained_tokens: int = Field(description="Of those, the tokens that carry loss.")
    truncated: int = Field(description="Examples longer than seq_len (cut, or left out).")
    dropped: int = Field(description="Examples left out (too long with 'drop', or no answer).")
    seq_len: int
    train_on: str


class UploadPublic(_Public):
    """A saved upload: the dataset value to use in a run config, and what it holds."""

    dataset: str
    name: str
    bytes: int
    format: str = Field(description="text, messages, sharegpt, alpaca or prompt_completion.")
    n_examples: int
    n_texts: int = Field(description="The same as n_examples (kept for older pages).")
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
    name: str = Field("", description="its name in the runs table (empty without one)")
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
    path_rules: dict[str, dict[str, Any]] = Field(
        description="per kind (model, data): by_path (allowed at all) and the rule in words"
    )
    max_upload_bytes: int
    upload_suffixes: list[str]
    facts: RunFacts
    disk: HomeDisk
    estimate_url: str = Field(description="POST a run config here for its time and disk")


class PreviewPoint(_Public):
    progress: float
    rate: float
    n_dropped: int


class PreviewRowToken(_Public):
    """One token of a preview row: the three layers the page draws."""

    index: int
    id: int
    text: str
    trained: bool = Field(description="Carries loss (false: prompt, chat template, first token).")
    role: str | None = Field(description="The message's role (instruction data), else null.")
    segment: str = Field(description="'content' (a message's text), 'template' or 'text'.")
    entropy: float | None = Field(description="The starting model's entropy, nats.")
    dropped: list[bool] = Field(description="Dropped at s = 0, 0.5 and 1.")


class PreviewExample(_Public):
    source: int | None = Field(description="The example's index in the training split.")
    truncated: bool = Field(description="Longer than the rows shown (or than seq_len).")


class RunPreview(_Public):
    """The first training rows and the tokens dropped at s = 0, 0.5 and 1, over trained tokens."""

    model: str
    method: str
    drops_apply: bool
    tau: float | None
    n_tokens: int
    n_trained: int = Field(description="Tokens that carry loss in these rows.")
    train_on: str
    drop_scope: str
    instruction: bool = Field(description="Instruction data (rendered with the chat template).")
    points: list[PreviewPoint]
    rows: list[list[PreviewRowToken]]
    examples: list[PreviewExample]
    note: str
