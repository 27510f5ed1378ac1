"""The Inspect page (/) and its JSON twins: /api/inspect, /api/model, /api/score, /api/preview,
/api/compare, /api/generate, /api/estimate, /api/draws, /api/checkpoints, /api/samples, /api/text-file. Routes
validate, call, render."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Header, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from app.deps import ModelServiceDep, SettingsDep, StorageDep, TemplatesDep
from app.errors import ErrorBody, FieldError, RequestInvalid, TooManyTokens
from app.headers import page_policy
from app.health import health
from app.inspect import data, facts, generate, streaming
from app.inspect.samples import samples
from app.inspect.schemas import (
    Checkpoint,
    CompareOut,
    CompareRequest,
    DrawsOut,
    EstimateOut,
    EstimateRequest,
    GenerateOut,
    GenerateRequest,
    InspectPage,
    LimitsPublic,
    ModelPublic,
    PreviewOut,
    PreviewRequest,
    SamplePublic,
    ScoreOut,
    ScoreRequest,
    TextFileOut,
)
from app.model_service import ModelService
from app.runs.storage import Storage
from app.runs.uploads import UPLOAD_FRAMING, too_large
from app.score_job import ScoreJob
from app.settings import Settings
from entrodrop.config import MAX_TOP_K, EntroDropConfig
from entrodrop.data import USER_SUFFIXES, Conversation, read_text

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
        "(queued {ahead}, started {waited_s}, progress {done, total, elapsed_s, eta_s} after "
        "each chunk, then result or error).",
    }
}
STREAMED_TOKENS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {streaming.NDJSON: {}},
        "description": "With ?stream=1 or Accept: application/x-ndjson: one JSON event per line "
        "(queued {ahead}, started {waited_s}, progress {done, total} over the prompt, a token "
        "{token, elapsed_s} per generated token, then result or error).",
    }
}
STREAM = Query(False, description="Stream progress events as NDJSON, then the result.")


def run_names(storage: Storage) -> dict[str, str]:
    """Run id -> name, for the runs that have one (the checkpoints are called by it)."""
    return {r.id: r.name for r in storage.list_runs() if r.name}


def page_data(settings: Settings, service: ModelService, storage: Storage) -> InspectPage:
    """Everything the Inspect page starts from (GET / renders it, GET /api/inspect returns it)."""
    return InspectPage(
        model=health(service),
        checkpoints=data.list_checkpoints(settings.runs_path, run_names(storage)),
        samples=samples(),
        policy_defaults=EntroDropConfig(),
        choices=facts.policy_choices(),
        limits=LimitsPublic(
            max_score_tokens=settings.max_score_tokens,
            max_new_tokens=settings.max_new_tokens,
            max_upload_bytes=settings.max_upload_bytes,
            max_top_k=MAX_TOP_K,
            url_text_chars=data.URL_TEXT_CHARS,
        ),
        generate_defaults=generate.defaults(),
        generate_fields=generate.fields(settings.max_new_tokens),
        upload_suffixes=list(USER_SUFFIXES),
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
    request: Request,
    settings: SettingsDep,
    service: ModelServiceDep,
    storage: StorageDep,
    templates: TemplatesDep,
) -> Response:
    page = page_data(settings, service, storage).model_dump(mode="json")  # /api/inspect's answer
    response = templates.TemplateResponse(
        request, "inspect/inspect.html", {"nav": "inspect", "data": page}
    )
    # Its per-position chart draws long texts with WebGL, whose library compiles with Function().
    response.headers["Content-Security-Policy"] = page_policy(unsafe_eval=True)
    return response


@router.get("/api/inspect", response_model=InspectPage)
def api_inspect(
    settings: SettingsDep, service: ModelServiceDep, storage: StorageDep
) -> InspectPage:
    """The Inspect page's starting data: model state, checkpoints, samples, defaults, limits."""
    return page_data(settings, service, storage)


@router.get("/api/model", response_model=ModelPublic)
def api_model(service: ModelServiceDep) -> ModelPublic:
    """The server's model: its state and, once loaded, its description."""
    loaded = service.server_model()
    return ModelPublic(**service.status(), info=loaded.describe() if loaded else None)


@router.get("/api/checkpoints", response_model=list[Checkpoint])
def api_checkpoints(settings: SettingsDep, storage: StorageDep) -> list[Checkpoint]:
    """Every run's final model (`run:<id>`), best checkpoint (`run:<id>:best`) and complete
    checkpoints (`run:<id>:<step>`), named as the runs table names the run."""
    return [Checkpoint(**c) for c in data.list_checkpoints(settings.runs_path, run_names(storage))]


@router.get("/api/samples", response_model=list[SamplePublic])
def api_samples() -> list[SamplePublic]:
    """The sample texts of the Inspect page."""
    return [SamplePublic(**sample) for sample in samples()]


async def _source(
    body: ScoreRequest | PreviewRequest, settings: Settings
) -> tuple[str | None, Conversation | None, dict[str, Any]]:
    """The text, or the conversation and where it came from, that a request names (a dataset's
    example is read here, in a thread: a bad file or index is a 422 before any queueing)."""
    info: dict[str, Any] = {}
    if body.example is not None:
        ref = body.example
        example, info = await run_in_threadpool(
            data.dataset_example, ref.dataset, ref.index, ref.data_format, settings
        )
        if isinstance(example, str):
            _check_length(example, settings)
            return example, None, info
        messages = example
    elif body.messages is not None:
        messages = [m.model_dump() for m in body.messages]
    else:
        assert body.text is not None  # the request model guarantees one source
        _check_length(body.text, settings)
        return body.text, None, info
    _check_length("".join(m["content"] for m in messages), settings)
    return None, messages, info


@router.post("/api/score", response_model=ScoreOut, responses={**ERRORS, **STREAMED})
async def api_score(
    body: ScoreRequest,
    request: Request,
    settings: SettingsDep,
    service: ModelServiceDep,
    stream: bool = STREAM,
) -> Response:
    """Per-token entropy, surprisal, probability, rank and top-k alternatives: the token JSON
    of `entrodrop score --json`.

    A conversation (`messages`, or a dataset's `example`) is rendered with the model's chat
    template; its tokens also say which are trained, their role and segment."""
    text, messages, info = await _source(body, settings)
    spec = service.resolve(body.model)
    if messages is not None:
        args: tuple[Any, ...] = (service, spec, messages, body.top_k, body.train_on, info)
        return await _run(request, stream, service, [spec], data.conversation_job, *args)
    args = (service, spec, text, body.top_k)
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


@router.post("/api/generate", response_model=GenerateOut, responses={**ERRORS, **STREAMED_TOKENS})
async def api_generate(
    body: GenerateRequest,
    request: Request,
    settings: SettingsDep,
    service: ModelServiceDep,
    stream: bool = STREAM,
) -> Response:
    """Generate from a prompt, each token with the entropy of the distribution it came from.

    Temperature 0 is greedy; otherwise the same seed, model and prompt give the same tokens, so
    two checkpoints side by side are two requests with the same prompt and seed. Runs in the
    scoring worker, behind its queue; Stop or a client that leaves ends it at the next token.
    """
    _check_length(body.prompt, settings)
    if body.max_new_tokens > settings.max_new_tokens:
        problem = FieldError(
            ("max_new_tokens",),
            f"at most {settings.max_new_tokens} new tokens on this server "
            "(ENTRODROP_MAX_NEW_TOKENS)",
        )
        raise RequestInvalid([problem])
    spec = service.resolve(body.model)
    args = (service, spec, body)
    return await _run(request, stream, service, [spec], generate.generate_job, *args)


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
    """Which tokens the policy drops at progress s: `select_drops` with the policy's seed; for a
    conversation, over its trained tokens (the drop scope the collator uses)."""
    if body.entropies is not None:
        if len(body.entropies) > settings.max_score_tokens:
            raise TooManyTokens(
                f"{len(body.entropies)} entropies; the limit is "
                f"{settings.max_score_tokens} tokens (ENTRODROP_MAX_SCORE_TOKENS)"
            )
        entropies, trained = body.entropies, body.trained
        # Cheap (no model), but kept off the event loop all the same.
        content = await run_in_threadpool(
            lambda: data.encode_json(
                data.preview(entropies, body.policy, body.progress, trained=trained)
            )
        )
        return Response(content, media_type="application/json")
    text, messages, info = await _source(body, settings)
    spec = service.resolve(body.model)
    policy, progress = body.policy, body.progress
    if messages is not None:
        args: tuple[Any, ...] = (service, spec, messages, body.top_k, body.train_on, info)
        job = data.conversation_preview_job
        return await _run(request, stream, service, [spec], job, *args, policy, progress)
    args = (service, spec, text, body.top_k, policy, progress)
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


@router.post(
    "/api/text-file", response_model=TextFileOut, responses={413: ERRORS[413], 422: ERRORS[422]}
)
async def api_text_file(
    settings: SettingsDep,
    file: UploadFile = File(...),
    content_length: Annotated[int, Header()] = 0,
) -> TextFileOut:
    """A text file's text for the Inspect page: empty, binary or not UTF-8 files get a 422 saying
    so, in the words a dataset upload gets. Nothing is stored."""
    if content_length > settings.max_upload_bytes + UPLOAD_FRAMING:
        raise too_large(settings)
    raw = await file.read(settings.max_upload_bytes + 1)
    if len(raw) > settings.max_upload_bytes:
        raise too_large(settings)
    name = Path(file.filename or "text.txt").name
    text = await run_in_threadpool(read_text, raw, name)
    return TextFileOut(name=name, text=text, n_chars=len(text))
