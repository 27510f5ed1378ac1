"""Builds the FastAPI app from injected settings: routers, templates, static files, services."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app.settings import Settings
from app.storage import check_database

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


def plotly_js_path() -> Path:
    """Plotly's own minified JS from the installed plotly package: pages work offline."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class HomeUnusable(RuntimeError):
    """The home folder cannot be created or written (read-only, not a folder, disk full)."""


def check_home(home: Path) -> None:
    """Create the home folder if needed and prove it writable, with a message for a person."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise HomeUnusable(
            f"the home folder {home} is not writable ({exc.strerror or exc}); "
            "set ENTRODROP_HOME to a folder this user can write"
        ) from exc


def create_app(settings: Settings | None = None) -> FastAPI:
    """The dashboard app. Nothing heavy happens here: services start in the lifespan.

    Raises HomeUnusable before anything starts when the home folder cannot be written.
    """
    settings = settings or Settings()
    check_home(settings.home)
    check_database(settings.db_path)
    from app.home_lock import HomeLockService
    from app.limits import BodyLimitMiddleware
    from app.request_guard import RequestGuard
    from app.routes import health, inspect, runs
    from app.security import redact_access_log

    # The home's lock is the first service: taken before the runner's start() recovers runs.
    services: list[Any] = [HomeLockService(settings.home, settings.host, settings.port)]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for service in services:
            await service.start()
        try:
            yield
        finally:
            for service in reversed(services):
                await service.stop()

    app = FastAPI(
        title="EntroDrop Studio",
        description="Inspect per-token entropy, preview EntroDrop's drops, and run fine-tunes.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.exception_handler(OSError)
    async def storage_fault(request: Any, exc: OSError) -> JSONResponse:
        # A full or vanished disk after start-up: say so plainly instead of a bare 500.
        full = exc.errno == errno.ENOSPC
        return JSONResponse(
            status_code=507 if full else 500,
            content={"detail": f"the server could not write its files: {exc.strerror or exc}"},
        )

    app.state.services = services
    app.state.templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="application/javascript")

    # Bodies: the longest text the Inspect API takes (characters of up to 4 bytes) plus its JSON;
    # uploads: their own cap plus the multipart framing. Larger ones are refused unread.
    text_cap = settings.max_score_tokens * inspect.MAX_CHARS_PER_TOKEN * 4 + 64_000
    upload_cap = settings.max_upload_bytes + runs.UPLOAD_FRAMING
    app.add_middleware(BodyLimitMiddleware, default_cap=text_cap, caps={"/api/uploads": upload_cap})
    if settings.token:
        from app.security import TokenMiddleware

        app.add_middleware(TokenMiddleware, token=settings.token)
    app.add_middleware(RequestGuard, settings=settings)  # outermost: Host and Origin first
    redact_access_log()

    # Each module registers its routes and the services it needs started and stopped.
    health.setup(app, settings)
    inspect.setup(app, settings)
    runs.setup(app, settings)
    return app
