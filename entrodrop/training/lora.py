"""A run's adapter and GPU knobs: the LoRA/QLoRA-wrapped training model, gradient checkpointing
and clipping arguments (the adapter pieces themselves live in entrodrop.adapters)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from entrodrop.adapters import (
    check_adapter,
    is_adapter_folder,
    quantized_base_kwargs,
    wrap_with_adapter,
)
from entrodrop.config import RunConfig
from entrodrop.models import (
    LoadedModel,
    ModelLoadError,
    check_local_checkpoint,
    load,
    resolve_spec,
)
from entrodrop.precision import Precision

log = logging.getLogger(__name__)


def knob_arguments(config: RunConfig) -> dict[str, Any]:
    """TrainingArguments for the memory and stability knobs: clipping, gradient checkpointing."""
    args: dict[str, Any] = {"max_grad_norm": config.max_grad_norm}
    if config.gradient_checkpointing:
        # Non-reentrant checkpointing: gradients reach a LoRA adapter through a frozen base
        # without making the input embeddings require grad.
        name = checkpointing_argument()
        args[name] = True
        args[f"{name}_kwargs"] = {"use_reentrant": False}
    return args


def checkpointing_argument() -> str:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing (old: warns)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )


def load_training_model(config: RunConfig) -> LoadedModel:
    """The starting model to train: float32 on the CPU (the Trainer moves it and autocasts),
    with a fresh adapter on top when the config asks for one."""
    check_adapter(config.adapter)  # QLoRA where it cannot run: a clear message, before any load
    if config.adapter is not None and config.adapter.kind == "qlora":
        loaded = load_quantized(config)
    else:
        loaded = load(config.model, device="cpu", dtype="float32")
    if config.adapter is not None:
        loaded.model = wrap_with_adapter(loaded.model, config.adapter, loaded.path)
    return loaded


def load_quantized(config: RunConfig) -> LoadedModel:
    """The QLoRA base: the model loaded straight into 4-bit NF4 weights on this process's GPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, is_local = resolve_spec(config.model)
    if is_local:
        check_local_checkpoint(Path(where))
        if is_adapter_folder(Path(where)):
            raise ModelLoadError("QLoRA starts from full weights, not from an adapter folder")
    device = torch.device("cuda", torch.cuda.current_device())
    try:
        model = AutoModelForCausalLM.from_pretrained(
            where,
            dtype=torch.bfloat16,
            device_map={"": device.index},
            use_safetensors=True,
            trust_remote_code=False,
            **quantized_base_kwargs(),
        )
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=False)
    except Exception as exc:  # bitsandbytes build or driver problems, download failures
        raise ModelLoadError(f"cannot load {config.model} in 4 bits: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    name = config.model if not is_local else Path(where).name
    precision = Precision(
        "bfloat16", torch.bfloat16, None, "bfloat16: QLoRA computes in bf16 on CUDA"
    )
    return LoadedModel(model, tokenizer, name, config.model, where, device, precision)
