"""A study's configuration: a base run, variants and seeds; expanded into one RunConfig per run.

Rules (docs/studies.md says the same for users):

- Every variant runs with every seed on the same model, data, budget and evaluation: a variant
  may override a run setting (``learning_rate``, ``baseline_strength``, ``entrodrop`` values...)
  but not those in :data:`SHARED_FIELDS`, which only ``base`` sets.
- The seed sets both ``RunConfig.seed`` (data order, dropout) and ``entrodrop.seed`` (the drop
  generator).
- A variant's ``entrodrop`` object is merged over ``base.entrodrop`` key by key.
- Paired comparisons: every variant against the ``none`` variant and against the ``early_stop``
  variant (plain fine-tuning stopped at its best evaluation: the baseline to beat); an
  ``entrodrop`` variant also against its matching ``random`` ablation: the ``random`` variant
  with the same ``drop_mode``, preferring one with the same ``entropy_source``, else the first.
- ``early_stop`` (a variant name, like a method's): method ``none`` with
  ``early_stopping_patience`` :data:`EARLY_STOP_PATIENCE`; any variant with early stopping is
  judged by its best checkpoint (outcomes at its best evaluation, entrodrop.studies.outcomes).
- ``keep_checkpoints`` false (the default): runs keep their metrics only, no checkpoints and no
  final model, so a study of 30 runs does not fill a disk; true: the final model and weights-only
  checkpoints (the last and the best).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from entrodrop.config import METHODS, RunConfig
from entrodrop.names import check_printable

MAX_VARIANTS = 40
EARLY_STOP = "early_stop"  # the baseline to beat: plain fine-tuning, stopped at its best
EARLY_STOP_PATIENCE = 2  # evaluations without improvement before it stops
# The named variants that are not a method's name, as VariantSpec fields.
NAMED_VARIANTS: dict[str, dict[str, Any]] = {
    EARLY_STOP: {
        "label": EARLY_STOP,
        "method": "none",
        "early_stopping_patience": EARLY_STOP_PATIENCE,
    },
}
NAMED_VARIANT_HELP = {
    EARLY_STOP: f"plain fine-tuning stopped after {EARLY_STOP_PATIENCE} evaluations without "
    "improvement, judged by its best checkpoint: the baseline to beat",
}
VARIANT_NAMES = (*METHODS, *NAMED_VARIANTS)
MAX_SEEDS = 10
# Run settings that define the data, model, budget, evaluation and storage: the same for every
# variant of a study, so only `base` sets them (the seed comes from `seeds`).
SHARED_FIELDS = frozenset(
    {
        "model",
        "dataset",
        "heldout_dataset",
        "general_dataset",
        "seq_len",
        "max_train_tokens",
        "max_eval_tokens",
        "epochs",
        "max_steps",
        "eval_every",
        "seed",
        "save_checkpoints",
        "save_model",
        "save_total_limit",
        "save_only_model",
    }
)


class StudyRun(NamedTuple):
    """One run of a study: which variant, which seed, and its full run config."""

    variant: str
    seed: int
    config: RunConfig


class Comparison(NamedTuple):
    """A paired comparison: ``variant`` minus ``vs_label``; ``vs`` is "none", "early_stop" or
    "random"."""

    variant: str
    vs: str
    vs_label: str


class VariantSpec(BaseModel):
    """A variant as an object: a label, a method, EntroDrop values and other run overrides."""

    model_config = ConfigDict(extra="allow")

    label: str | None = Field(None, min_length=1, max_length=80)
    method: str = "entrodrop"
    entrodrop: dict[str, Any] = Field(default_factory=dict)

    @field_validator("label")
    @classmethod
    def _printable_label(cls, v: str | None) -> str | None:
        return None if v is None else check_printable(v)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in METHODS:
            raise ValueError(f"unknown method {v!r}; one of {', '.join(METHODS)}")
        return v

    @model_validator(mode="after")
    def _overrides_are_run_fields(self) -> VariantSpec:
        for key in self.model_extra or {}:
            if key in SHARED_FIELDS:
                raise ValueError(f"{key!r} is shared by every variant of a study: set it in 'base'")
            if key not in RunConfig.model_fields:
                raise ValueError(f"{key!r} is not a run setting")
        return self

    def overrides(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def variant_spec(item: str | VariantSpec) -> VariantSpec:
    """A variant as a VariantSpec: a method's name, a named variant (early_stop) or itself."""
    if isinstance(item, VariantSpec):
        return item
    return VariantSpec(**NAMED_VARIANTS.get(item, {"method": item}))


def stops_early(config: RunConfig) -> bool:
    """Whether a run ends at (and is judged by) its best evaluation: early stopping is on."""
    return config.early_stopping_patience is not None


def _default_label(spec: VariantSpec, entrodrop: dict[str, Any]) -> str:
    """entrodrop-<source>-<mode>, random-<mode>, early_stop, or the method's name."""
    if spec.method == "none" and spec.overrides().get("early_stopping_patience") is not None:
        return EARLY_STOP
    if spec.method == "entrodrop":
        return f"entrodrop-{entrodrop['entropy_source']}-{entrodrop['drop_mode']}"
    if spec.method == "random":
        return f"random-{entrodrop['drop_mode']}"
    return spec.method


def _error_lines(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
    )


class StudyConfig(BaseModel):
    """A named study: ``base`` run settings, ``variants`` and ``seeds`` (body of POST /api/studies)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200)
    base: RunConfig = Field(default_factory=RunConfig)
    variants: list[str | VariantSpec] = Field(..., min_length=1, max_length=MAX_VARIANTS)
    seeds: list[int] = Field([0, 1, 2], min_length=1, max_length=MAX_SEEDS)
    keep_checkpoints: bool = Field(
        False, description="Keep each run's checkpoints and final model (off: metrics only)."
    )

    @field_validator("name")
    @classmethod
    def _printable_name(cls, v: str) -> str:
        return check_printable(v)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be unique")
        if any(s < 0 or s > 2**31 - 1 for s in v):
            raise ValueError("seeds must be between 0 and 2**31 - 1")
        return v

    @field_validator("variants")
    @classmethod
    def _known_names(cls, v: list[str | VariantSpec]) -> list[str | VariantSpec]:
        for item in v:
            if isinstance(item, str) and item not in VARIANT_NAMES:
                raise ValueError(f"unknown method {item!r}; one of {', '.join(VARIANT_NAMES)}")
        return v

    @model_validator(mode="after")
    def _variants_build(self) -> StudyConfig:
        labels = [label for label, _ in self.variant_configs()]  # raises on a bad variant
        seen: set[str] = set()
        for label in labels:
            if label in seen:
                raise ValueError(f"variant label {label!r} is used twice: give each a 'label'")
            seen.add(label)
        return self

    def variant_configs(self) -> list[tuple[str, RunConfig]]:
        """(label, run config at the base seed) per variant, in order; a clear error if invalid."""
        out = []
        base = self.base.model_dump()
        for i, item in enumerate(self.variants):
            spec = variant_spec(item)
            entrodrop = {**base["entrodrop"], **spec.entrodrop}
            raw = {**base, **spec.overrides(), "method": spec.method, "entrodrop": entrodrop}
            raw["save_checkpoints"] = raw["save_model"] = self.keep_checkpoints
            # Study runs are not resumed from their periodic checkpoints (a stop still saves a
            # full one): kept checkpoints hold weights only, a third of the disk.
            raw["save_only_model"] = True
            label = spec.label or _default_label(spec, entrodrop)
            try:
                config = RunConfig.model_validate(raw)
            except ValidationError as exc:
                raise ValueError(f"variant {i} ({label!r}): {_error_lines(exc)}") from None
            out.append((label, config))
        return out

    def expand(self) -> list[StudyRun]:
        """Every variant with every seed, seed by seed (a study cut short still compares all)."""
        variants = self.variant_configs()
        return [
            StudyRun(
                label,
                seed,
                config.model_copy(
                    update={
                        "seed": seed,
                        "entrodrop": config.entrodrop.model_copy(update={"seed": seed}),
                    }
                ),
            )
            for seed in self.seeds
            for label, config in variants
        ]

    def comparisons(self) -> list[Comparison]:
        """Paired comparisons: against `none`, against `early_stop` and, for EntroDrop, against
        the matching `random`. `none` and `early_stop` are compared once, as `none` minus
        `early_stop` (what training on past the best epoch costs)."""
        variants = self.variant_configs()
        none = _first(variants, "none", lambda c: c.method == "none" and not stops_early(c))
        early = _first(variants, EARLY_STOP, lambda c: c.method == "none" and stops_early(c))
        out = []
        for label, config in variants:
            if none is not None and label not in (none, early):  # none vs early_stop: below
                out.append(Comparison(label, "none", none))
            if early is not None and label != early:
                out.append(Comparison(label, EARLY_STOP, early))
            if config.method == "entrodrop":
                match = matching_random(config, variants)
                if match is not None:
                    out.append(Comparison(label, "random", match))
        return out


def _first(
    variants: list[tuple[str, RunConfig]], name: str, kind: Callable[[RunConfig], bool]
) -> str | None:
    """The variant labelled `name` if it is of that kind, else the first of that kind."""
    labels = [label for label, c in variants if kind(c)]
    return name if name in labels else (labels[0] if labels else None)


def matching_random(config: RunConfig, variants: list[tuple[str, RunConfig]]) -> str | None:
    """The `random` variant with the same drop_mode, same entropy_source first, else the first."""
    mode, source = config.entrodrop.drop_mode, config.entrodrop.entropy_source
    same_mode = [
        (label, c)
        for label, c in variants
        if c.method == "random" and c.entrodrop.drop_mode == mode
    ]
    same_source = [label for label, c in same_mode if c.entrodrop.entropy_source == source]
    if same_source:
        return same_source[0]
    return same_mode[0][0] if same_mode else None
