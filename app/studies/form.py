"""What the new-study form offers: the New run form's base fields, a variants checklist with its
presets, seeds and the server's cap; the page and GET /api/studies/form share it."""

from __future__ import annotations

from typing import Any, get_args

from app.runs.form import new_run_form
from app.runs.storage import Storage
from app.settings import Settings
from app.studies.schemas import StudyForm
from entrodrop.config import DROPPING_METHODS, METHOD_HELP, METHODS, DropMode, EntropySource
from entrodrop.studies.config import (
    MAX_SEEDS,
    MAX_VARIANTS,
    NAMED_VARIANT_HELP,
    NAMED_VARIANTS,
    SHARED_FIELDS,
    StudyConfig,
)

DEFAULT_SEEDS = StudyConfig.model_fields["seeds"].default
# Fields of the base config the study sets itself: the seed comes from `seeds`, checkpoints
# from `keep_checkpoints` (weights-only when kept), the method from each variant.
NOT_BASE_FIELDS = ("seed", "save_checkpoints", "save_only_model", "method")


def variant_choices() -> list[dict[str, Any]]:
    """Every checklist item: each plain method, EntroDrop per source and mode, random per mode.

    Each item's label is the one the study will give it (StudyConfig's own naming).
    """
    specs: list[Any] = [m for m in METHODS if m not in DROPPING_METHODS]
    specs += [
        {"method": "entrodrop", "entrodrop": {"entropy_source": src, "drop_mode": mode}}
        for src in get_args(EntropySource)
        for mode in get_args(DropMode)
    ]
    specs += [{"method": "random", "entrodrop": {"drop_mode": mode}} for mode in get_args(DropMode)]
    specs += list(NAMED_VARIANTS)  # early_stop: the baseline every regulariser has to beat
    study = StudyConfig(name="choices", variants=specs, seeds=[0])
    labels = [label for label, _ in study.variant_configs()]
    return [
        {"label": label, "spec": spec, "help": _help(spec)}
        for label, spec in zip(labels, specs, strict=True)
    ]


def _help(spec: Any) -> str:
    if isinstance(spec, str):
        return NAMED_VARIANT_HELP.get(spec) or METHOD_HELP.get(spec, "")
    return METHOD_HELP.get(spec["method"], "")


# The checklist's presets, by the labels above.
VARIANT_PRESETS: dict[str, list[str]] = {
    "EntroDrop vs baselines": [
        "none", "early_stop", "weight_decay", "label_smoothing", "hidden_dropout",
        "entrodrop-reference-input", "random-input",
    ],
    "entropy vs random ablation": [
        "none", "early_stop", "entrodrop-reference-input", "entrodrop-reference-loss",
        "entrodrop-reference-both", "entrodrop-reference-delete", "random-input",
        "random-loss", "random-both", "random-delete",
    ],
}  # fmt: skip


def new_study_form(settings: Settings, storage: Storage) -> StudyForm:
    """Everything the new-study form needs; the base fields are New run's, built the same way."""
    run_form = new_run_form(settings, storage)
    choices = variant_choices()
    known = {c["label"] for c in choices}
    presets = [
        {"name": name, "labels": [label for label in labels if label in known]}
        for name, labels in VARIANT_PRESETS.items()
    ]
    return StudyForm(
        defaults=run_form.defaults,
        values=run_form.values,
        base_fields=[
            f
            for f in run_form.training_fields + run_form.advanced_fields
            if f.name not in NOT_BASE_FIELDS
        ],
        entrodrop_fields=[f for f in run_form.entrodrop_fields if f.name != "entrodrop.seed"],
        shared_fields=sorted(SHARED_FIELDS),
        variants=choices,
        presets=presets,
        default_preset=presets[0]["name"],
        seeds=DEFAULT_SEEDS,
        max_seeds=MAX_SEEDS,
        max_variants=MAX_VARIANTS,
        max_runs=settings.max_study_runs,
        keep_checkpoints=StudyConfig.model_fields["keep_checkpoints"].default,
        keep_checkpoints_help=StudyConfig.model_fields["keep_checkpoints"].description,
        allowed_data_dirs=run_form.allowed_data_dirs,
        disk=run_form.disk,
        parallel=settings.max_concurrent_runs,
        estimate_url="/api/studies/check",
        # New run's model and data pickers: finished runs, uploads, paths under the path rule.
        finished_runs=run_form.finished_runs,
        path_rules=run_form.path_rules,
        max_upload_bytes=run_form.max_upload_bytes,
        upload_suffixes=run_form.upload_suffixes,
        benchmarks=run_form.facts.benchmarks,
    )
