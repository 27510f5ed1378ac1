"""The one error map: domain exceptions carry their HTTP status, one handler renders them all.

Every 4xx/5xx answer of the app (ours, FastAPI's validation errors, Starlette's 404/405) has
the body `{"detail": "<one readable sentence>", "errors": [...]}` with `errors` only where a
request had per-field problems.
"""

from __future__ import annotations

import errno
import logging
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
        elif err.get("type") == "missing":
            parts.append(f"'{'.'.join(loc)}' is required")
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


def _os_error(exc: OSError) -> JSONResponse:
    # A full or vanished disk after start-up: say so plainly instead of a bare 500.
    full = exc.errno == errno.ENOSPC
    detail = f"the server could not write its files: {exc.strerror or exc}"
    return error_response(507 if full else 500, detail)


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """Render any exception as the house error body with its status."""
    if isinstance(exc, AppError):
        return error_response(exc.status_code, exc.detail, exc.errors, exc.headers())
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        # `detail` is a sentence; `errors` keeps pydantic's list (made JSON-safe) for tools.
        safe = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        return error_response(422, readable_errors(errors), safe)
    if isinstance(exc, StarletteHTTPException):
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, str(exc.detail), headers=headers)
    for kind, status in LIBRARY_STATUS.items():
        if isinstance(exc, kind):
            return error_response(status, str(exc))
    if isinstance(exc, OSError):
        return _os_error(exc)
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
        Exception,
    )
    for kind in kinds:
        app.add_exception_handler(kind, handle_error)
