"""The model card (README.md) of an exported model: what it is, how it was trained, how to redo it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entrodrop.config import DROPPING_METHODS, METHOD_HELP, RunConfig
from entrodrop.metrics import EVAL_LOSS, SELECTABLE, label

if TYPE_CHECKING:
    from entrodrop.export import Export

RUN_CONFIG = "entrodrop_run_config.json"  # the run's config, written beside the card

# Run settings the card lists under "Training" (the data and method have their own sections).
TRAINING_KEYS = (
    "epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "seq_len", "eval_every",
    "seed", "max_grad_norm", "dtype", "gradient_checkpointing", "best_metric",
    "early_stopping_patience", "early_stopping_threshold",
)  # fmt: skip


def _base_text(model: str) -> str:
    """The starting model in words; `default` is named with where its weights come from."""
    from entrodrop.models import DEFAULT_GGUF, DEFAULT_NAME, DEFAULT_PACKAGE

    if model != "default":
        return f"`{model}`"
    return (
        f"`default`: {DEFAULT_NAME}, dequantised from the {DEFAULT_GGUF} file of the "
        f"`{DEFAULT_PACKAGE.replace('_', '-')}` package"
    )


def metrics_at(rows: list[dict[str, Any]], step: int | None) -> dict[str, float]:
    """The evaluation metrics a run logged at `step` (its metric rows; last value per name)."""
    if step is None:
        return {}
    return {
        r["name"]: float(r["value"])
        for r in rows
        if r.get("step") == step and r.get("name") in SELECTABLE
    }


def metric_lines(values: dict[str, Any]) -> list[str]:
    """One table row per evaluation metric present in `values`, in the vocabulary's order."""
    return [
        f"| {label(name)} (`{name}`) | {values[name]:.4f} |"
        for name in SELECTABLE
        if isinstance(values.get(name), int | float)
    ]


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    return ["| setting | value |", "|---|---|"] + [f"| `{k}` | {_cell(v)} |" for k, v in rows]


def _cell(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict | list):
        return "`" + json.dumps(value) + "`"
    return str(value)


def _method_lines(config: RunConfig) -> list[str]:
    lines = [f"Method: **{config.method}** ({METHOD_HELP.get(config.method, '')})."]
    if config.method in DROPPING_METHODS:
        lines += ["", "EntroDrop parameters:", ""]
        lines += _table(list(config.entrodrop.model_dump().items()))
    elif config.baseline_strength is not None:
        lines.append(f"Baseline strength: {config.baseline_strength}.")
    if config.adapter is not None:
        lines += ["", "Adapter (peft):", ""]
        lines += _table(list(config.adapter.model_dump().items()))
    return lines


def _data_lines(config: RunConfig, summary: dict[str, Any]) -> list[str]:
    data = summary.get("data") if isinstance(summary.get("data"), dict) else {}
    rows: list[tuple[str, Any]] = [
        ("dataset", config.dataset),
        ("heldout_dataset", config.heldout_dataset or "every 5th document of the dataset"),
        ("general_dataset", config.general_dataset or "CPython's LICENSE.txt"),
        ("max_train_tokens", config.max_train_tokens),
        ("max_eval_tokens", config.max_eval_tokens),
    ]
    if summary.get("train_tokens") is not None:
        rows.append(("training tokens", summary["train_tokens"]))
    rows += [(f"data {k}", v) for k, v in (data or {}).items()]
    return _table(rows)


def _results_lines(
    summary: dict[str, Any], export: Export, exported: dict[str, float]
) -> list[str]:
    header = ["| metric | value (nats/token) |", "|---|---|"]
    lines = [f"This folder holds the weights of step {export.step} ({export.checkpoint}).", ""]
    lines += header + metric_lines(exported)
    best = summary.get("best_metrics")
    if isinstance(best, dict) and best:
        judged = summary.get("best_metric") or EVAL_LOSS
        lines += ["", f"Best evaluation (by {label(judged)}): step {summary.get('best_step')}", ""]
        lines += header + metric_lines(best)
    final = summary.get("final")
    if isinstance(final, dict) and final:
        lines += ["", f"Final evaluation: step {summary.get('steps')}", ""]
        lines += header + metric_lines(final)
    if summary.get("stopped_early"):
        lines += ["", f"The run stopped early: {summary.get('stop_reason')}."]
    return lines


def _usage_lines(config: RunConfig, export: Export, out: Path) -> list[str]:
    load = (
        "from peft import AutoPeftModelForCausalLM\n"
        f'model = AutoPeftModelForCausalLM.from_pretrained("{out}")'
        if export.kind == "adapter"
        else "from transformers import AutoModelForCausalLM\n"
        f'model = AutoModelForCausalLM.from_pretrained("{out}")'
    )
    lines = ["```python", load, "```", ""]
    if export.kind == "adapter":
        lines += [
            "`adapter_config.json` names the base model's folder on the machine that trained "
            "it (`base_model_name_or_path`); before sharing, set it to the base's hub id "
            f"(the run's base: `{config.model}`).",
            "",
        ]
    lines += [
        "Reproduce the run (same settings; data files are named as on the training machine):",
        "",
        "```bash",
        f"entrodrop train --config {out / RUN_CONFIG}",
        "```",
        "",
        "Share it on the Hugging Face Hub (EntroDrop never uploads; run this yourself):",
        "",
        "```bash",
        export.upload_command(),
        "```",
    ]
    return lines


def card_text(
    config: RunConfig,
    export: Export,
    out: Path,
    summary: dict[str, Any],
    exported_metrics: dict[str, float],
) -> str:
    """The whole card as Markdown (with the hub's YAML header)."""
    kind = {"full": "full weights", "adapter": "LoRA adapter", "merged": "LoRA merged"}
    lines = [
        "---",
        "library_name: " + ("peft" if export.kind == "adapter" else "transformers"),
        "pipeline_tag: text-generation",
        "tags: [" + ", ".join(dict.fromkeys(["entrodrop", config.method])) + "]",  # no repeat
        "---",
        "",
        f"# EntroDrop run {export.run_id} ({kind[export.kind]})",
        "",
        f"Fine-tuned from {_base_text(config.model)} with EntroDrop Studio. Exported from "
        f"`{export.source}`.",
        "",
        "## Method",
        "",
        *_method_lines(config),
        "",
        "## Data",
        "",
        *_data_lines(config, summary),
        "",
        "## Training",
        "",
        *_table([(k, getattr(config, k)) for k in TRAINING_KEYS]),
        "",
        "## Results",
        "",
        *_results_lines(summary, export, exported_metrics),
        "",
        "## Use",
        "",
        *_usage_lines(config, export, out),
    ]
    return "\n".join(lines) + "\n"
