"""Health of the server and its model (GET /api/health), and the app-wide shape of 422 errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.inspect_schemas import HealthOut
from app.model_service import ModelService, get_service
from app.settings import Settings


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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    # `detail` is a sentence (the house error shape); `errors` keeps pydantic's list for tools.
    safe = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors
    ]
    return JSONResponse(
        status_code=422, content={"detail": readable_errors(errors), "errors": safe}
    )


def health(service: ModelService) -> dict[str, Any]:
    """The data of GET /api/health (and the page's model badge)."""
    status = service.status()
    return {
        "status": "ok",
        "model_loaded": status["model_loaded"],
        "model": status["model"],
        "spec": status["spec"],
        "state": status["state"],
        "error": status["error"],
    }


def setup(app: FastAPI, settings: Settings) -> None:
    """Create the model service (started in the lifespan) and register /api/health."""
    service = ModelService(settings)
    app.state.model_service = service
    app.state.services.append(service)
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.get("/api/health", response_model=HealthOut, tags=["health"])
    async def api_health(request: Request) -> dict[str, Any]:
        """Server status; `model_loaded` turns true once the background load has finished."""
        return health(get_service(request.app))
