"""The one error map: domain exceptions carry their HTTP status, one handler renders them all.

Every 4xx/5xx answer of the app (ours, FastAPI's validation errors, Starlette's 404/405) has
the body `{"detail": "<one readable sentence>", "errors": [...]}` with `errors` only where a
request had per-field problems.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from entrodrop.data import DataError, DataTooLarge
from entrodrop.generation import GenerationError
from entrodrop.models import ModelLoadError
from entrodrop.paths import PathError
from entrodrop.tokens import NoTokenRecord, TokenRecordError

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class AppError(Exception):
    """A domain error that knows its HTTP status (datasette's Base400 idea)."""

    status_code = 400

    def __init__(
        self,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else None


class RunNotFound(AppError):
    """No run with that id."""

    status_code = 404

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r}")
        self.run_id = run_id


class RunConflict(AppError):
    """The run is not in a state that allows the action (e.g. cancelling a finished run)."""

    status_code = 409


class ModelNotReady(AppError):
    """The server's model is still loading (or failed to): try again after `retry_after`."""

    status_code = 503

    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(message, retry_after=retry_after)


class QueueFull(AppError):
    """More scoring jobs are waiting than settings.score_queue_size allows."""

    status_code = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)


class TooManyTokens(AppError):
    """A text (or entropy list) longer than settings.max_score_tokens."""

    status_code = 413


class PayloadTooLarge(AppError):
    """An upload over settings.max_upload_bytes."""

    status_code = 413


class InsufficientStorage(AppError):
    """Not enough free disk for what the request would write (an export, ...)."""

    status_code = 507


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


def field_errors(errors: Sequence[Any], prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    """Pydantic's error list (a ValidationError's, or FastAPI's for a request) as FieldErrors:
    the one converter. FastAPI's `body` location is dropped (the form names fields, not bodies)."""
    out = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        if loc[:1] == ("body",):
            loc = loc[1:]
        loc = prefix + loc
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        # The model-level check about thresholds belongs beside the threshold field.
        if loc[-1:] == ("entrodrop",) and "threshold" in msg:
            loc = (*loc, "threshold")
        out.append(FieldError(loc, msg))
    return out


class RequestInvalid(AppError):
    """A request with per-field errors; `detail` is one readable line for people and clients."""

    status_code = 422

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        self.field_errors = errors
        text = detail or "; ".join(f"{e.field}: {e.msg}" for e in errors) or "invalid request"
        super().__init__(text, errors=[e.to_dict() for e in errors])


# Library errors (the library knows no HTTP): a bad model spec or dataset is the caller's input.
# The first match wins: DataTooLarge (over the decoded-text budget) is a DataError answered 413.
LIBRARY_STATUS: dict[type[Exception], int] = {
    DataTooLarge: 413,
    ModelLoadError: 422,
    DataError: 422,
    NoTokenRecord: 404,  # a run without a token record (yet)
    TokenRecordError: 422,  # a step not recorded, runs that follow different tokens
    GenerationError: 422,
    PathError: 422,
}


def readable_errors(errors: Sequence[Any]) -> str:
    """Pydantic's error list as one sentence a person can act on."""
    parts = []
    for err in errors:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path")]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx", {}).get("error", "")
            parts.append(f"the request body is not valid JSON ({ctx or msg})")
        elif err.get("type") in ("model_attributes_type", "dict_type") and not loc:
            parts.append(f"expected a JSON object, not {type(err.get('input')).__name__}")
        elif err.get("type") == "missing":
            parts.append(f"'{'.'.join(loc)}' is required" if loc else "a JSON body is required")
        elif err.get("type") == "extra_forbidden":
            parts.append(f"unknown field '{'.'.join(loc)}'")
        elif err.get("type") == "value_error" and loc and loc[-1] in msg:
            parts.append(msg)  # our own validators already name the field
        else:
            parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def error_response(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The house error shape; `errors` only when there are per-field problems."""
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(
    scope: Any,
    receive: Any,
    send: Any,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer a request from a pure ASGI middleware with the house error body (the same
    renderer as every route's errors)."""
    await error_response(status, detail, headers=headers)(scope, receive, send)


DISK_FULL = "the disk is full"


def _os_error(exc: OSError) -> JSONResponse:
    # A full or vanished disk after start-up: say so plainly instead of a bare 500.
    if exc.errno == errno.ENOSPC:
        detail = f"the server could not write its files: {DISK_FULL} ({exc.strerror or exc})"
        return error_response(507, detail)
    return error_response(500, f"the server could not write its files: {exc.strerror or exc}")


def is_disk_full(exc: sqlite3.Error) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full"): a write that found no room."""
    full = getattr(sqlite3, "SQLITE_FULL", 13)
    return getattr(exc, "sqlite_errorcode", None) == full or "disk is full" in str(exc)


def _database_error(request: Request, exc: sqlite3.Error) -> JSONResponse:
    if is_disk_full(exc):
        return error_response(507, f"the server could not write its database: {DISK_FULL}")
    log.exception("database error on %s", request.url.path, exc_info=exc)
    return error_response(500, "internal server error")


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """Render any exception as the house error body with its status."""
    if isinstance(exc, AppError):
        return error_response(exc.status_code, exc.detail, exc.errors, exc.headers())
    if isinstance(exc, RequestValidationError):
        invalid = RequestInvalid(field_errors(exc.errors()), readable_errors(exc.errors()))
        return error_response(422, invalid.detail, invalid.errors)
    if isinstance(exc, StarletteHTTPException):
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, str(exc.detail), headers=headers)
    for kind, status in LIBRARY_STATUS.items():
        if isinstance(exc, kind):
            return error_response(status, str(exc))
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, sqlite3.Error):
        return _database_error(request, exc)
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(500, "internal server error")


def install(app: FastAPI) -> None:
    """Route every error kind the app can meet through `handle_error`."""
    kinds: tuple[type[Exception], ...] = (
        AppError,
        RequestValidationError,
        StarletteHTTPException,
        *LIBRARY_STATUS,
        OSError,
        sqlite3.Error,
        Exception,
    )
    for kind in kinds:
        app.add_exception_handler(kind, handle_error)
