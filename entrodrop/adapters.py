"""LoRA / QLoRA adapters through peft: wrap a model, score its base, load and merge a saved one.

peft is imported only when an adapter is used, so a full-weight run or the server's listing of
runs never pays for it. An adapter folder is what ``PeftModel.save_pretrained`` writes:
``adapter_config.json`` + ``adapter_model.safetensors`` (entrodrop.runfolder.ADAPTER_FILES).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from entrodrop.config import AdapterConfig
from entrodrop.runfolder import ADAPTER_CONFIG, ADAPTER_WEIGHTS

log = logging.getLogger(__name__)


class AdapterUnavailable(ValueError):
    """An adapter this machine cannot train (QLoRA without CUDA or bitsandbytes)."""


def adapter_problem(adapter: AdapterConfig | None) -> str | None:
    """Why this machine cannot train the adapter, or None when it can."""
    if adapter is None or adapter.kind == "lora":
        return None
    if not torch.cuda.is_available():
        return "QLoRA needs a CUDA GPU (its 4-bit weights run on bitsandbytes' CUDA kernels); use 'lora'"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "QLoRA needs the bitsandbytes package: pip install bitsandbytes (or use 'lora')"
    return None


def check_adapter(adapter: AdapterConfig | None) -> None:
    """Raise :class:`AdapterUnavailable` with the reason when the adapter cannot be trained here."""
    problem = adapter_problem(adapter)
    if problem is not None:
        raise AdapterUnavailable(f"adapter kind '{adapter.kind if adapter else ''}': {problem}")


def is_adapter_folder(path: Path) -> bool:
    """True for a folder holding a peft adapter (its config and safetensors weights)."""
    return (path / ADAPTER_CONFIG).is_file() and (path / ADAPTER_WEIGHTS).is_file()


def is_peft_model(model: Any) -> bool:
    """True for a peft-wrapped model (checked without importing peft when it is not loaded)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def lora_config(adapter: AdapterConfig, base_name: str) -> Any:
    """peft's LoraConfig for a causal LM from our AdapterConfig."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=adapter.target_modules,
        base_model_name_or_path=base_name,
    )


def wrap_with_adapter(model: Any, adapter: AdapterConfig, base_name: str) -> Any:
    """The model with a fresh trainable adapter; the base weights are frozen (no copy made)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if adapter.kind == "qlora":
        # Casts norms to float32 and lets gradients reach the adapters through the 4-bit base.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    try:
        wrapped = get_peft_model(model, lora_config(adapter, base_name))
    except ValueError as exc:  # e.g. a target module name the model does not have
        raise AdapterUnavailable(f"cannot add the adapter: {exc}") from exc
    trainable, total = wrapped.get_nb_trainable_parameters()
    log.info(
        "%s adapter r=%d alpha=%g: %d trainable of %d parameters (%.2f%%)",
        adapter.kind,
        adapter.r,
        adapter.alpha,
        trainable,
        total,
        100.0 * trainable / max(1, total),
    )
    return wrapped


@contextlib.contextmanager
def base_weights(model: Any) -> Iterator[None]:
    """Run the base model: a peft model's adapters are switched off inside (no second copy)."""
    if not is_peft_model(model):
        yield
        return
    with model.disable_adapter():
        yield


def adapter_base_name(folder: Path) -> str | None:
    """The base model an adapter folder names (adapter_config.json's base_model_name_or_path)."""
    try:
        data = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.strip() else None


def merge_adapter(base: Any, folder: Path) -> Any:
    """base + the adapter in `folder`, merged into plain weights (scoring needs no peft layers)."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, str(folder), is_trainable=False)
    return model.merge_and_unload()


def quantized_base_kwargs() -> dict[str, Any]:
    """from_pretrained keyword arguments of a QLoRA base: NF4 4-bit weights, bf16 compute."""
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    }
