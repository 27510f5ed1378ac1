"""A new run's data, checked before any run folder is made: each file read (its format, every
record), the split, and for instruction data the model's chat template and a trainable example.
Each problem is located at the field that named the file."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from app.errors import FieldError
from app.settings import Settings
from entrodrop.config import DataFormatChoice, RunConfig
from entrodrop.data import ChatData, DataError, UserData, all_examples, is_builtin, split_dataset
from entrodrop.data.check import check_chat_data
from entrodrop.models import ModelLoadError
from entrodrop.sandbox import limits_for, run_isolated

FILE_FIELDS = ("dataset", "heldout_dataset", "general_dataset")


def _read(config: RunConfig, settings: Settings) -> tuple[dict[str, UserData], list[FieldError]]:
    read: dict[str, UserData] = {}
    errors = []
    for field in FILE_FIELDS:
        spec = getattr(config, field)
        if spec is None:
            continue
        fmt = "auto" if field == "general_dataset" else config.data_format
        try:
            read[field] = read_data(spec, fmt, settings.text_budget)
        except DataError as exc:  # DataTooLarge too: here a field's error like any other
            errors.append(FieldError((field,), str(exc)))
    return read, errors


def read_data(spec: str, data_format: DataFormatChoice, budget: int | None) -> UserData:
    """A dataset's examples; a user's file is read in a memory-limited child (a file may lie
    about its size: entrodrop.sandbox), a built-in corpus here."""
    read = partial(all_examples, spec, None, budget, data_format)
    if is_builtin(spec):
        return read()
    return run_isolated(read, name=Path(spec).name, limits=limits_for(budget))


def data_errors(config: RunConfig, settings: Settings) -> list[FieldError]:
    """Every file of the run read and checked as training would; [] when the data can train."""
    read, errors = _read(config, settings)
    if errors:
        return errors
    where = ("heldout_dataset",) if config.heldout_dataset else ("dataset",)
    try:
        split = split_dataset(read["dataset"], read.get("heldout_dataset"))
    except DataError as exc:
        return [FieldError(where, str(exc))]
    if not isinstance(split, ChatData):
        return []
    try:
        check_chat_data(split, config, settings.runs_path)
    except ModelLoadError as exc:
        return [FieldError(("model",), str(exc))]
    except DataError as exc:
        return [FieldError(("dataset",), str(exc))]
    return []
