"""Validated configuration: the EntroDrop method's parameters and a fine-tune run's settings."""

from __future__ import annotations

import math
import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from entrodrop.metrics import EVAL_LOSS, SELECTABLE
from entrodrop.tokens import MAX_PROBE_TOKENS

EntropySource = Literal["reference", "online"]
Selection = Literal["quantile", "threshold"]
Schedule = Literal["sigmoid", "linear", "cosine", "constant"]
DropMode = Literal["input", "loss", "both", "delete"]
Method = Literal[
    "none",
    "entrodrop",
    "random",
    "weight_decay",
    "hidden_dropout",
    "label_smoothing",
    "neftune",
]
METHODS: tuple[Method, ...] = get_args(Method)
# The methods that drop tokens (the others leave every token in): the schedule applies to these.
DropMethod = Literal["entrodrop", "random"]
DROPPING_METHODS: tuple[DropMethod, ...] = get_args(DropMethod)
# Data (docs/data.md): the formats a file may hold, and what of an instruction example trains.
DataFormat = Literal["text", "messages", "sharegpt", "alpaca", "prompt_completion"]
DataFormatChoice = Literal["auto", DataFormat]
TrainOn = Literal["answers", "all"]
Truncation = Literal["truncate", "drop"]
DropScope = Literal["trained", "all"]
# Experiment trackers a run may also log to (entrodrop.trackers.py); none by default.
Tracker = Literal["none", "tensorboard", "wandb", "mlflow"]


MODULE_NAME = re.compile(r"^[A-Za-z_][\w.]{0,199}$")
MAX_TOP_K = 20  # alternatives per token at most: the CLI, the API and the page all use this
TASK_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,99}$")  # an lm-eval task or group name


class _Strict(BaseModel):
    # Unknown keys are a user's typo more often than not: refuse them with a message.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _finite(value: float | None, name: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


class EntroDropConfig(_Strict):
    """The method's parameters: which tokens are candidates, how many are dropped when, and how.

    The defaults were chosen by the project's own measurements (its benchmarks documentation).
    """

    entropy_source: EntropySource = Field(
        "online",
        title="entropy source",
        description="'reference': a frozen copy of the starting model scores the data once; "
        "'online': the training model's own entropies, no extra forward pass.",
    )
    selection: Selection = Field(
        "quantile", description="How the low-entropy cut tau is set: a quantile or a threshold."
    )
    quantile: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        title="quantile q",
        description="q: tau is the q-quantile of training-token entropies.",
    )
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=50.0,
        title="threshold \u03c4 (nats)",
        description="tau in nats, when selection is 'threshold'.",
    )
    rate_max: float = Field(
        0.5, ge=0.0, le=1.0, title="max drop rate r_max", description="Largest drop probability."
    )
    schedule: Schedule = Field("sigmoid", description="Curriculum shape of the drop rate r(s).")
    steepness: float = Field(
        10.0, gt=0.0, le=1000.0, title="steepness k", description="k of the sigmoid schedule."
    )
    midpoint: float = Field(
        0.5, ge=0.0, le=1.0, title="midpoint s0", description="s0 of the sigmoid schedule."
    )
    drop_mode: DropMode = Field(
        "input",
        description="'input': replace the input id by a drop token; 'loss': exclude the "
        "target from the loss; 'both'; 'delete': remove the token from the sequence (never "
        "seen, never predicted; the rest close up). Default 'input': in the project's "
        "reproduction study (a 135M model, 6 epochs, 3 seeds) it was the only mode that "
        "reduced the multi-epoch rebound.",
    )
    drop_token_id: int | None = Field(
        None,
        ge=0,
        title="drop token id",
        description="Id used by the input mode; default the tokenizer's unk or pad id.",
    )
    seed: int = Field(
        0, ge=0, le=2**63 - 1, title="seed", description="Seed of the drop generator."
    )
    drop_scope: DropScope = Field(
        "trained",
        title="drop scope",
        description="'trained': candidates, tau and drop counts over the tokens that carry loss "
        "(an instruction example's answers); 'all': prompt and template tokens too.",
    )

    @field_validator("quantile", "rate_max", "steepness", "midpoint", "threshold")
    @classmethod
    def _no_nan(cls, v: float | None, info: object) -> float | None:
        return _finite(v, getattr(info, "field_name", "value"))

    @model_validator(mode="after")
    def _threshold_needed(self) -> EntroDropConfig:
        if self.selection == "threshold" and self.threshold is None:
            raise ValueError("selection 'threshold' needs a 'threshold' value in nats")
        return self


AdapterKind = Literal["lora", "qlora"]


class AdapterConfig(_Strict):
    """A LoRA adapter trained instead of the full weights (peft); QLoRA: on a 4-bit base (CUDA)."""

    kind: AdapterKind = Field(
        "lora",
        title="adapter kind",
        description="'lora': low-rank adapters on the base weights; 'qlora': the same on a "
        "4-bit base model (needs CUDA and bitsandbytes).",
    )
    r: int = Field(16, ge=1, le=1024, title="rank r", description="rank of the adapter matrices")
    alpha: int = Field(
        32, ge=1, le=10_000, title="alpha", description="scale: updates are alpha/r x B A"
    )
    dropout: float = Field(
        0.05, ge=0.0, lt=1.0, title="adapter dropout", description="dropout on the adapter input"
    )
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        title="target modules",
        description="'all-linear' (every linear layer but the output head) or module names "
        'such as ["q_proj", "v_proj"].',
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        # The form and flags may give "q_proj, v_proj": a list of names.
        if isinstance(v, str) and v.strip() != "all-linear":
            return [n.strip() for n in v.split(",") if n.strip()]
        return v.strip() if isinstance(v, str) else v

    @field_validator("target_modules")
    @classmethod
    def _names(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list):
            if not v:
                raise ValueError("target_modules needs at least one module name (or 'all-linear')")
            bad = [n for n in v if not MODULE_NAME.match(n)]
            if bad:
                raise ValueError(f"not a module name: {bad[0]!r} (letters, digits, _ and .)")
        return v


class RunConfig(_Strict):
    """A fine-tune run: the body of POST /api/runs and of `entrodrop train --config`."""

    model: str = Field(
        "default",
        min_length=1,
        max_length=500,
        description="'default', a local model folder, a hub id, or run:<id>.",
    )
    dataset: str = Field(
        "python-reference",
        min_length=1,
        max_length=1000,
        description="A built-in corpus (python-reference, python-qa) or a .txt, .jsonl, .json, "
        ".csv or .parquet file (plain text or instruction data).",
    )
    heldout_dataset: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        title="held-out data",
        description="a file (or corpus) to evaluate on; then all of dataset trains. Empty: every "
        "5th document of dataset is held out",
    )
    general_dataset: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        title="general text",
        description="a file (or corpus) for the forgetting check. Empty: CPython's LICENSE.txt",
    )
    data_format: DataFormatChoice = Field(
        "auto",
        title="data format",
        description="'auto': detected from the keys; or force text, messages, sharegpt, alpaca "
        "or prompt_completion (docs/data.md).",
    )
    train_on: TrainOn = Field(
        "answers",
        title="train on",
        description="instruction data: 'answers' (only assistant tokens carry loss) or 'all' "
        "(every token after the chat template); plain text always trains on all.",
    )
    truncation: Truncation = Field(
        "truncate",
        title="examples longer than seq_len",
        description="instruction data: 'truncate' (keep the first seq_len tokens) or 'drop' "
        "(leave the example out); the run log counts them.",
    )
    method: Method = Field("entrodrop", description="EntroDrop or one of the baselines.")
    entrodrop: EntroDropConfig = Field(default_factory=EntroDropConfig)
    epochs: float = Field(
        3.0, gt=0.0, le=1000.0, title="epochs", description="passes over the training data"
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        title="max steps",
        description="optimizer steps; overrides epochs when set",
    )
    learning_rate: float = Field(
        5e-5, gt=0.0, le=1.0, title="learning rate", description="AdamW, linear decay"
    )
    batch_size: int = Field(
        4, ge=1, le=4096, title="batch size", description="blocks per step (per process)"
    )
    grad_accum: int = Field(
        1, ge=1, le=4096, title="gradient accumulation", description="batches summed per step"
    )
    seq_len: int = Field(
        128, ge=8, le=32768, title="sequence length", description="tokens per block"
    )
    eval_every: int = Field(  # see docs/benchmarks.md, chosen defaults
        25,
        ge=1,
        le=1_000_000,
        title="evaluate every (steps)",
        description="held-out, general loss and a checkpoint",
    )
    seed: int = Field(
        0, ge=0, le=2**31 - 1, title="seed", description="data order and initialisation"
    )
    # Strength of the baseline regulariser for the baseline methods (ignored otherwise):
    # weight_decay -> AdamW decay; hidden_dropout -> dropout prob; label_smoothing -> epsilon;
    # neftune -> noise alpha.
    baseline_strength: float | None = Field(
        None,
        ge=0.0,
        le=100.0,
        title="baseline strength",
        description="empty: the method's default",
    )
    max_train_tokens: int | None = Field(
        None, ge=8, title="max training tokens", description="train on the first N tokens only"
    )
    max_eval_tokens: int | None = Field(
        2048, ge=8, title="max eval tokens", description="tokens scored per evaluation"
    )
    save_checkpoints: bool = Field(True, title="save checkpoints", description="needed to resume")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", title="precision", description="auto: bf16 autocast where it helps"
    )
    save_model: bool = Field(
        True, title="save final model", description="keep model/ at the end (studies: metrics only)"
    )
    adapter: AdapterConfig | None = Field(
        None,
        description="null: train the full weights; else a LoRA/QLoRA adapter (peft), saved "
        "alone as adapter_model.safetensors.",
    )
    gradient_checkpointing: bool = Field(
        False,
        title="gradient checkpointing",
        description="recompute activations in the backward pass: less memory, ~30% slower",
    )
    max_grad_norm: float = Field(
        1.0,
        ge=0.0,
        le=1e6,
        title="max gradient norm",
        description="clip the gradient norm to this; 0 turns clipping off",
    )
    record_tokens: bool = Field(
        True,
        title="record tokens",
        description="keep each held-out token's loss and entropy at every evaluation "
        f"(the run's Tokens view; at most {MAX_PROBE_TOKENS} tokens; docs/tokens.md)",
    )
    record_ranks: bool = Field(
        False,
        title="record ranks",
        description="the token record keeps each true token's rank too (one more pass over the "
        "logits: ~10% of an evaluation on a CPU, little on a GPU)",
    )
    record_general_tokens: bool = Field(
        False,
        title="record general-text tokens",
        description="the token record follows the general-text tokens too (within its bound)",
    )
    record_train_tokens: int = Field(
        0,
        ge=0,
        le=MAX_PROBE_TOKENS,
        title="record training tokens",
        description="the token record follows up to N training tokens too, with how many times "
        "each was dropped (scored at each evaluation: costs N tokens of scoring)",
    )

    # After training (docs/runs.md, "Best checkpoint and early stopping"): transformers'
    # metric_for_best_model and EarlyStoppingCallback, and checkpoint retention.
    best_metric: str = Field(
        EVAL_LOSS,
        title="best by",
        description="the evaluation metric that picks the best checkpoint (and early stopping)",
        json_schema_extra={"enum": list(SELECTABLE)},
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        le=10_000,
        title="early stopping patience",
        description="stop after this many evaluations without improvement; empty: never",
    )
    early_stopping_threshold: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        title="early stopping threshold",
        description="an evaluation improves only by more than this (nats)",
    )
    save_total_limit: int = Field(
        1,
        ge=1,
        le=1000,
        title="checkpoints kept",
        description="at most this many, the most recent, and always the best too (so 2 with "
        "a limit of 1 when the best is not the last)",
    )
    save_only_model: bool = Field(
        False,
        title="weights-only checkpoints",
        description="no optimizer state in checkpoints (about a third of the disk); a stop "
        "still saves a full one, so the run can resume",
    )
    report_to: Tracker = Field(
        "none",
        title="report to",
        description="also log to an experiment tracker (its package must be installed; "
        "docs/runs.md); none: the run folder only",
    )
    # Downstream benchmarks after training (docs/evaluation.md): lm-evaluation-harness tasks,
    # scored on the final model and on the best checkpoint where it was kept.
    eval_tasks: list[str] = Field(
        default_factory=list,
        max_length=20,
        title="benchmarks",
        description="lm-eval tasks scored after training: 'offline' (the bundled tasks, no "
        "network) or task names such as arc_challenge (need network); empty: none",
    )
    eval_limit: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        title="benchmark examples",
        description="examples per benchmark task; empty: all",
    )
    eval_allow_code_execution: bool = Field(
        False,
        title="allow code execution",
        description="let benchmarks run the code the model writes (humaneval, mbpp)",
    )

    @field_validator("eval_tasks", mode="before")
    @classmethod
    def _task_list(cls, v: object) -> object:
        # The form and flags may give "offline, piqa": a list of names.
        if isinstance(v, str):
            return [t.strip() for t in v.split(",") if t.strip()]
        return v

    @field_validator("eval_tasks")
    @classmethod
    def _task_names(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if not TASK_NAME.match(t)]
        if bad:
            raise ValueError(
                f"not a task name: {bad[0]!r} (letters, digits, _ . - only; ppl:FILE is for "
                "`entrodrop eval`)"
            )
        return list(dict.fromkeys(v))

    @field_validator("epochs", "learning_rate", "baseline_strength", "max_grad_norm")
    @classmethod
    def _no_nan(cls, v: float | None, info: object) -> float | None:
        return _finite(v, getattr(info, "field_name", "value"))

    @field_validator("early_stopping_threshold")
    @classmethod
    def _finite_threshold(cls, v: float) -> float:
        return float(_finite(v, "early_stopping_threshold") or 0.0)

    @field_validator("best_metric")
    @classmethod
    def _selectable(cls, v: str) -> str:
        if v not in SELECTABLE:
            raise ValueError(f"best_metric must be one of {', '.join(SELECTABLE)}, got {v!r}")
        return v


def effective_batch(config: RunConfig, processes: int = 1) -> int:
    """Blocks per optimizer step: batch size x gradient accumulation x processes."""
    return config.batch_size * config.grad_accum * max(1, processes)


def effective_batch_text(config: RunConfig, processes: int = 1) -> str:
    """The effective batch as a person reads it, e.g. '32 blocks (4 x 4 accumulation x 2 processes)'."""
    total = effective_batch(config, processes)
    return (
        f"{total} blocks = {total * config.seq_len} tokens per step "
        f"({config.batch_size} x {config.grad_accum} accumulation x {max(1, processes)} processes)"
    )


# What each method does, in a few words (form, CLI help, docs).
METHOD_HELP: dict[str, str] = {
    "entrodrop": "drop low-entropy tokens on a curriculum (the method)",
    "none": "plain fine-tuning",
    "random": "ablation: same schedule and drop count, random tokens",
    "weight_decay": "AdamW weight decay",
    "hidden_dropout": "dropout inside the model",
    "label_smoothing": "label smoothing epsilon",
    "neftune": "noise on the input embeddings",
}

# Named starting points on top of RunConfig's plain defaults. `quick`: bench/reproduce.py's
# setting (docs/benchmarks.md), small enough to overfit within the run so the curves show the
# multi-epoch rebound: 2,048 training tokens, 6 epochs (24 steps at 4 x 128), an evaluation per
# epoch. One run took ~140 s on a 2-core CPU, a matched pair ~5 min. The dashboard's form
# starts from it; `entrodrop train --preset quick` and `POST /api/runs {"preset": "quick"}` too.
PRESETS: dict[str, dict[str, object]] = {
    "quick": {
        "epochs": 6.0,
        "max_steps": None,
        "learning_rate": 3e-4,
        "max_train_tokens": 2048,
        "max_eval_tokens": 1024,
        "eval_every": 4,
    },
}


def with_preset(values: dict[str, object], preset: str | None) -> dict[str, object]:
    """A run config dict with a preset's values under it: the caller's own values win."""
    if preset is None:
        return dict(values)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return {**PRESETS[preset], **values}


DEFAULT_BASELINE_STRENGTH: dict[str, float] = {
    "weight_decay": 0.1,
    "hidden_dropout": 0.1,
    "label_smoothing": 0.1,
    "neftune": 5.0,
}
