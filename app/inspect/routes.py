"""The Inspect page (/) and its JSON twins: /api/inspect, /api/model, /api/score, /api/preview,
/api/compare, /api/estimate, /api/draws, /api/checkpoints, /api/samples. Routes validate, call,
render."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from app.deps import ModelServiceDep, SettingsDep, TemplatesDep
from app.errors import ErrorBody, TooManyTokens
from app.headers import page_policy
from app.health import health
from app.inspect import data, streaming
from app.inspect.samples import samples
from app.inspect.schemas import (
    Checkpoint,
    CompareOut,
    CompareRequest,
    DrawsOut,
    EstimateOut,
    EstimateRequest,
    InspectPage,
    LimitsPublic,
    ModelPublic,
    PreviewOut,
    PreviewRequest,
    SamplePublic,
    ScoreOut,
    ScoreRequest,
)
from app.model_service import ModelService
from app.score_job import ScoreJob
from app.settings import Settings
from entrodrop.config import EntroDropConfig
from entrodrop.scoring import MAX_TOP_K

router = APIRouter(tags=["inspect"])

# A token spans at most a few dozen characters: longer texts are refused before tokenizing.
MAX_CHARS_PER_TOKEN = 64
ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Text over the token cap (the message gives it)."},
    422: {
        "model": ErrorBody,
        "description": "Empty or malformed request, or a model spec that cannot be loaded.",
    },
    503: {
        "model": ErrorBody,
        "description": "Model still loading or too many requests queued (see Retry-After).",
    },
}
STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {streaming.NDJSON: {}},
        "description": "With ?stream=1 or Accept: application/x-ndjson: one JSON event per line "
        "(queued, started, progress {done, total, eta_s}, then result or error).",
    }
}
STREAM = Query(False, description="Stream progress events as NDJSON, then the result.")


def page_data(settings: Settings, service: ModelService) -> InspectPage:
    """Everything the Inspect page starts from (GET / renders it, GET /api/inspect returns it)."""
    return InspectPage(
        model=health(service),
        checkpoints=data.list_checkpoints(settings.runs_path),
        samples=samples(),
        policy_defaults=EntroDropConfig(),
        limits=LimitsPublic(
            max_score_tokens=settings.max_score_tokens,
            max_upload_bytes=settings.max_upload_bytes,
            max_top_k=MAX_TOP_K,
            url_text_chars=data.URL_TEXT_CHARS,
        ),
        colour_modes=data.COLOUR_MODES,
        rank_buckets=data.RANK_BUCKETS,
    )


def _check_length(text: str, settings: Settings) -> None:
    limit = settings.max_score_tokens
    if len(text) > limit * MAX_CHARS_PER_TOKEN:
        raise TooManyTokens(
            f"the text has {len(text)} characters, far over the limit of {limit} tokens per text "
            "(ENTRODROP_MAX_SCORE_TOKENS)"
        )


async def _run(
    request: Request,
    stream: bool,
    service: ModelService,
    specs: list[str],
    fn: Callable[..., Any],
    *args: Any,
) -> Response:
    """Queue a model job `fn(*args, job)` and answer its JSON, or stream its progress.

    Every spec is checked first (compare: both before either model loads or scores).

    Errors before the job starts (loading, queue full) keep their status; a client that goes
    away cancels the job (see app.inspect.streaming).
    """
    for spec in specs:  # fail fast, without taking a queue slot: loading, or a bad spec
        service.check_ready(spec)
        await run_in_threadpool(data.check_spec, service, spec)
    streamed = streaming.wants_stream(request, stream)
    job = ScoreJob(asyncio.get_running_loop() if streamed else None)
    future = service.submit(lambda: data.encode_json(fn(*args, job)), job=job)
    if streamed:
        return streaming.JobStream(future, job)
    return await streaming.plain(request, future, job)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def inspect_page(
    request: Request, settings: SettingsDep, service: ModelServiceDep, templates: TemplatesDep
) -> Response:
    page = page_data(settings, service).model_dump(mode="json")  # what /api/inspect answers
    response = templates.TemplateResponse(request, "inspect.html", {"nav": "inspect", "data": page})
    # Its per-position chart draws long texts with WebGL, whose library compiles with Function().
    response.headers["Content-Security-Policy"] = page_policy(unsafe_eval=True)
    return response


@router.get("/api/inspect", response_model=InspectPage)
def api_inspect(settings: SettingsDep, service: ModelServiceDep) -> InspectPage:
    """The Inspect page's starting data: model state, checkpoints, samples, defaults, limits."""
    return page_data(settings, service)


@router.get("/api/model", response_model=ModelPublic)
def api_model(service: ModelServiceDep) -> ModelPublic:
    """The server's model: its state and, once loaded, its description."""
    loaded = service.server_model()
    return ModelPublic(**service.status(), info=loaded.describe() if loaded else None)


@router.get("/api/checkpoints", response_model=list[Checkpoint])
def api_checkpoints(settings: SettingsDep) -> list[Checkpoint]:
    """Finished runs whose model can be inspected, as `run:<id>` specs."""
    return [Checkpoint(**c) for c in data.list_checkpoints(settings.runs_path)]


@router.get("/api/samples", response_model=list[SamplePublic])
def api_samples() -> list[SamplePublic]:
    """The sample texts of the Inspect page."""
    return [SamplePublic(**sample) for sample in samples()]


@router.post("/api/score", response_model=ScoreOut, responses={**ERRORS, **STREAMED})
async def api_score(
    body: ScoreRequest,
    request: Request,
    settings: SettingsDep,
    service: ModelServiceDep,
    stream: bool = STREAM,
) -> Response:
    """Per-token entropy, surprisal, probability, rank and top-k alternatives (DESIGN §6)."""
    _check_length(body.text, settings)
    spec = service.resolve(body.model)
    args = (service, spec, body.text, body.top_k)
    return await _run(request, stream, service, [spec], data.score_job, *args)


@router.post("/api/compare", response_model=CompareOut, responses={**ERRORS, **STREAMED})
async def api_compare(
    body: CompareRequest,
    request: Request,
    settings: SettingsDep,
    service: ModelServiceDep,
    stream: bool = STREAM,
) -> Response:
    """The same text under two checkpoints, and entropy(b) - entropy(a) when tokens match."""
    _check_length(body.text, settings)
    a, b = service.resolve(body.model_a), service.resolve(body.model_b)
    args = (service, a, b, body.text, body.top_k)
    return await _run(request, stream, service, [a, b], data.compare_job, *args)


@router.post("/api/estimate", response_model=EstimateOut, responses=ERRORS)
async def api_estimate(
    body: EstimateRequest, settings: SettingsDep, service: ModelServiceDep
) -> EstimateOut:
    """Token count and expected scoring time here, from the last measured speed of the model."""
    _check_length(body.text, settings)
    spec = service.resolve(body.model)
    # Tokenizing is quick and needs no worker: it never waits behind a long scoring job.
    return EstimateOut(**await run_in_threadpool(data.estimate, service, spec, body.text))


@router.post("/api/preview", response_model=PreviewOut, responses={**ERRORS, **STREAMED})
async def api_preview(
    body: PreviewRequest,
    request: Request,
    settings: SettingsDep,
    service: ModelServiceDep,
    stream: bool = STREAM,
) -> Response:
    """Which tokens the policy drops at progress s: `select_drops` with the policy's seed."""
    if body.entropies is not None:
        if len(body.entropies) > settings.max_score_tokens:
            raise TooManyTokens(
                f"{len(body.entropies)} entropies; the limit is "
                f"{settings.max_score_tokens} tokens (ENTRODROP_MAX_SCORE_TOKENS)"
            )
        entropies = body.entropies
        # Cheap (no model), but kept off the event loop all the same.
        content = await run_in_threadpool(
            lambda: data.encode_json(data.preview(entropies, body.policy, body.progress))
        )
        return Response(content, media_type="application/json")
    assert body.text is not None  # the request model guarantees one source
    _check_length(body.text, settings)
    spec = service.resolve(body.model)
    args = (service, spec, body.text, body.top_k, body.policy, body.progress)
    return await _run(request, stream, service, [spec], data.preview_job, *args)


@router.get("/api/draws", response_model=DrawsOut, responses={413: ERRORS[413]})
def api_draws(
    settings: SettingsDep,
    n: int = Query(ge=1, description="Number of tokens."),
    seed: int = Query(0, ge=0, le=2**63 - 1, description="The policy's seed."),
) -> DrawsOut:
    """The uniform draws `select_drops` compares with r(s), so a page can redo the drops."""
    if n > settings.max_score_tokens:
        raise TooManyTokens(f"n = {n} is over the limit of {settings.max_score_tokens} tokens")
    return DrawsOut(seed=seed, n=n, u=data.draws(n, seed))
