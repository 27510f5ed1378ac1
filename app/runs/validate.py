"""Validate new-run requests (API body or form) into RunConfig + launcher, with per-field errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app import capacity
from app.errors import AppError, FieldError, RequestInvalid
from app.hub import check_hub_spec, is_hub_id
from app.model_paths import check_data_path, check_model_folder, expand
from app.runs.data_check import data_errors
from app.runs.storage import Storage
from app.settings import Settings
from entrodrop.adapters import adapter_problem
from entrodrop.config import PRESETS, RunConfig, with_preset
from entrodrop.data import (
    USER_SUFFIXES,
    check_name_lengths,
    is_builtin,
    uploads_dir,
)
from entrodrop.launch import Launcher, launcher_problem
from entrodrop.models import check_local_checkpoint
from entrodrop.runfolder import (
    ADAPTER_CONFIG,
    RUN_SPEC_PREFIX,
    parse_run_spec,
    run_checkpoint,
)
from entrodrop.trackers import TrackerMissing, check_tracker

# Keys of a POST /api/runs body that are not RunConfig fields: stripped before validation.
EXTRA_KEYS = ("launcher", "compare_with", "preset")
COMPARE_METHODS = ("none", "random")


class RunQueueFull(AppError):
    """More runs would wait than settings.max_queued_runs allows."""

    status_code = 429


QUEUE_RETRY_AFTER_S = 60


def check_queue_room(storage: Storage, settings: Settings, new_runs: int) -> None:
    """Raise RunQueueFull (429) when `new_runs` more queued runs would pass the cap."""
    waiting = len(storage.list_runs(statuses=["queued"]))
    if waiting + new_runs > settings.max_queued_runs:
        raise RunQueueFull(
            f"{waiting} runs are already queued (at most {settings.max_queued_runs} may wait); "
            "cancel some or wait for them to start",
            retry_after=QUEUE_RETRY_AFTER_S,
        )


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
    if spec.startswith(RUN_SPEC_PREFIX):
        run_id, which = parse_run_spec(spec)  # run:<id>, run:<id>:best or run:<id>:<step>
        run = storage.get_run(run_id)
        if run is None:
            raise ValueError(f"no run {run_id!r}")
        if run.status != "succeeded":
            raise ValueError(
                f"run {run_id} is {run.status}: only a finished run's model can be used"
            )
        run_checkpoint(settings.runs_path / run_id, which)  # a ValueError if it was not kept
        return spec
    check_name_lengths(spec)  # a DataError (a ValueError): 422, not an OSError's 500
    path = expand(spec)
    if path.is_absolute() or spec.startswith((".", "~")) or path.exists():
        path = check_model_folder(path, settings)  # the allowed-folder rule before any look
        if not path.is_dir():
            raise ValueError(f"no model folder at {spec}")
        if not (path / "config.json").is_file() and not (path / ADAPTER_CONFIG).is_file():
            raise ValueError(f"{spec} is not a model folder: it has no config.json")
        check_local_checkpoint(path)  # safetensors weights, not pickles (a ModelLoadError)
        return str(path)
    if is_hub_id(spec):
        check_hub_spec(spec, settings)  # shared servers refuse; offline and uncached fails now
        return spec
    raise ValueError("use 'default', run:<id>, a model folder, or a hub id like org/name")


def check_dataset(spec: str, settings: Settings) -> str:
    """A built-in dataset, or a file by path under the path rule (app.model_paths), absolute."""
    spec = spec.strip()
    if is_builtin(spec):
        return spec
    check_name_lengths(spec)
    if ".." in Path(spec).parts:
        raise ValueError("a dataset path may not contain '..'")
    path = check_data_path(spec, settings, also=uploads_dir(settings.home))
    if path.suffix.lower() not in USER_SUFFIXES:
        raise ValueError(f"unsupported file type; use one of {', '.join(USER_SUFFIXES)}")
    if not path.is_file():
        raise ValueError(f"no such file: {spec}")
    return str(path)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def machine_errors(config: RunConfig, launcher: Launcher, settings: Settings) -> list[FieldError]:
    """Processes, seq_len and batch size beyond what this machine can run (settings override)."""
    errors = []
    procs = settings.max_processes or capacity.max_processes()
    if launcher.kind == "accelerate" and launcher.num_processes > procs:
        why = "ENTRODROP_MAX_PROCESSES" if settings.max_processes else "its CUDA devices or cores"
        errors.append(
            FieldError(("launcher", "num_processes"), f"at most {procs} on this machine ({why})")
        )
    shape = capacity.model_shape(config.model, settings.runs_path)
    max_seq = settings.max_seq_len or shape.context
    if max_seq is not None and config.seq_len > max_seq:
        why = "ENTRODROP_MAX_SEQ_LEN" if settings.max_seq_len else "the model's context length"
        errors.append(FieldError(("seq_len",), f"at most {max_seq} ({why})"))
    tokens = config.batch_size * config.seq_len
    if settings.max_batch_tokens is not None:
        if tokens > settings.max_batch_tokens:
            errors.append(
                FieldError(
                    ("batch_size",),
                    f"batch_size x seq_len = {tokens} tokens; at most "
                    f"{settings.max_batch_tokens} here (ENTRODROP_MAX_BATCH_TOKENS)",
                )
            )
        return errors
    # Processes on one CPU share its RAM; each CUDA process has its own device.
    sharing = (
        launcher.num_processes
        if launcher.kind == "accelerate" and not capacity.device_count()
        else 1
    )
    need = capacity.step_bytes(shape, config.batch_size, config.seq_len) * sharing
    have = capacity.memory_bytes()
    if need > have:
        errors.append(
            FieldError(
                ("batch_size",),
                f"batch_size x seq_len = {tokens} tokens needs about {_gb(need)} to train, more "
                f"than this machine's {_gb(have)}; lower batch_size or seq_len "
                "(or set ENTRODROP_MAX_BATCH_TOKENS)",
            )
        )
    return errors


def tracker_problem(name: str) -> str | None:
    """Why `report_to` cannot work on this machine (its package is missing), or None."""
    try:
        check_tracker(name)
    except TrackerMissing as exc:
        return str(exc)
    return None


def parse_request(body: Any, settings: Settings, storage: Storage) -> RunRequest:
    """Validate a POST /api/runs body; all errors at once, each located at its field."""
    if not isinstance(body, dict):
        raise RequestInvalid([FieldError((), "expected a JSON object (a run config)")])
    rest = {k: v for k, v in body.items() if k not in EXTRA_KEYS}
    errors: list[FieldError] = []
    preset = body.get("preset")
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        errors.append(FieldError(("preset",), f"must be one of {', '.join(PRESETS)}"))
    elif preset is not None:
        rest = with_preset(rest, preset)  # the body's own values win over the preset's
    launcher = Launcher()
    if body.get("launcher") is not None:
        try:
            launcher = Launcher.model_validate(body["launcher"])
        except ValidationError as exc:
            errors += _errors_from(exc, ("launcher",))
        if (problem := launcher_problem(launcher)) is not None:
            errors.append(FieldError(("launcher", "fsdp"), problem))
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
        ("heldout_dataset", None, lambda v: check_dataset(v, settings)),
        ("general_dataset", None, lambda v: check_dataset(v, settings)),
    ):
        value = rest.get(name, default)
        if not isinstance(value, str) or not value.strip():
            continue  # unset (optional files), or RunConfig's own validation reported it
        try:
            checked[name] = check(value)
        except ValueError as exc:
            errors.append(FieldError((name,), str(exc)))
    if config is not None and (problem := adapter_problem(config.adapter)) is not None:
        errors.append(FieldError(("adapter", "kind"), problem))  # QLoRA where it cannot run
    if config is not None and (problem := tracker_problem(config.report_to)) is not None:
        errors.append(FieldError(("report_to",), problem))  # its package is not installed here
    if config is not None and config.method == compare_with:
        errors.append(FieldError(("compare_with",), "the baseline must differ from the method"))
    if config is not None and not errors:
        config = config.model_copy(update=checked)
        errors += machine_errors(config, launcher, settings)
    if config is not None and not errors:
        errors += data_errors(config, settings)  # reads the files: only once all else is right
    if errors or config is None:
        raise RequestInvalid(errors)
    return RunRequest(config, launcher, compare_with)
