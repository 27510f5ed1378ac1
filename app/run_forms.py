"""Validate new-run requests (API body or form) into RunConfig + launcher, with per-field errors."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from app.jobs import Launcher
from app.model_paths import check_model_folder
from app.settings import Settings
from app.storage import Storage
from entrodrop.config import DEFAULT_BASELINE_STRENGTH, METHODS, EntroDropConfig, RunConfig
from entrodrop.data import (
    USER_SUFFIXES,
    DataError,
    check_name_lengths,
    check_path_allowed,
    is_builtin,
    parse_text_file,
    uploads_dir,
)
from entrodrop.models import check_local_checkpoint

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Keys of a POST /api/runs body that are not RunConfig fields: stripped before validation.
EXTRA_KEYS = ("launcher", "compare_with")
COMPARE_METHODS = ("none", "random")

# What the form starts with: bench/reproduce.py's setting (docs/benchmarks.md), small enough to
# overfit within the run so the curves show the multi-epoch rebound: 2048 training tokens, 6
# epochs (24 steps at 4 x 128), an evaluation per epoch. One run took ~140 s on the 2-core CPU, a
# matched pair ~5 min. Fields not listed take RunConfig's defaults.
FORM_DEFAULTS: dict[str, Any] = {
    "epochs": 6.0,
    "max_steps": None,
    "learning_rate": 3e-4,
    "max_train_tokens": 2048,
    "max_eval_tokens": 1024,
    "eval_every": 4,
}
LABELS = {
    "entropy_source": "entropy source",
    "quantile": "quantile q",
    "threshold": "threshold \u03c4 (nats)",
    "rate_max": "max drop rate r_max",
    "steepness": "steepness k",
    "midpoint": "midpoint s0",
    "drop_token_id": "drop token id",
    "seed": "seed",
    "epochs": "epochs",
    "max_steps": "max steps",
    "learning_rate": "learning rate",
    "batch_size": "batch size",
    "grad_accum": "gradient accumulation",
    "seq_len": "sequence length",
    "eval_every": "evaluate every (steps)",
    "baseline_strength": "baseline strength",
    "max_train_tokens": "max training tokens",
    "max_eval_tokens": "max eval tokens",
    "save_checkpoints": "save checkpoints",
    "dtype": "precision",
}
HELP = {
    "epochs": "passes over the training data",
    "max_steps": "optimizer steps; overrides epochs when set",
    "learning_rate": "AdamW, linear decay",
    "batch_size": "blocks per step (per process)",
    "grad_accum": "batches summed per step",
    "seq_len": "tokens per block",
    "eval_every": "held-out, general loss and a checkpoint",
    "seed": "data order and initialisation",
    "baseline_strength": "empty: the method's default",
    "max_train_tokens": "train on the first N tokens only",
    "max_eval_tokens": "tokens scored per evaluation",
    "save_checkpoints": "needed to resume",
    "dtype": "auto: bf16 autocast where it helps",
}
METHOD_HELP = {
    "entrodrop": "drop low-entropy tokens on a curriculum (the method)",
    "none": "plain fine-tuning",
    "random": "ablation: same schedule and drop count, random tokens",
    "weight_decay": "AdamW weight decay",
    "hidden_dropout": "dropout inside the model",
    "label_smoothing": "label smoothing epsilon",
    "neftune": "noise on the input embeddings",
}


@dataclass
class FieldError:
    """One problem, located by the dotted field path the form uses (e.g. `entrodrop.quantile`)."""

    loc: tuple[str | int, ...]
    msg: str

    @property
    def field(self) -> str:
        return ".".join(str(p) for p in self.loc) or "body"

    def to_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "field": self.field, "msg": self.msg}


class RequestInvalid(ValueError):
    """A new-run request with errors; `detail` is one readable line for people and clients."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        return "; ".join(f"{e.field}: {e.msg}" for e in self.errors)


@dataclass
class RunRequest:
    """A validated request: the run's config, how to launch it, and an optional matched baseline."""

    config: RunConfig
    launcher: Launcher = field(default_factory=Launcher)
    compare_with: str | None = None

    def configs(self) -> list[RunConfig]:
        """The run, then its baseline twin (same seed, data and schedule; only the method differs)."""
        if self.compare_with is None:
            return [self.config]
        return [self.config, self.config.model_copy(update={"method": self.compare_with})]


def _errors_from(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        # The model-level check about thresholds belongs beside the threshold field.
        if loc == ("entrodrop",) and "threshold" in msg:
            loc = ("entrodrop", "threshold")
        out.append(FieldError(loc, msg))
    return out


def check_model(spec: str, storage: Storage, settings: Settings) -> str:
    """A model spec the training process can load: default, run:<id>, a folder, or a hub id."""
    spec = spec.strip()
    if spec == "default":
        return spec
    if spec.startswith("run:"):
        run_id = spec[4:]
        run = storage.get_run(run_id) if RUN_ID.match(run_id) else None
        if run is None:
            raise ValueError(f"no run {run_id!r}")
        if run.status != "succeeded":
            raise ValueError(
                f"run {run_id} is {run.status}: only a finished run's model can be used"
            )
        return spec
    check_name_lengths(spec)  # a DataError (a ValueError): 422, not an OSError's 500
    path = Path(spec).expanduser()
    if path.is_absolute() or spec.startswith((".", "~")) or path.exists():
        path = check_model_folder(path, settings)  # the allowed-folder rule before any look
        if not path.is_dir():
            raise ValueError(f"no model folder at {spec}")
        if not (path / "config.json").is_file():
            raise ValueError(f"{spec} is not a model folder: it has no config.json")
        check_local_checkpoint(path)  # safetensors weights, not pickles (a ModelLoadError)
        return str(path)
    if HUB_ID.match(spec):
        return spec  # loads where the machine can reach the hub; the run fails with why if not
    raise ValueError("use 'default', run:<id>, a model folder, or a hub id like org/name")


def check_dataset(spec: str, settings: Settings) -> str:
    """A built-in dataset, or a file inside an allowed folder or the uploads folder (absolute)."""
    spec = spec.strip()
    if is_builtin(spec):
        return spec
    check_name_lengths(spec)
    if ".." in Path(spec).parts:
        raise ValueError("a dataset path may not contain '..'")
    allowed = [*settings.allowed_data_dirs, uploads_dir(settings.home)]
    try:
        path = check_path_allowed(spec, allowed)
    except DataError as exc:
        if not settings.allowed_data_dirs:
            raise ValueError(
                "use python-reference or upload a file: naming files by path is disabled here "
                "(the server's ENTRODROP_ALLOWED_DATA_DIRS is empty)"
            ) from exc
        raise ValueError(str(exc)) from exc
    if path.suffix.lower() not in USER_SUFFIXES:
        raise ValueError(f"unsupported file type; use one of {', '.join(USER_SUFFIXES)}")
    if not path.is_file():
        raise ValueError(f"no such file: {spec}")
    return str(path)


def parse_request(body: Any, settings: Settings, storage: Storage) -> RunRequest:
    """Validate a POST /api/runs body; all errors at once, each located at its field."""
    if not isinstance(body, dict):
        raise RequestInvalid([FieldError((), "expected a JSON object (a run config)")])
    rest = {k: v for k, v in body.items() if k not in EXTRA_KEYS}
    errors: list[FieldError] = []
    launcher = Launcher()
    if body.get("launcher") is not None:
        try:
            launcher = Launcher.model_validate(body["launcher"])
        except ValidationError as exc:
            errors += _errors_from(exc, ("launcher",))
    compare_with = body.get("compare_with") or None
    if compare_with is not None and compare_with not in COMPARE_METHODS:
        errors.append(FieldError(("compare_with",), f"must be one of {', '.join(COMPARE_METHODS)}"))
    config: RunConfig | None = None
    try:
        config = RunConfig.model_validate(rest)
    except ValidationError as exc:
        errors += _errors_from(exc)
    # The model and data are checked even when other fields are wrong: every error at once.
    checked: dict[str, str] = {}
    for name, default, check in (
        ("model", "default", lambda v: check_model(v, storage, settings)),
        ("dataset", "python-reference", lambda v: check_dataset(v, settings)),
    ):
        value = rest.get(name, default)
        if not isinstance(value, str) or not value.strip():
            continue  # RunConfig's own validation reported it
        try:
            checked[name] = check(value)
        except ValueError as exc:
            errors.append(FieldError((name,), str(exc)))
    if config is not None and config.method == compare_with:
        errors.append(FieldError(("compare_with",), "the baseline must differ from the method"))
    if config is not None and not errors:
        config = config.model_copy(update=checked)
    if errors or config is None:
        raise RequestInvalid(errors)
    return RunRequest(config, launcher, compare_with)


# ---------------------------------------------------------------- uploads


def save_upload(raw: bytes, filename: str, settings: Settings) -> dict[str, Any]:
    """Check an uploaded dataset file and keep it under <home>/uploads (content-addressed name)."""
    if len(raw) > settings.max_upload_bytes:
        raise DataError(f"the file is larger than the {settings.max_upload_bytes} bytes allowed")
    name = Path(filename or "upload.txt").name
    # DataError: wrong type, empty, not UTF-8, bad JSONL; DataTooLarge: over the text budget
    texts = parse_text_file(raw, name, settings.text_budget)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:60] or "upload"
    digest = hashlib.sha256(raw).hexdigest()[:12]
    folder = uploads_dir(settings.home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{digest}{Path(name).suffix.lower()}"
    if not path.exists():
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(raw)
        tmp.replace(path)
    return {
        "dataset": str(path),
        "name": name,
        "bytes": len(raw),
        "n_texts": len(texts),
        "n_chars": sum(len(t) for t in texts),
    }


# ---------------------------------------------------------------- form fields from the schema


def form_fields(model: type[BaseModel], prefix: str = "", skip: tuple[str, ...] = ()) -> list[dict]:
    """Inputs for every field of a pydantic model, from its JSON schema: the form cannot drift."""
    schema = model.model_json_schema()
    out = []
    for name, prop in schema["properties"].items():
        if name in skip or "$ref" in prop or "default" not in prop:
            continue
        variants = prop.get("anyOf", [prop])
        main = next((v for v in variants if v.get("type") != "null"), prop)
        nullable = any(v.get("type") == "null" for v in variants)
        kind = {"integer": "int", "number": "float", "boolean": "bool"}.get(
            main.get("type", ""), ""
        )
        if "enum" in main:
            kind = "select"
        spec: dict[str, Any] = {
            "name": f"{prefix}{name}",
            "label": LABELS.get(name, name.replace("_", " ")),
            "kind": kind or "text",
            "default": FORM_DEFAULTS.get(name, prop["default"]) if not prefix else prop["default"],
            "nullable": nullable,
            "help": prop.get("description") or HELP.get(name, ""),
            "options": main.get("enum", []),
            "min": main.get("minimum", main.get("exclusiveMinimum")),
            "max": main.get("maximum", main.get("exclusiveMaximum")),
        }
        if spec["max"] is not None and spec["max"] > 1e15:
            spec["max"] = None  # 2**63-1 seeds: no useful browser bound
        out.append(spec)
    return out


TRAINING_FIELDS = (
    "epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "seq_len", "eval_every",
    "seed",
)  # fmt: skip
ADVANCED_FIELDS = (
    "baseline_strength", "max_train_tokens", "max_eval_tokens", "save_checkpoints", "dtype",
)  # fmt: skip


def new_run_form(
    settings: Settings, storage: Storage, like: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """Everything the new-run form needs: defaults, choices, finished runs, allowed folders.

    `like` starts from an existing run's config ("new run like this"); `model` presets the model.
    """
    run_fields = {f["name"]: f for f in form_fields(RunConfig)}
    finished = [
        {"id": r.id, "method": r.config.get("method"), "model": r.config.get("model")}
        for r in storage.list_runs(statuses=["succeeded"])
    ]
    defaults = RunConfig().model_dump(mode="json") | FORM_DEFAULTS
    base = storage.get_run(like) if like and RUN_ID.match(like) else None
    if base is not None:
        defaults = base.config
    if model:
        defaults = {**defaults, "model": model}
    return {
        "values": flat_values(defaults),
        "defaults": defaults,
        "methods": [{"name": m, "help": METHOD_HELP.get(m, "")} for m in METHODS],
        "baseline_strength_defaults": DEFAULT_BASELINE_STRENGTH,
        "compare_methods": list(COMPARE_METHODS),
        "training_fields": [run_fields[n] for n in TRAINING_FIELDS],
        "advanced_fields": [run_fields[n] for n in ADVANCED_FIELDS],
        "entrodrop_fields": form_fields(EntroDropConfig, prefix="entrodrop."),
        "finished_runs": list(reversed(finished)),
        "allowed_data_dirs": [str(p) for p in settings.allowed_data_dirs],
        "max_upload_bytes": settings.max_upload_bytes,
        "upload_suffixes": list(USER_SUFFIXES),
    }


def flat_values(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"entrodrop": {"quantile": 0.5}} -> {"entrodrop.quantile": 0.5}: the form's field names."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_values(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
