"""Fine-tune runs: the new-run form, runs list, run page, compare page and their JSON twins.

Routes validate, call a data function (app.runs.views, .form, .validate) and render; errors are
domain exceptions that carry their status (app.errors).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel

from app.deps import PreviewDep, RunnerDep, SettingsDep, StorageDep, TemplatesDep
from app.errors import ErrorBody, FieldError, RequestInvalid, RunNotFound
from app.runs import cost, events, views
from app.runs.data_check import read_data
from app.runs.form import new_run_form
from app.runs.schemas import (
    DataReport,
    EvaluateRequest,
    MetricRow,
    RunCheck,
    RunCompare,
    RunCreate,
    RunCreated,
    RunDeleted,
    RunDetail,
    RunForm,
    RunPatch,
    RunPreview,
    RunsPublic,
    UploadPublic,
)
from app.runs.uploads import UPLOAD_FRAMING, save_upload, too_large
from app.runs.validate import RunRequest, check_evaluation, check_request, queue_room
from entrodrop import runfolder as rf
from entrodrop.config import DataFormatChoice
from entrodrop.data import DataError
from entrodrop.data.check import run_data_report
from entrodrop.models import ModelLoadError

router = APIRouter()
api = APIRouter(prefix="/api", tags=["runs"])
MAX_ROW_ID = events.MAX_ROW_ID


def _error_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


def checked_id(run_id: str) -> str:
    """A run id of the right shape; any other is a run that does not exist."""
    if not rf.is_run_id(run_id):
        raise RunNotFound(run_id)
    return run_id


RunId = Annotated[str, Depends(checked_id)]


async def run_request(body: RunCreate, settings: SettingsDep, storage: StorageDep) -> RunRequest:
    """A new-run body (FastAPI validated its shape) through the domain checks (app.runs.validate)."""
    # In a thread: a hub id's reachability probe may take a second or two.
    return await asyncio.to_thread(check_request, body, settings, storage)


RunRequestDep = Annotated[RunRequest, Depends(run_request)]


def parse_ids(runs: str) -> list[str]:
    """Run ids from `a,b,c`: at least one, each well-formed, no repeats, at most MAX_COMPARE."""
    ids = [r for r in (p.strip() for p in runs.split(",")) if r]
    if not ids:
        raise RequestInvalid([], "runs: give one or more run ids, comma-separated")
    return list(dict.fromkeys(checked_id(i) for i in ids))[: views.MAX_COMPARE]


# ------------------------------------------------------------ pages


def _page(
    request: Request, templates: TemplatesDep, name: str, nav: str, data: Any, status: int = 200
) -> Response:
    # The page gets exactly what its JSON twin answers: the response model as JSON data.
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    context = {"nav": nav, "data": data}
    return templates.TemplateResponse(request, name, context, status_code=status)


def _error_page(request: Request, templates: TemplatesDep, message: str, status: int) -> Response:
    return _page(request, templates, "runs/error.html", "runs", {"message": message}, status)


@router.get("/runs", response_class=HTMLResponse, include_in_schema=False)
def runs_page(request: Request, runner: RunnerDep, templates: TemplatesDep) -> Response:
    return _page(request, templates, "runs/list.html", "runs", views.runs_list(runner))


@router.get("/runs/new", response_class=HTMLResponse, include_in_schema=False)
def new_run_page(
    request: Request,
    settings: SettingsDep,
    storage: StorageDep,
    templates: TemplatesDep,
    like: str | None = None,
    model: str | None = None,
) -> Response:
    data = new_run_form(settings, storage, like=like, model=model)
    return _page(request, templates, "runs/new.html", "new", data)


@router.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def run_page(request: Request, run_id: str, runner: RunnerDep, templates: TemplatesDep) -> Response:
    try:
        data = views.run_detail(runner, checked_id(run_id))
    except RunNotFound:
        return _error_page(request, templates, f"No run {run_id!r}.", 404)
    return _page(request, templates, "runs/detail.html", "runs", data)


@router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
def compare_page(
    request: Request, runner: RunnerDep, templates: TemplatesDep, runs: str = ""
) -> Response:
    try:
        data = views.compare(runner, parse_ids(runs))
    except RunNotFound as exc:
        return _error_page(request, templates, f"No run {exc.run_id!r}.", 404)
    except RequestInvalid:
        return _error_page(request, templates, "Pick runs to compare.", 200)
    return _page(request, templates, "runs/compare.html", "runs", data)


# ------------------------------------------------------------ API: creating runs


@api.get("/runs/form", response_model=RunForm, summary="What the new-run form offers")
def api_form(
    settings: SettingsDep, storage: StorageDep, like: str | None = None, model: str | None = None
) -> RunForm:
    return new_run_form(settings, storage, like=like, model=model)


@api.post(
    "/runs/check",
    response_model=RunCheck,
    responses=_error_doc(422),
    summary="Validate a run config; the config JSON and CLI that reproduce it",
)
async def api_check(req: RunRequestDep, settings: SettingsDep) -> RunCheck:
    return await asyncio.to_thread(views.run_check, req, settings)


@api.post(
    "/runs/preview",
    response_model=RunPreview,
    responses=_error_doc(422, 503),
    summary="The first training batch and the tokens dropped at s = 0, 0.5 and 1",
)
async def api_preview(req: RunRequestDep, preview: PreviewDep) -> RunPreview:
    try:
        return await preview.preview(req.config)
    except ModelLoadError as exc:  # located at the form's field, like any other field error
        raise RequestInvalid([FieldError(("model",), str(exc))]) from exc
    except DataError as exc:
        raise RequestInvalid([FieldError(("dataset",), str(exc))]) from exc


@api.post(
    "/runs/data",
    response_model=DataReport,
    responses=_error_doc(422),
    summary="What the run's dataset gives its model: format, examples, tokens, trained tokens",
)
async def api_data(req: RunRequestDep, settings: SettingsDep) -> Any:
    config, budget = req.config, settings.text_budget
    try:
        examples = await asyncio.to_thread(read_data, config.dataset, config.data_format, budget)
        return await asyncio.to_thread(
            run_data_report, config, settings.runs_path, budget, examples
        )
    except ModelLoadError as exc:
        raise RequestInvalid([FieldError(("model",), str(exc))]) from exc


@api.post(
    "/uploads",
    status_code=201,
    response_model=UploadPublic,
    responses=_error_doc(413, 422, 429),
    summary="Upload a dataset file (.txt, .jsonl, .json, .csv, .parquet)",
)
async def api_upload(
    settings: SettingsDep,
    file: UploadFile = File(...),
    data_format: Annotated[DataFormatChoice, Form()] = "auto",
    content_length: Annotated[int, Header()] = 0,
) -> UploadPublic:
    if content_length > settings.max_upload_bytes + UPLOAD_FRAMING:
        raise too_large(settings)
    raw = await file.read(settings.max_upload_bytes + 1)
    name = file.filename or ""
    return await asyncio.to_thread(save_upload, raw, name, settings, data_format)


@api.post(
    "/runs",
    status_code=201,
    response_model=RunCreated,
    responses=_error_doc(422, 429, 507),
    summary="Queue a run (and optionally its matched baseline); missing fields take defaults",
)
async def api_create(
    req: RunRequestDep, runner: RunnerDep, storage: StorageDep, settings: SettingsDep
) -> RunCreated:
    processes = req.launcher.num_processes if req.launcher.kind == "accelerate" else 1
    found = await asyncio.to_thread(cost.for_configs, settings, req.configs(), processes)
    cost.check_disk(found["total"])  # 507 when it cannot fit at all
    with queue_room(storage, runner.settings, len(req.configs())):  # 429 past max_queued_runs
        ids = [runner.submit(config, req.launcher).id for config in req.configs()]
    group = ",".join(ids) if len(ids) > 1 else None
    if group:
        # A matched pair: the group id is the compare page's query, so each run links to it.
        for run_id in ids:
            storage.update_run(run_id, group_id=group)
    url = f"/compare?runs={group}" if group else f"/runs/{ids[0]}"
    return RunCreated(id=ids[0], ids=ids, url=url)


# ------------------------------------------------------------ API: reading and controlling


@api.get("/runs", response_model=RunsPublic, summary="All runs, newest first")
def api_runs(runner: RunnerDep) -> RunsPublic:
    return views.runs_list(runner)


@api.get(
    "/runs/{run_id}",
    response_model=RunDetail,
    responses=_error_doc(404),
    summary="One run: status, progress, config",
)
def api_run(run_id: RunId, runner: RunnerDep) -> RunDetail:
    return views.run_detail(runner, run_id)


@api.get(
    "/runs/{run_id}/metrics",
    response_model=list[MetricRow],
    responses=_error_doc(404),
    summary="Metric rows: step, name, value, attempt (the current attempt unless asked)",
)
def api_metrics(
    run_id: RunId,
    runner: RunnerDep,
    name: list[str] | None = Query(None, description="Only these metric names"),
    after: int = Query(0, ge=0, le=MAX_ROW_ID, description="Only rows with an id above this"),
    attempt: str = Query(
        "current", pattern=r"^(current|all|[1-9][0-9]{0,5})$", description="current, all or N"
    ),
) -> list[MetricRow]:
    return views.metric_rows(runner, run_id, after, name, attempt)


@api.get(
    "/runs/{run_id}/metrics.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **_error_doc(404),
    },
    summary="Metrics as CSV",
)
def api_metrics_csv(run_id: RunId, runner: RunnerDep) -> Response:
    body = views.metrics_csv(runner, run_id)
    headers = {"Content-Disposition": f'attachment; filename="{run_id}-metrics.csv"'}
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


@api.get(
    "/runs/{run_id}/export.zip",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **_error_doc(404, 409, 422, 507),
    },
    summary="The run's model as a Hugging Face folder in a zip (streamed); the folder stays "
    "under <home>/exports/ (X-Export-Folder)",
)
def api_export_zip(
    run_id: RunId,
    runner: RunnerDep,
    checkpoint: str = Query(
        "final", pattern=r"^(final|best|[0-9]{1,9})$", description="final, best or a step"
    ),
    merge: bool = Query(False, description="a LoRA run: the base with the adapter merged in"),
) -> StreamingResponse:
    folder, chunks = views.export_zip(runner, run_id, rf.parse_which(checkpoint), merge)
    headers = {
        "Content-Disposition": f'attachment; filename="{folder.name}.zip"',
        "X-Export-Folder": quote(str(folder), safe="/"),  # headers are latin-1: a %-encoded path
    }
    return StreamingResponse(chunks, media_type="application/zip", headers=headers)


@api.post(
    "/runs/{run_id}/cancel",
    response_model=RunDetail,
    responses=_error_doc(404, 409),
    summary="Stop a queued or running run",
)
def api_cancel(run_id: RunId, runner: RunnerDep) -> RunDetail:
    runner.cancel(run_id)
    return views.run_detail(runner, run_id)


@api.post(
    "/runs/{run_id}/evaluate",
    response_model=RunDetail,
    responses=_error_doc(404, 409, 422, 429),
    summary="Benchmark a finished run (its final model and best checkpoint) through the queue",
)
async def api_evaluate(
    run_id: RunId, body: EvaluateRequest, runner: RunnerDep, settings: SettingsDep
) -> RunDetail:
    # Known task names are checked against lm-eval's index (a few seconds, once): in a thread.
    request = await asyncio.to_thread(check_evaluation, body, settings)
    with queue_room(runner.storage, runner.settings, 1):  # 429 past max_queued_runs
        runner.evaluate(run_id, request)
    return views.run_detail(runner, run_id)


@api.post(
    "/runs/{run_id}/resume",
    response_model=RunDetail,
    responses=_error_doc(404, 409),
    summary="Continue from the latest complete checkpoint (409 when there is none: restart)",
)
def api_resume(run_id: RunId, runner: RunnerDep) -> RunDetail:
    runner.resume(run_id)
    return views.run_detail(runner, run_id)


@api.post(
    "/runs/{run_id}/restart",
    response_model=RunDetail,
    responses=_error_doc(404, 409),
    summary="Start a stopped run again from step 0 (only when it has no checkpoint)",
)
def api_restart(run_id: RunId, runner: RunnerDep) -> RunDetail:
    runner.resume(run_id, restart=True)
    return views.run_detail(runner, run_id)


@api.patch(
    "/runs/{run_id}",
    response_model=RunDetail,
    responses=_error_doc(404, 422),
    summary="Rename a run, or set its notes or tags",
)
def api_patch(run_id: RunId, body: RunPatch, runner: RunnerDep) -> RunDetail:
    changes = body.model_dump(exclude_none=True)
    if "tags" in changes:
        changes["tags"] = list(dict.fromkeys(changes["tags"]))  # no repeats, order kept
    return views.patch_run(runner, run_id, changes)


@api.delete(
    "/runs/{run_id}",
    response_model=RunDeleted,
    responses=_error_doc(404, 409),
    summary="Delete a stopped run: its row, metrics and folder (409 while queued or running)",
)
def api_delete(run_id: RunId, runner: RunnerDep) -> RunDeleted:
    runner.delete(run_id)
    return RunDeleted(id=run_id, deleted=True)


@api.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **_error_doc(404, 503),
    },
    summary="Live updates (server-sent events)",
)
async def api_events(
    request: Request,
    run_id: RunId,
    runner: RunnerDep,
    after: int = Query(0, ge=0, le=MAX_ROW_ID),
    last_event_id: Annotated[str, Header()] = "",
) -> StreamingResponse:
    await asyncio.to_thread(runner.get, run_id)  # a 404 before the stream starts
    start = events.start_cursor(last_event_id, after)
    return events.response(request, runner, run_id, start)  # 503 past max_event_streams


@api.get(
    "/compare",
    response_model=RunCompare,
    responses=_error_doc(404, 422),
    summary="Runs side by side: curves and differences",
)
def api_compare(
    runner: RunnerDep, runs: str = Query(..., description="Run ids, comma-separated")
) -> RunCompare:
    return views.compare(runner, parse_ids(runs))
