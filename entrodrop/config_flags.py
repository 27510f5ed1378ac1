"""Command-line flags generated from a pydantic model's fields, so every config field is a flag.

``@with_model_flags(RunConfig)`` adds one keyword option per field to a Typer command (nested
models get a prefix: ``--entrodrop-drop-mode``); the command receives them in ``**flags`` and
turns the ones given into a nested override dict with :func:`flag_overrides`. Help text and the
default shown come from the model, so a new RunConfig field is a new flag with nothing retyped.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

F = TypeVar("F", bound=Callable[..., Any])
SIMPLE = (bool, int, float, str)


@dataclass(frozen=True)
class Flag:
    """One generated option: the field's path in the model and how to read the given value."""

    path: tuple[str, ...]
    parameter: inspect.Parameter
    json_value: bool  # lists and objects are given as JSON text


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _help(field: FieldInfo, json_value: bool) -> str:
    text = (field.description or "").rstrip(".")
    default = "none" if field.default is None else field.default
    if not field.is_required() and field.default_factory is None:
        text += f" (default: {default})" if text else f"Default: {default}."
    return text + (" (JSON)" if json_value else "")


def model_flags(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[Flag]:
    """One Flag per leaf field of the model, nested models flattened with their field name."""
    flags: list[Flag] = []
    for name, field in model.model_fields.items():
        annotation = _without_none(field.annotation)
        path = (*prefix, name)
        if _is_model(annotation):
            flags += model_flags(annotation, path)
            continue
        simple = annotation in SIMPLE or get_origin(annotation) is Literal
        kind = annotation if simple else str
        flag = "-".join(path).replace("_", "-")
        declared = f"--{flag}/--no-{flag}" if annotation is bool else f"--{flag}"
        option = typer.Option(declared, help=_help(field, not simple))
        parameter = inspect.Parameter(
            "__".join(path),
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[kind | None, option],  # type: ignore[valid-type]
        )
        flags.append(Flag(path, parameter, json_value=not simple))
    return flags


def with_model_flags(model: type[BaseModel]) -> Callable[[F], F]:
    """Give a Typer command (ending in ``**flags``) one option per field of ``model``."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
        taken = {p.name for p in own}
        extra = [f.parameter for f in model_flags(model) if f.parameter.name not in taken]
        fn.__signature__ = signature.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
        return fn

    return decorate


def flag_overrides(model: type[BaseModel], given: dict[str, Any]) -> dict[str, Any]:
    """The flags that were given (not None) as a nested dict to merge over the config file's."""
    out: dict[str, Any] = {}
    for flag in model_flags(model):
        value = given.get(flag.parameter.name)
        if value is None:
            continue
        if flag.json_value:
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise typer.BadParameter(
                    f"--{'-'.join(flag.path)}: not valid JSON ({exc})".replace("_", "-")
                ) from None
        node = out
        for key in flag.path[:-1]:
            node = node.setdefault(key, {})
        node[flag.path[-1]] = value
    return out


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """base with overrides applied key by key, nested dicts merged rather than replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
