"""Fine-tune runs: the new-run form, runs list, run page, compare page and their JSON twins."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from app import run_files as rf
from app import run_views as views
from app.jobs import JobRunner, Launcher, RunConflict, RunNotFound, headless_commands
from app.model_service import ModelNotReady, QueueFull
from app.run_forms import RUN_ID, RequestInvalid, new_run_form, parse_request, save_upload
from app.run_preview import PreviewService
from app.settings import Settings
from app.storage import ACTIVE, Storage
from entrodrop.config import RunConfig
from entrodrop.data import DataError
from entrodrop.data import DataTooLarge as TooLarge
from entrodrop.models import ModelLoadError

# A stream ends after this and EventSource reconnects (with Last-Event-ID): a server that is
# shutting down waits for open responses, so no stream may hold it for long.
SSE_LIFETIME_S = 15.0
SSE_INTERVAL_S = 1.0
MAX_ROW_ID = 2**63 - 1  # SQLite's largest INTEGER: a larger cursor is an error, not an overflow
# Multipart framing around an uploaded file, on top of its own cap (app.limits caps the body).
UPLOAD_FRAMING = 64_000


class RunCreate(RunConfig):
    """Body of POST /api/runs: a run config plus how to launch it and an optional baseline twin."""

    launcher: Launcher | None = None
    compare_with: Literal["none", "random"] | None = None


def _inline_schema(model: type[RunConfig]) -> dict[str, Any]:
    # OpenAPI resolves $ref against components, not a schema's own $defs: inline them.
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[no-any-return]


def _body_doc(model: type[RunConfig]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_schema(model)}},
        }
    }


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _invalid(exc: RequestInvalid) -> JSONResponse:
    return _error(422, exc.detail, errors=[e.to_dict() for e in exc.errors])


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except (ValueError, RecursionError) as exc:  # not JSON, or nested too deep to parse
        raise RequestInvalid([]) from exc


def _guard(fn: Callable[[], Any]) -> Any:
    """Run a data function, mapping the runner's errors to JSON errors."""
    try:
        return fn()
    except RunNotFound as exc:
        return _error(404, f"no run {exc.args[0]!r}")
    except RunConflict as exc:
        return _error(409, str(exc))


def setup(app: FastAPI, settings: Settings) -> None:
    """Register the runs pages and API; the job runner and preview model are app services."""
    storage = Storage(settings.db_path)
    runner = JobRunner(settings, storage)
    preview = PreviewService(
        settings.runs_path, model_service=lambda: getattr(app.state, "model_service", None)
    )
    app.state.services.extend([runner, preview])
    app.state.jobs = runner
    app.state.run_preview = preview
    router = APIRouter()

    def jobs(request: Request) -> JobRunner:
        return request.app.state.jobs  # type: ignore[no-any-return]

    def check_id(run_id: str) -> None:
        if not RUN_ID.match(run_id):
            raise RunNotFound(run_id)

    def page(request: Request, template: str, nav: str, data: Any, status: int = 200) -> Response:
        return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
            request, template, {"nav": nav, "data": data}, status_code=status
        )

    def not_found_page(request: Request, run_id: str) -> Response:
        return page(request, "runs_error.html", "runs", {"message": f"No run {run_id!r}."}, 404)

    def parse_ids(runs: str) -> list[str]:
        ids = [r for r in (p.strip() for p in runs.split(",")) if r]
        if not ids:
            raise RequestInvalid([])
        for run_id in ids:
            check_id(run_id)
        return list(dict.fromkeys(ids))[: views.MAX_COMPARE]

    # ------------------------------------------------------------ pages

    @router.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs_page(request: Request) -> Response:
        return page(request, "runs_list.html", "runs", views.runs_list(jobs(request)))

    @router.get("/runs/new", response_class=HTMLResponse, include_in_schema=False)
    def new_run_page(
        request: Request, like: str | None = None, model: str | None = None
    ) -> Response:
        data = new_run_form(settings, storage, like=like, model=model)
        return page(request, "run_new.html", "new", data)

    @router.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(request: Request, run_id: str) -> Response:
        try:
            check_id(run_id)
            data = views.run_detail(jobs(request), run_id)
        except RunNotFound:
            return not_found_page(request, run_id)
        return page(request, "run_detail.html", "runs", data)

    @router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(request: Request, runs: str = "") -> Response:
        try:
            data = views.compare(jobs(request), parse_ids(runs))
        except RunNotFound as exc:
            return not_found_page(request, str(exc.args[0]))
        except RequestInvalid:
            return page(request, "runs_error.html", "runs", {"message": "Pick runs to compare."})
        return page(request, "compare.html", "runs", data)

    # ------------------------------------------------------------ API: creating runs

    @router.get("/api/runs/form", tags=["runs"], summary="What the new-run form offers")
    def api_form(like: str | None = None, model: str | None = None) -> Any:
        return new_run_form(settings, storage, like=like, model=model)

    @router.post(
        "/api/runs/check",
        tags=["runs"],
        summary="Validate a run config; the config JSON and CLI that reproduce it",
        openapi_extra=_body_doc(RunCreate),
    )
    async def api_check(request: Request) -> Any:
        try:
            req = parse_request(await _json_body(request), settings, storage)
        except RequestInvalid as exc:
            return _invalid(exc if exc.errors else RequestInvalid(_not_json()))
        configs = [c.model_dump(mode="json") for c in req.configs()]
        return {
            "configs": configs,
            "config_json": json.dumps(configs[0], indent=2),
            "launcher": req.launcher.model_dump(),
            "commands": headless_commands(req.launcher),
        }

    @router.post(
        "/api/runs/preview",
        tags=["runs"],
        summary="The first training batch and the tokens dropped at s = 0, 0.5 and 1",
        openapi_extra=_body_doc(RunCreate),
    )
    async def api_preview(request: Request) -> Any:
        try:
            req = parse_request(await _json_body(request), settings, storage)
            return await preview.preview(req.config)
        except RequestInvalid as exc:
            return _invalid(exc if exc.errors else RequestInvalid(_not_json()))
        except (ModelNotReady, QueueFull) as exc:
            return _error(503, str(exc))
        except ModelLoadError as exc:
            return _error(
                422, f"model: {exc}", errors=[{"loc": ["model"], "field": "model", "msg": str(exc)}]
            )
        except DataError as exc:
            return _error(
                422,
                f"dataset: {exc}",
                errors=[{"loc": ["dataset"], "field": "dataset", "msg": str(exc)}],
            )

    @router.post(
        "/api/uploads", tags=["runs"], summary="Upload a dataset file (.txt, .jsonl, .parquet)"
    )
    async def api_upload(request: Request, file: UploadFile = File(...)) -> Any:
        declared = int(request.headers.get("content-length") or 0)
        if declared > settings.max_upload_bytes + UPLOAD_FRAMING:
            return _error(
                413, f"the file is larger than the {settings.max_upload_bytes} bytes allowed"
            )
        raw = await file.read(settings.max_upload_bytes + 1)
        try:
            saved = await asyncio.to_thread(save_upload, raw, file.filename or "", settings)
        except DataError as exc:
            code = 413 if len(raw) > settings.max_upload_bytes or isinstance(exc, TooLarge) else 422
            return _error(code, str(exc))
        return JSONResponse(saved, status_code=201)

    @router.post(
        "/api/runs",
        tags=["runs"],
        status_code=201,
        summary="Queue a run (and optionally its matched baseline); missing fields take defaults",
        openapi_extra=_body_doc(RunCreate),
    )
    async def api_create(request: Request) -> Any:
        try:
            req = parse_request(await _json_body(request), settings, storage)
        except RequestInvalid as exc:
            return _invalid(exc if exc.errors else RequestInvalid(_not_json()))
        runner = jobs(request)
        ids = [runner.submit(config, req.launcher).id for config in req.configs()]
        group = ",".join(ids) if len(ids) > 1 else None
        if group:
            # A matched pair: the group id is the compare page's query, so each run links to it.
            for run_id in ids:
                storage.update_run(run_id, group_id=group)
        url = f"/compare?runs={group}" if group else f"/runs/{ids[0]}"
        return JSONResponse({"id": ids[0], "ids": ids, "url": url}, status_code=201)

    # ------------------------------------------------------------ API: reading and controlling

    @router.get("/api/runs", tags=["runs"], summary="All runs, newest first")
    def api_runs(request: Request) -> Any:
        return views.runs_list(jobs(request))

    def detail(request: Request, run_id: str, action: str | None = None) -> Any:
        def build() -> Any:
            check_id(run_id)
            runner = jobs(request)
            if action == "cancel":
                runner.cancel(run_id)
            elif action == "resume":
                runner.resume(run_id)
            return views.run_detail(runner, run_id)

        return _guard(build)

    @router.get("/api/runs/{run_id}", tags=["runs"], summary="One run: status, progress, config")
    def api_run(request: Request, run_id: str) -> Any:
        return detail(request, run_id)

    @router.get(
        "/api/runs/{run_id}/metrics", tags=["runs"], summary="Metric rows: step, name, value"
    )
    def api_metrics(
        request: Request,
        run_id: str,
        name: list[str] | None = Query(None, description="Only these metric names"),
        after: int = Query(0, ge=0, le=MAX_ROW_ID, description="Only rows with an id above this"),
    ) -> Any:
        def rows() -> Any:
            check_id(run_id)
            jobs(request).get(run_id)
            return storage.metrics(run_id, after_id=after, names=name)

        return _guard(rows)

    @router.get("/api/runs/{run_id}/metrics.csv", tags=["runs"], summary="Metrics as CSV")
    def api_metrics_csv(request: Request, run_id: str) -> Any:
        def csv_response() -> Response:
            check_id(run_id)
            body = views.metrics_csv(jobs(request), run_id)
            headers = {"Content-Disposition": f'attachment; filename="{run_id}-metrics.csv"'}
            return Response(body, media_type="text/csv; charset=utf-8", headers=headers)

        return _guard(csv_response)

    @router.post("/api/runs/{run_id}/cancel", tags=["runs"], summary="Stop a queued or running run")
    async def api_cancel(request: Request, run_id: str) -> Any:
        return detail(request, run_id, "cancel")

    @router.post(
        "/api/runs/{run_id}/resume", tags=["runs"], summary="Continue from the last checkpoint"
    )
    async def api_resume(request: Request, run_id: str) -> Any:
        return detail(request, run_id, "resume")

    @router.get(
        "/api/runs/{run_id}/events", tags=["runs"], summary="Live updates (server-sent events)"
    )
    async def api_events(
        request: Request, run_id: str, after: int = Query(0, ge=0, le=MAX_ROW_ID)
    ) -> Any:
        found = detail(request, run_id)
        if isinstance(found, Response):
            return found
        last = request.headers.get("last-event-id", "")
        # Only a hint: ASCII digits in range, else the query's cursor ("²".isdigit() is True).
        valid = last.isascii() and last.isdigit() and int(last) <= MAX_ROW_ID
        start_id = int(last) if valid else after
        return StreamingResponse(
            _events(request, jobs(request), run_id, start_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/api/compare", tags=["runs"], summary="Runs side by side: curves and differences")
    def api_compare(
        request: Request, runs: str = Query(..., description="Run ids, comma-separated")
    ) -> Any:
        try:
            return _guard(lambda: views.compare(jobs(request), parse_ids(runs)))
        except RequestInvalid:
            return _error(422, "runs: give one or more run ids, comma-separated")

    app.include_router(router)


def _not_json() -> list[Any]:
    from app.run_forms import FieldError

    return [FieldError((), "the body must be a JSON object (a run config)")]


def _sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


async def _events(
    request: Request, runner: JobRunner, run_id: str, after: int
) -> AsyncIterator[str]:
    """metrics (new rows), status (when it changes), log (when it grows); `end` once finished."""
    storage: Storage = runner.storage
    started = time.monotonic()
    last_status = last_log = None
    yield "retry: 500\n\n"
    while storage.is_open:
        run = storage.get_run(run_id)
        if run is None:
            break
        rows = storage.metrics(run_id, after_id=after)
        if rows:
            after = max(r["id"] for r in rows)
            yield _sse("metrics", rows, after)
        status = views.run_summary(runner, run)
        status_key = json.dumps(
            {k: v for k, v in status.items() if k not in ("eta_s", "elapsed_s")}
        )
        if status_key != last_status:
            last_status = status_key
            yield _sse("status", status)
        run_dir = runner.run_dir(run_id)
        log = rf.tail_lines(run_dir / rf.LOG, 60)
        output = rf.tail_lines(run_dir / rf.OUTPUT, 40) if run.status == "failed" else []
        if (log, output) != last_log:
            last_log = (log, output)
            yield _sse("log", {"log": log, "output": output})
        if run.status not in ACTIVE:
            yield _sse("end", {"status": run.status})
            return
        if time.monotonic() - started > SSE_LIFETIME_S or await request.is_disconnected():
            return
        await asyncio.sleep(SSE_INTERVAL_S)
