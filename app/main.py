"""Builds the FastAPI app from injected settings: every service, the routers, templates, static."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app import errors, health
from app.headers import SecurityHeaders
from app.home_lock import HomeLockService, check_home
from app.inspect import routes as inspect_routes
from app.leftovers import LeftoverCleaner
from app.limits import BodyLimitMiddleware
from app.model_service import ModelService
from app.request_guard import RequestGuard
from app.runs import routes as runs_routes
from app.runs.preview import PreviewService
from app.runs.runner import JobRunner
from app.runs.storage import Storage, check_database
from app.runs.uploads import UPLOAD_FRAMING
from app.security import TokenMiddleware, redact_access_log
from app.sessions import Sessions
from app.sessions import router as sessions_router
from app.settings import Settings
from app.studies import routes as studies_routes
from app.studies.store import StudyStore
from app.tokens import routes as tokens_routes

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"


def plotly_js_path() -> Path:
    """Plotly's own minified JS from the installed plotly package: pages work offline."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def build_services(app: FastAPI, settings: Settings) -> list[Any]:
    """Every service, kept on app.state for app.deps; returned in start order."""
    model_service = ModelService(settings)
    storage = Storage(settings.db_path)
    runner = JobRunner(settings, storage)
    # The runs page's preview shares the Inspect page's model cache and worker thread.
    preview = PreviewService(model_service=lambda: model_service)
    app.state.model_service = model_service
    app.state.storage = storage
    app.state.jobs = runner
    app.state.run_preview = preview
    app.state.studies = StudyStore(settings)
    # Leftovers of a full disk go before the runner's start() can schedule anything.
    return [model_service, LeftoverCleaner(settings, storage), runner]


def add_limits(app: FastAPI, settings: Settings) -> None:
    """Body caps for every request, and the access token when the server has one."""
    # Bodies: the longest text the Inspect API takes (characters of up to 4 bytes) plus its JSON;
    # uploads: their own cap plus the multipart framing. Larger ones are refused unread.
    text_cap = settings.max_score_tokens * inspect_routes.MAX_CHARS_PER_TOKEN * 4 + 64_000
    upload_cap = settings.max_upload_bytes + UPLOAD_FRAMING
    caps = {"/api/uploads": upload_cap, "/api/text-file": upload_cap}
    app.add_middleware(BodyLimitMiddleware, default_cap=text_cap, caps=caps)
    if settings.token:
        app.state.sessions = Sessions(settings.session_lifetime_s)
        app.add_middleware(TokenMiddleware, token=settings.token, sessions=app.state.sessions)


VENDOR = "/static/vendor"
FAVICON = "favicon.ico"  # under static/common/
# The docs pages may load nothing from another host (static/vendor/README.md: the one edit to
# ReDoc's bundle, its CDN logo); the policy holds it to that. Blob workers: ReDoc's search.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; font-src 'self' data:; "
    "connect-src 'self'"
)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def add_api_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their scripts, styles and icons from static/vendor/:
    no request leaves this server, so both work offline."""
    icon = f"{VENDOR}/swagger-ui/favicon-32x32.png"
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} · API",
                swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=icon,
                # No badge from the public validator service: it would be a request to another host.
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} · API",
                redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
                redoc_favicon_url=icon,
                with_google_fonts=False,
            )
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The dashboard app. Nothing heavy happens here: services start in the lifespan.

    Raises HomeUnusable before anything starts when the home folder cannot be written.
    """
    settings = settings or Settings()
    check_home(settings.home)
    check_database(settings.db_path)
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
        docs_url=None,  # served by add_api_docs, from local files
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    services.extend(build_services(app, settings))
    app.state.services = services
    errors.install(app)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="application/javascript")

    # Browsers ask for /favicon.ico whatever the pages link; both get the same icon.
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "common" / FAVICON, media_type="image/x-icon")

    add_api_docs(app)
    add_limits(app, settings)
    app.add_middleware(RequestGuard, settings=settings)  # Host and Origin first
    app.add_middleware(SecurityHeaders)  # outermost: every answer, refusals and login included
    redact_access_log()
    for router in (health.router, inspect_routes.router, runs_routes.router, runs_routes.api):
        app.include_router(router)
    app.include_router(studies_routes.router)
    app.include_router(studies_routes.api)
    app.include_router(tokens_routes.api)
    app.include_router(sessions_router)
    return app
