"""Validated configuration: the EntroDrop method's parameters and a fine-tune run's settings."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EntropySource = Literal["reference", "online"]
Selection = Literal["quantile", "threshold"]
Schedule = Literal["sigmoid", "linear", "cosine", "constant"]
DropMode = Literal["input", "loss", "both"]
Method = Literal[
    "none",
    "entrodrop",
    "random",
    "weight_decay",
    "hidden_dropout",
    "label_smoothing",
    "neftune",
]
METHODS: tuple[str, ...] = (
    "none",
    "entrodrop",
    "random",
    "weight_decay",
    "hidden_dropout",
    "label_smoothing",
    "neftune",
)


class _Strict(BaseModel):
    # Unknown keys are a user's typo more often than not: refuse them with a message.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _finite(value: float | None, name: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


class EntroDropConfig(_Strict):
    """The method's parameters (DESIGN.md section 2). Defaults come from bench/ (docs/benchmarks.md)."""

    entropy_source: EntropySource = Field(
        "online",
        description="'reference': a frozen copy of the starting model scores the data once; "
        "'online': the training model's own entropies, no extra forward pass.",
    )
    selection: Selection = Field(
        "quantile", description="How the low-entropy cut tau is set: a quantile or a threshold."
    )
    quantile: float = Field(
        0.5, gt=0.0, lt=1.0, description="q: tau is the q-quantile of training-token entropies."
    )
    threshold: float | None = Field(
        None, ge=0.0, le=50.0, description="tau in nats, when selection is 'threshold'."
    )
    rate_max: float = Field(0.5, ge=0.0, le=1.0, description="Largest drop probability.")
    schedule: Schedule = Field("sigmoid", description="Curriculum shape of the drop rate r(s).")
    steepness: float = Field(10.0, gt=0.0, le=1000.0, description="k of the sigmoid schedule.")
    midpoint: float = Field(0.5, ge=0.0, le=1.0, description="s0 of the sigmoid schedule.")
    drop_mode: DropMode = Field(
        "input",
        description="'input': replace the input id by a drop token; 'loss': exclude the "
        "target from the loss; 'both'. Default 'input': the only mode that reduced the "
        "multi-epoch rebound in bench/reproduce.py (docs/benchmarks.md).",
    )
    drop_token_id: int | None = Field(
        None, ge=0, description="Id used by the input mode; default the tokenizer's unk or pad id."
    )
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of the drop generator.")

    @field_validator("quantile", "rate_max", "steepness", "midpoint", "threshold")
    @classmethod
    def _no_nan(cls, v: float | None, info: object) -> float | None:
        return _finite(v, getattr(info, "field_name", "value"))

    @model_validator(mode="after")
    def _threshold_needed(self) -> EntroDropConfig:
        if self.selection == "threshold" and self.threshold is None:
            raise ValueError("selection 'threshold' needs a 'threshold' value in nats")
        return self


class RunConfig(_Strict):
    """A fine-tune run (DESIGN.md section 6): the body of POST /api/runs and `train --config`."""

    model: str = Field("default", min_length=1, max_length=500)
    dataset: str = Field("python-reference", min_length=1, max_length=1000)
    method: Method = "entrodrop"
    entrodrop: EntroDropConfig = Field(default_factory=EntroDropConfig)
    epochs: float = Field(3.0, gt=0.0, le=1000.0)
    max_steps: int | None = Field(None, ge=1, le=1_000_000)
    learning_rate: float = Field(5e-5, gt=0.0, le=1.0)
    batch_size: int = Field(4, ge=1, le=4096)
    grad_accum: int = Field(1, ge=1, le=4096)
    seq_len: int = Field(128, ge=8, le=32768)
    eval_every: int = Field(25, ge=1, le=1_000_000)  # see docs/benchmarks.md, chosen defaults
    seed: int = Field(0, ge=0, le=2**31 - 1)
    # Strength of the baseline regulariser for the baseline methods (ignored otherwise):
    # weight_decay -> AdamW decay; hidden_dropout -> dropout prob; label_smoothing -> epsilon;
    # neftune -> noise alpha.
    baseline_strength: float | None = Field(None, ge=0.0, le=100.0)
    max_train_tokens: int | None = Field(
        None, ge=8, description="Use only the first N training tokens (a small slice)."
    )
    max_eval_tokens: int | None = Field(
        2048, ge=8, description="Cap on held-out / general tokens evaluated each time."
    )
    save_checkpoints: bool = True
    save_model: bool = Field(
        True, description="Save the final model in model/ (studies keep metrics only: false)."
    )
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"

    @field_validator("epochs", "learning_rate", "baseline_strength")
    @classmethod
    def _no_nan(cls, v: float | None, info: object) -> float | None:
        return _finite(v, getattr(info, "field_name", "value"))


DEFAULT_BASELINE_STRENGTH: dict[str, float] = {
    "weight_decay": 0.1,
    "hidden_dropout": 0.1,
    "label_smoothing": 0.1,
    "neftune": 5.0,
}
