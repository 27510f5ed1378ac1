"""The checks of a new run that pydantic cannot express (paths, hub ids, this machine's capacity,
launcher and adapter), after FastAPI has validated the body (RunCreate): per-field errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import capacity
from app.errors import AppError, FieldError, RequestInvalid
from app.hub import check_hub_spec, is_hub_id, is_shared
from app.model_paths import check_data_path, check_model_folder
from app.runs.data_check import data_errors
from app.runs.schemas import EvaluateRequest, RunCreate
from app.runs.storage import Storage
from app.settings import Settings
from entrodrop.adapters import adapter_problem
from entrodrop.config import RunConfig
from entrodrop.data import (
    USER_SUFFIXES,
    check_name_lengths,
    is_builtin,
    uploads_dir,
)
from entrodrop.eval.tasks import TaskError, check_run_tasks
from entrodrop.launch import Launcher, launcher_problem
from entrodrop.models import check_local_checkpoint
from entrodrop.paths import expand_user
from entrodrop.runfolder import (
    ADAPTER_CONFIG,
    RUN_SPEC_PREFIX,
    parse_run_spec,
    run_checkpoint,
)
from entrodrop.trackers import TrackerMissing, check_tracker


class RunQueueFull(AppError):
    """More runs would wait than settings.max_queued_runs allows."""

    status_code = 429


QUEUE_RETRY_AFTER_S = 60
# Checking the room and queueing are one step: two requests must not both fit into the last room.
_QUEUE_LOCK = threading.Lock()


def check_queue_room(
    storage: Storage, settings: Settings, new_runs: int, what: str = "this request"
) -> None:
    """Raise RunQueueFull (429) when `new_runs` more queued runs would pass the one bound on
    what waits (ENTRODROP_MAX_QUEUED_RUNS), counted over runs and studies' runs together."""
    waiting = len(storage.list_runs(statuses=["queued"]))
    cap = settings.max_queued_runs
    room = max(0, cap - waiting)
    if new_runs > room:
        raise RunQueueFull(
            f"{waiting} runs are already queued (at most {cap} may wait, "
            f"ENTRODROP_MAX_QUEUED_RUNS): room for {room}, and {what} would queue {new_runs} "
            "runs; cancel some or wait for them to start",
            retry_after=QUEUE_RETRY_AFTER_S,
        )


@contextmanager
def queue_room(
    storage: Storage, settings: Settings, new_runs: int, what: str = "this request"
) -> Iterator[None]:
    """Check the queue's room and queue the runs inside the block, with no other request between."""
    with _QUEUE_LOCK:
        check_queue_room(storage, settings, new_runs, what)
        yield


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
    path = expand_user(spec)  # a PathError (a ValueError) for ~nosuchuser
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


def _checked_paths(
    config: RunConfig, settings: Settings, storage: Storage
) -> tuple[dict[str, str], list[FieldError]]:
    """The model and every dataset checked where they are (each error at its field)."""
    checked: dict[str, str] = {}
    errors: list[FieldError] = []
    for name, check in (
        ("model", lambda v: check_model(v, storage, settings)),
        ("dataset", lambda v: check_dataset(v, settings)),
        ("heldout_dataset", lambda v: check_dataset(v, settings)),
        ("general_dataset", lambda v: check_dataset(v, settings)),
    ):
        value = getattr(config, name)
        if value is None:
            continue  # an optional file left out
        try:
            checked[name] = check(value)
        except ValueError as exc:  # DataError, ModelLoadError, PathError: said for a person
            errors.append(FieldError((name,), str(exc)))
        except OSError as exc:  # a look-up the system refused (permissions, a name too long)
            errors.append(FieldError((name,), f"cannot use {value!r}: {exc.strerror or exc}"))
    return checked, errors


def check_run(
    config: RunConfig,
    settings: Settings,
    storage: Storage,
    launcher: Launcher | None = None,
    compare_with: str | None = None,
) -> RunRequest:
    """The checks pydantic cannot express: paths and hub ids where they are, this machine's
    capacity, what its launcher and adapter need. RequestInvalid lists every problem at once."""
    launcher = launcher or Launcher()
    checked, errors = _checked_paths(config, settings, storage)
    if (problem := launcher_problem(launcher)) is not None:
        errors.append(FieldError(("launcher", "fsdp"), problem))
    if (problem := adapter_problem(config.adapter)) is not None:
        errors.append(FieldError(("adapter", "kind"), problem))  # QLoRA where it cannot run
    if (problem := tracker_problem(config.report_to)) is not None:
        errors.append(FieldError(("report_to",), problem))  # its package is not installed here
    tasks, code = config.eval_tasks, config.eval_allow_code_execution
    if tasks and (problem := benchmark_problem(tasks, code, settings)) is not None:
        errors.append(FieldError(("eval_tasks",), problem))
    if config.method == compare_with:
        errors.append(FieldError(("compare_with",), "the baseline must differ from the method"))
    if not errors:
        config = config.model_copy(update=checked)
        errors += machine_errors(config, launcher, settings)
    if not errors:
        errors += data_errors(config, settings)  # reads the files: only once all else is right
    if errors:
        raise RequestInvalid(errors)
    return RunRequest(config, launcher, compare_with)


def check_request(body: RunCreate, settings: Settings, storage: Storage) -> RunRequest:
    """A POST /api/runs body FastAPI has validated, through the domain checks (check_run)."""
    return check_run(body.run_config(), settings, storage, body.launcher, body.compare_with)


def benchmark_problem(
    tasks: list[str], allow_code_execution: bool, settings: Settings
) -> str | None:
    """Why these benchmark tasks cannot run from this server, or None: unknown names (with near
    matches), code execution on a shared server or without the flag."""
    if allow_code_execution and is_shared(settings):
        return "benchmarks that run the model's code are refused on a shared server"
    try:
        check_run_tasks(tasks, allow_code_execution)
    except TaskError as exc:
        return str(exc)
    return None


def check_evaluation(body: EvaluateRequest, settings: Settings) -> dict[str, Any]:
    """POST /api/runs/{id}/evaluate's body, checked: the request the run folder will hold."""
    if (problem := benchmark_problem(body.tasks, body.allow_code_execution, settings)) is not None:
        raise RequestInvalid([FieldError(("tasks",), problem)])
    return body.model_dump()
