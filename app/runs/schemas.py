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


class HomeDisk(_Open):
    """The disk under the home folder: what runs use, what is free."""

    home: str
    used_bytes: int | None = Field(None, description="every run folder together")
    free_bytes: int


class RunsPublic(_Open):
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


class EstimatePart(_Open):
    """One part of a run's time."""

    key: Literal["startup", "reference", "evaluations", "steps", "checkpoints", "save"]
    label: str
    seconds: float
    source: Literal["measured", "scaled", "prior"] = Field(
        description="measured: a run of the same kind here timed it; scaled: this model's "
        "speed here at another shape; prior: from the model's size and a machine probe"
    )


class DiskUse(_Open):
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


class RunEstimate(_Open):
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
    runs: int = Field(1, description="runs this request queues (a matched baseline: 2)")


class RequestEstimate(_Open):
    """What a whole request (a run and its baseline, a study) will take here."""

    runs: int
    parallel: int = Field(description="runs at once (ENTRODROP_MAX_CONCURRENT_RUNS)")
    duration_s: float | None = Field(description="every run's time, summed")
    wall_s: float | None = Field(description="the time until the last run ends")
    warn: bool
    warn_above_s: float
    disk: DiskUse | None


class RunCheck(_Open):
    """A validated request: configs, their JSON and the commands that reproduce them headless."""

    configs: list[dict[str, Any]]
    config_json: str
    launcher: Launcher
    commands: list[str]
    estimate: RunEstimate = Field(description="the first run's estimate")
    estimate_text: str
    total: RequestEstimate = Field(description="every run of the request together")
    total_text: str


class DataReport(_Open):
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


class UploadPublic(_Open):
    """A saved upload: the dataset value to use in a run config, and what it holds."""

    dataset: str
    name: str
    bytes: int
    format: str = Field(description="text, messages, sharegpt, alpaca or prompt_completion.")
    n_examples: int
    n_texts: int = Field(description="The same as n_examples (kept for older pages).")
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
    disk: HomeDisk
    estimate_url: str = Field(description="POST a run config here for its time and disk")


class PreviewPoint(_Open):
    progress: float
    rate: float
    n_dropped: int


class PreviewRowToken(_Open):
    """One token of a preview row: the three layers the page draws."""

    index: int
    id: int
    text: str
    trained: bool = Field(description="Carries loss (false: prompt, chat template, first token).")
    role: str | None = Field(description="The message's role (instruction data), else null.")
    segment: str = Field(description="'content' (a message's text), 'template' or 'text'.")
    entropy: float | None = Field(description="The starting model's entropy, nats.")
    dropped: list[bool] = Field(description="Dropped at s = 0, 0.5 and 1.")


class PreviewExample(_Open):
    source: int | None = Field(description="The example's index in the training split.")
    truncated: bool = Field(description="Longer than the rows shown (or than seq_len).")


class RunPreview(_Open):
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
