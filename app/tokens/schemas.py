"""Response models of the token endpoints: every key the pages rely on, aligned to ``tokens``.

Per-token arrays have one entry per probe token; per-step arrays one row per entry of ``steps``.
Models allow more keys (``extra="allow"``) so a model never silently drops one the library adds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Source(_Open):
    """Where probe tokens come from: held-out, general text or training data."""

    id: str
    label: str


class Choice(Source):
    """One entry of a list a page offers: a cartography class or an entropy bucket."""

    help: str


class ColourMode(_Open):
    id: str
    label: str
    unit: str
    signed: bool = Field(description="a signed change (diverging colours) rather than a level")
    fixed_max: float = Field(description="top of the fixed scale (± for a signed mode), nats")


class ClassCounts(_Open):
    low: int
    high: int
    all: int


class RisingToken(_Open):
    """A token of the rebound: how far its loss rose from its best to the final evaluation."""

    index: int
    text: str
    rise: float | None
    best_step: int
    best_loss: float | None
    final_loss: float | None
    start_loss: float | None
    klass: str = Field(alias="class")
    bucket: str


class Cartography(_Open):
    """Each token's class (index into ``classes``), counts per class and bucket, the rebound."""

    classes: list[Choice]
    buckets: list[Choice]
    thresholds: dict[str, float] = Field(description="known_loss, learn_gain, forget_margin (nats)")
    klass: list[int] = Field(alias="class")
    counts: dict[str, ClassCounts]
    best_loss: list[float | None]
    best_step: list[int | None]
    top_rebound: list[RisingToken]


class Probe(_Open):
    """The tokens a record follows and the facts a page needs to show them."""

    n_tokens: int
    fingerprint: str = Field(description="equal for runs that follow the same tokens")
    tokens: list[str]
    ids: list[int]
    sources: list[Source]
    source: list[int] = Field(description="index into sources: held-out, general text, training")
    block: list[int]
    position: list[int]
    low_entropy: list[bool]
    start_entropy: list[float | None]
    entropy_split: float | None = Field(description="the training median entropy (nats)")
    buckets: list[Choice]
    covers_eval: bool = Field(description="the held-out tokens are all those eval/loss averages")


class MetricName(_Open):
    name: str
    label: str


class RecordBound(_Open):
    max_tokens: int
    max_evaluations: int
    every: int


class RunTokens(Probe):
    """GET /api/runs/{id}/tokens: loss and entropy of every probe token at every evaluation."""

    run_id: str
    step: int | None
    all_steps: list[int] = Field(description="every evaluation the record holds")
    steps: list[int] = Field(description="the rows returned: all, or the one of ?step=")
    loss: list[list[float | None]]
    entropy: list[list[float | None]]
    rank: list[list[int]] | None
    drops: list[list[int | None]] | None = Field(description="training tokens: times dropped")
    eval_loss: list[float | None] = Field(description="each row's mean over held-out tokens")
    eval_metric: MetricName
    cartography: Cartography
    colour_modes: list[ColourMode]
    bound: RecordBound


class DiffStats(_Open):
    n: int
    mean: float | None
    fraction_lower_in_b: float | None


class DiffSummary(DiffStats):
    low: DiffStats
    high: DiffStats


class TokensCompare(Probe):
    """GET /api/compare/tokens: b - a of each token's loss, sorted (``order``: b better first)."""

    runs: list[str]
    step: int | None
    common_steps: list[int] = Field(description="the steps both records hold (?step= choices)")
    steps: list[int] = Field(description="the step of a's and of b's row")
    loss_a: list[float | None]
    loss_b: list[float | None]
    diff: list[float | None]
    order: list[int]
    summary: DiffSummary


class SeedSteps(_Open):
    seed: int
    a: int
    b: int


class SeedSummary(DiffSummary):
    seed: int


class Skipped(_Open):
    seed: int
    reason: str


class StudyTokensCompare(Probe):
    """GET /api/studies/{id}/tokens: variant b - variant a per token, mean over seeds."""

    study_id: str
    variants: list[str] = Field(description="[a, b]")
    available_variants: list[str]
    step: int | None
    common_steps: list[int] = Field(description="the steps every compared record holds")
    seeds: list[int]
    steps: list[SeedSteps]
    mean_diff: list[float | None]
    consistent: list[bool] = Field(description="the difference has one sign in every seed")
    n_consistent: int
    order: list[int]
    summary: DiffSummary
    per_seed: list[SeedSummary]
    skipped: list[Skipped]


def csv_doc() -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}
