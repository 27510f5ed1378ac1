"""What the new-run form offers: inputs built from RunConfig's schema, the `quick` preset's values,
methods with their help, finished runs to start from. The form page and GET /api/runs/form share it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app.model_paths import path_rule, rule_text
from app.runs import cost
from app.runs.facts import run_facts
from app.runs.schemas import COMPARE_METHODS, RunForm
from app.runs.storage import Storage
from app.settings import Settings
from entrodrop.config import (
    DEFAULT_BASELINE_STRENGTH,
    METHOD_HELP,
    METHODS,
    PRESETS,
    AdapterConfig,
    EntroDropConfig,
    RunConfig,
)
from entrodrop.data import USER_SUFFIXES
from entrodrop.eval.tasks import OFFLINE
from entrodrop.runfolder import is_run_id

# The preset the form starts from (a fresh form; "new run like this" starts from that run).
FORM_PRESET = "quick"
# A fresh form also asks for the offline benchmarks (no network), at the example count whose
# figures docs/benchmarks.md quotes; the estimate line says what they add, and one click
# takes them off. `entrodrop train --preset quick` does not benchmark: a script asks for it.
FORM_BENCHMARKS: dict[str, object] = {"eval_tasks": [OFFLINE], "eval_limit": 200}
TRAINING_FIELDS = (
    "epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "seq_len", "eval_every",
    "seed",
)  # fmt: skip
ADVANCED_FIELDS = (
    "heldout_dataset", "general_dataset", "data_format", "train_on", "truncation",
    "baseline_strength", "max_train_tokens", "max_eval_tokens", "save_checkpoints", "dtype",
    "gradient_checkpointing", "max_grad_norm", "record_tokens", "record_ranks",
    "record_general_tokens", "record_train_tokens", "early_stopping_patience",
    "early_stopping_threshold", "best_metric", "save_total_limit", "save_only_model",
    "report_to",
)  # fmt: skip
# The adapter kind the form shows for full weights (the config's `adapter: null`).
NO_ADAPTER = "none"


def _field_spec(model: type[BaseModel], name: str, prop: dict[str, Any], prefix: str) -> dict:
    """One input: kind, bounds and the label and help written once on the pydantic field."""
    variants = prop.get("anyOf", [prop])
    main = next((v for v in variants if v.get("type") != "null"), prop)
    kind = {"integer": "int", "number": "float", "boolean": "bool"}.get(main.get("type", ""), "")
    info = model.model_fields[name]
    spec: dict[str, Any] = {
        "name": f"{prefix}{name}",
        "label": info.title or name.replace("_", " "),
        "kind": "select" if "enum" in main else kind or "text",
        "default": prop["default"],
        "nullable": any(v.get("type") == "null" for v in variants),
        "help": info.description or "",
        "options": main.get("enum", []),
        "min": main.get("minimum", main.get("exclusiveMinimum")),
        "max": main.get("maximum", main.get("exclusiveMaximum")),
    }
    if spec["max"] is not None and spec["max"] > 1e15:
        spec["max"] = None  # 2**63-1 seeds: no useful browser bound
    return spec


def form_fields(
    model: type[BaseModel], prefix: str = "", defaults: dict[str, Any] | None = None
) -> list[dict]:
    """Inputs for every plain field of a pydantic model, from its JSON schema: the form cannot drift."""
    out = []
    for name, prop in model.model_json_schema()["properties"].items():
        if "$ref" in prop or "default" not in prop:
            continue
        spec = _field_spec(model, name, prop, prefix)
        if defaults and name in defaults:
            spec["default"] = defaults[name]
        out.append(spec)
    return out


def new_run_form(
    settings: Settings, storage: Storage, like: str | None = None, model: str | None = None
) -> RunForm:
    """Everything the new-run form needs: defaults, choices, finished runs, allowed folders.

    `like` starts from an existing run's config ("new run like this"); `model` presets the model.
    """
    preset = PRESETS[FORM_PRESET]
    run_fields = {f["name"]: f for f in form_fields(RunConfig, defaults=preset)}
    finished = [
        {
            "id": r.id,
            "name": r.name,
            "method": r.config.get("method"),
            "model": r.config.get("model"),
        }
        for r in storage.list_runs(statuses=["succeeded"])
    ]
    defaults = RunConfig.model_validate({**preset, **FORM_BENCHMARKS}).model_dump(mode="json")
    base = storage.get_run(like) if like and is_run_id(like) else None
    if base is not None:
        defaults = base.config
    if model:
        defaults = {**defaults, "model": model}
    return RunForm(
        values={**flat_values(defaults), **adapter_values(defaults.get("adapter"))},
        defaults=defaults,
        preset=FORM_PRESET if base is None else None,
        methods=[{"name": m, "help": METHOD_HELP.get(m, "")} for m in METHODS],
        baseline_strength_defaults=DEFAULT_BASELINE_STRENGTH,
        compare_methods=list(COMPARE_METHODS),
        training_fields=[run_fields[n] for n in TRAINING_FIELDS],
        advanced_fields=[run_fields[n] for n in ADVANCED_FIELDS],
        entrodrop_fields=form_fields(EntroDropConfig, prefix="entrodrop."),
        adapter_fields=adapter_fields(),
        no_adapter=NO_ADAPTER,
        finished_runs=list(reversed(finished)),
        allowed_data_dirs=[str(p) for p in settings.allowed_data_dirs],
        max_upload_bytes=settings.max_upload_bytes,
        upload_suffixes=list(USER_SUFFIXES),
        path_rules=path_rules(settings),
        facts=run_facts(),
        disk=cost.home_disk(settings.home),
        estimate_url="/api/runs/check",
    )


def path_rules(settings: Settings) -> dict[str, dict[str, Any]]:
    """Whether model folders and data files may be named by path here, and the rule in words."""
    return {
        kind: {"by_path": path_rule(settings, kind).by_path, "text": rule_text(settings, kind)}
        for kind in ("model", "data")
    }


def adapter_fields() -> list[dict]:
    """The adapter's inputs; its kind also offers NO_ADAPTER (full weights, `adapter: null`)."""
    fields = form_fields(AdapterConfig, prefix="adapter.")
    for f in fields:
        if f["name"] == "adapter.kind":
            f["options"], f["default"] = [NO_ADAPTER, *f["options"]], NO_ADAPTER
    return fields


def adapter_values(adapter: Any) -> dict[str, Any]:
    """The adapter's form values: NO_ADAPTER for none, target modules as comma-separated text."""
    if not isinstance(adapter, dict):  # full weights: the adapter's defaults, kind "none"
        defaults = flat_values(AdapterConfig().model_dump(mode="json"), "adapter.")
        return {**defaults, "adapter.kind": NO_ADAPTER}
    modules = adapter.get("target_modules")
    return {"adapter.target_modules": ", ".join(modules)} if isinstance(modules, list) else {}


def flat_values(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"entrodrop": {"quantile": 0.5}} -> {"entrodrop.quantile": 0.5}: the form's field names."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_values(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
