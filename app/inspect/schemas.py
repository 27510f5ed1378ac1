"""Request and response models of the Inspect page's JSON twins (they also document /docs)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.health import HealthPublic
from entrodrop.config import EntroDropConfig
from entrodrop.scoring import MAX_TOP_K

# Text whose characters are more than this share of control characters (other than whitespace)
# is a binary file pasted or sent as text, not something a language model should score.
MAX_CONTROL_SHARE = 0.1


class _Request(BaseModel):
    # A misspelt key is more likely a mistake than an extension: say so with a 422.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())


def _looks_binary(text: str) -> bool:
    """NUL bytes, or many control / replacement characters: a binary file decoded as text."""
    if "\x00" in text:
        return True
    odd = sum(1 for c in text if (c < " " and c not in "\t\n\r\f\v") or c == "\ufffd")
    return odd > MAX_CONTROL_SHARE * len(text)


def _not_empty(text: str | None) -> str | None:
    if text is None:
        return None
    if text == "":
        raise ValueError("text is empty: paste, upload or pick some text to score")
    if not text.strip():
        raise ValueError("text is only whitespace: there is nothing to score")
    try:  # JSON may carry a lone surrogate ("\ud800"): not text, and tokenizers choke on it
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text is not valid Unicode: character {exc.start} is a lone surrogate"
        ) from exc
    if _looks_binary(text):
        raise ValueError(
            "text looks like binary data (NUL bytes or control characters), not text: "
            "upload a UTF-8 text file"
        )
    return text


class ScoreRequest(_Request):
    """Body of POST /api/score."""

    text: str = Field(description="The text to score.")
    model: str | None = Field(
        None, max_length=1000, description="Model spec; default: the server's model."
    )
    top_k: int = Field(5, ge=0, le=MAX_TOP_K, description="Alternatives reported per token.")

    check_text = field_validator("text")(_not_empty)


class CompareRequest(_Request):
    """Body of POST /api/compare: the same text under two checkpoints."""

    text: str
    model_a: str | None = Field(None, max_length=1000, description="Default: the server's model.")
    model_b: str = Field(min_length=1, max_length=1000, description="The checkpoint to compare.")
    top_k: int = Field(5, ge=0, le=MAX_TOP_K)

    check_text = field_validator("text")(_not_empty)


class PreviewRequest(_Request):
    """Body of POST /api/preview: a text (scored now) or the entropies of an earlier score."""

    text: str | None = Field(None, description="Score this text, then apply the policy.")
    entropies: list[float | None] | None = Field(
        None,
        description="Token-aligned entropies of a previous /api/score (null for the first token).",
    )
    model: str | None = Field(None, max_length=1000, description="Model spec, with `text` only.")
    top_k: int = Field(0, ge=0, le=MAX_TOP_K)
    policy: EntroDropConfig = Field(default_factory=EntroDropConfig)
    progress: float = Field(1.0, ge=0.0, le=1.0, description="Training progress s in [0, 1].")

    check_text = field_validator("text")(_not_empty)

    @field_validator("entropies")
    @classmethod
    def _valid_entropies(cls, values: list[float | None] | None) -> list[float | None] | None:
        if values is None:
            return None
        if not values:
            raise ValueError("entropies is empty: send at least one token")
        for i, v in enumerate(values):
            if v is not None and (not math.isfinite(v) or v < 0):
                raise ValueError(f"entropies[{i}] = {v}: entropies are finite and >= 0 (or null)")
        return values

    @model_validator(mode="after")
    def _one_source(self) -> PreviewRequest:
        if (self.text is None) == (self.entropies is None):
            raise ValueError("send either `text` or `entropies` (the token entropies of a score)")
        return self


# ---------------------------------------------------------------- responses


class _Public(BaseModel):
    # The answer is exactly the documented model: a key it does not name is a bug.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TopAlternative(_Public):
    id: int
    text: str
    prob: float | None


class TokenOut(_Public):
    index: int
    id: int
    text: str
    entropy: float | None = Field(description="Nats; null for the first token.")
    surprisal: float | None
    prob: float | None
    rank: int | None
    top: list[TopAlternative]


class ScoreSummary(_Public):
    mean_entropy: float | None
    mean_surprisal: float | None
    perplexity: float | None


class ScoreOut(_Public):
    """The token JSON of DESIGN.md section 6, plus the spec it was scored with."""

    model: str
    spec: str
    n_tokens: int
    tokens: list[TokenOut]
    summary: ScoreSummary
    elapsed_s: float


class PreviewToken(_Public):
    index: int
    id: int | None = None
    text: str | None = None
    entropy: float | None
    candidate: bool
    dropped: bool


class PreviewOut(_Public):
    model: str | None
    n_tokens: int
    progress: float
    policy: EntroDropConfig
    tau: float | None = Field(description="The low-entropy cut in nats (null: no entropies).")
    rate: float = Field(description="Scheduled drop probability r(s).")
    n_scored: int
    n_candidates: int
    n_dropped: int
    tokens: list[PreviewToken]


class CompareOut(_Public):
    a: ScoreOut
    b: ScoreOut
    same_tokens: bool
    note: str | None
    delta: list[float | None] | None = Field(description="entropy(b) - entropy(a) per token.")
    delta_summary: dict[str, float | None] | None


class DrawsOut(_Public):
    seed: int
    n: int
    u: list[float] = Field(description="torch.rand((1, n)) from a CPU generator seeded `seed`.")


class Checkpoint(_Public):
    spec: str
    label: str


class QueuePublic(_Public):
    pending: int
    limit: int


class ModelPublic(_Public):
    """The server's model: its state and, once loaded, its description."""

    spec: str
    state: str
    model_loaded: bool
    model: str | None
    error: str | None
    cached: list[str]
    queue: QueuePublic
    info: dict[str, Any] | None


class SamplePublic(_Public):
    id: str
    title: str
    text: str


class EstimateRequest(_Request):
    """Body of POST /api/estimate: how long scoring this text would take here."""

    text: str
    model: str | None = Field(None, max_length=1000, description="Default: the server's model.")

    check_text = field_validator("text")(_not_empty)


class EstimateOut(_Public):
    spec: str
    n_tokens: int | None = Field(description="Null until the model is in memory.")
    limit: int = Field(description="Tokens per text at most.")
    tokens_per_s: float | None = Field(
        description="Measured here by the last scoring; null before."
    )
    eta_s: float | None


class LimitsPublic(_Public):
    max_score_tokens: int
    max_upload_bytes: int
    max_top_k: int
    url_text_chars: int = Field(description="Longest text a shareable link carries.")


class ColourMode(_Public):
    id: str
    label: str
    unit: str
    fixed_max: float | None = Field(description="Top of the fixed scale (null: categorical/0..1).")


class InspectPage(_Public):
    """The Inspect page's starting data: model state, checkpoints, samples, defaults, limits."""

    model: HealthPublic
    checkpoints: list[Checkpoint]
    samples: list[SamplePublic]
    policy_defaults: EntroDropConfig
    limits: LimitsPublic
    colour_modes: list[ColourMode]
    rank_buckets: list[int] = Field(description="GLTR's rank buckets: top-10, top-100, top-1000.")
