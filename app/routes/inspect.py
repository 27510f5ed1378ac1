"""The Inspect page (/) and its JSON twins: /api/inspect, /api/model, /api/score, /api/preview,
/api/compare, /api/draws, /api/checkpoints, /api/samples. Routes validate, call, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from app import inspection
from app.inspect_schemas import (
    Checkpoint,
    CompareOut,
    CompareRequest,
    DrawsOut,
    PreviewOut,
    PreviewRequest,
    ScoreOut,
    ScoreRequest,
)
from app.model_service import ModelNotReady, ModelService, QueueFull, get_service
from app.routes.health import health
from app.samples import samples
from app.settings import Settings
from entrodrop.config import EntroDropConfig
from entrodrop.models import ModelLoadError

# A token spans at most a few dozen characters: longer texts are refused before tokenizing.
MAX_CHARS_PER_TOKEN = 64
ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"description": "Text over the token cap (the message gives the limit)."},
    422: {"description": "Empty or malformed request, or a model spec that cannot be loaded."},
    503: {"description": "Model still loading or too many requests queued (see Retry-After)."},
}


def page_data(settings: Settings, service: ModelService) -> dict[str, Any]:
    """Everything the Inspect page starts from (GET / renders it, GET /api/inspect returns it)."""
    return {
        "model": health(service),
        "checkpoints": inspection.list_checkpoints(settings.runs_path),
        "samples": samples(),
        "policy_defaults": EntroDropConfig().model_dump(),
        "limits": {
            "max_score_tokens": settings.max_score_tokens,
            "max_upload_bytes": settings.max_upload_bytes,
        },
    }


def _check_length(text: str, settings: Settings) -> None:
    limit = settings.max_score_tokens
    if len(text) > limit * MAX_CHARS_PER_TOKEN:
        raise HTTPException(
            413,
            f"the text has {len(text)} characters, far over the limit of {limit} tokens per text "
            "(ENTRODROP_MAX_SCORE_TOKENS)",
        )


async def _run(
    service: ModelService, specs: list[str], fn: Callable[..., Any], *args: Any
) -> Response:
    """Run a model job in the worker and answer its JSON, mapping failures to 4xx/503."""
    try:
        for spec in specs:  # fail fast, without taking a queue slot, while the model loads
            service.check_ready(spec)
        body = await service.run(lambda: inspection.encode_json(fn(*args)))
    except (ModelNotReady, QueueFull) as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        raise HTTPException(503, str(exc), headers=headers) from exc
    except inspection.TooManyTokens as exc:
        raise HTTPException(413, str(exc)) from exc
    except ModelLoadError as exc:
        raise HTTPException(422, str(exc)) from exc
    return Response(body, media_type="application/json")


def setup(app: FastAPI, settings: Settings) -> None:
    """Register the Inspect page and its JSON twins."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def inspect_page(request: Request) -> Response:
        data = page_data(settings, get_service(request.app))
        return request.app.state.templates.TemplateResponse(
            request, "inspect.html", {"nav": "inspect", "data": data}
        )

    @app.get("/api/inspect", tags=["inspect"])
    def api_inspect(request: Request) -> dict[str, Any]:
        """The Inspect page's starting data: model state, checkpoints, samples, defaults, limits."""
        return page_data(settings, get_service(request.app))

    @app.get("/api/model", tags=["inspect"])
    def api_model(request: Request) -> dict[str, Any]:
        """The server's model: its state and, once loaded, its description."""
        service = get_service(request.app)
        loaded = service.server_model()
        status = service.status()
        return {**status, "info": loaded.describe() if loaded else None}

    @app.get("/api/checkpoints", response_model=list[Checkpoint], tags=["inspect"])
    def api_checkpoints() -> list[dict[str, str]]:
        """Finished runs whose model can be inspected, as `run:<id>` specs."""
        return inspection.list_checkpoints(settings.runs_path)

    @app.get("/api/samples", tags=["inspect"])
    def api_samples() -> list[dict[str, str]]:
        """The sample texts of the Inspect page."""
        return samples()

    @app.post("/api/score", response_model=ScoreOut, responses=ERRORS, tags=["inspect"])
    async def api_score(body: ScoreRequest, request: Request) -> Response:
        """Per-token entropy, surprisal, probability, rank and top-k alternatives (DESIGN §6)."""
        _check_length(body.text, settings)
        service = get_service(request.app)
        spec = service.resolve(body.model)
        return await _run(
            service, [spec], inspection.score_job, service, spec, body.text, body.top_k
        )

    @app.post("/api/compare", response_model=CompareOut, responses=ERRORS, tags=["inspect"])
    async def api_compare(body: CompareRequest, request: Request) -> Response:
        """The same text under two checkpoints, and entropy(b) - entropy(a) when tokens match."""
        _check_length(body.text, settings)
        service = get_service(request.app)
        a, b = service.resolve(body.model_a), service.resolve(body.model_b)
        return await _run(
            service, [a, b], inspection.compare_job, service, a, b, body.text, body.top_k
        )

    @app.post("/api/preview", response_model=PreviewOut, responses=ERRORS, tags=["inspect"])
    async def api_preview(body: PreviewRequest, request: Request) -> Response:
        """Which tokens the policy drops at progress s: `select_drops` with the policy's seed."""
        service = get_service(request.app)
        if body.entropies is not None:
            if len(body.entropies) > settings.max_score_tokens:
                raise HTTPException(
                    413,
                    f"{len(body.entropies)} entropies; the limit is "
                    f"{settings.max_score_tokens} tokens (ENTRODROP_MAX_SCORE_TOKENS)",
                )
            # Cheap (no model), but kept off the event loop all the same.
            content = await run_in_threadpool(
                lambda: inspection.encode_json(
                    inspection.preview(body.entropies or [], body.policy, body.progress)
                )
            )
            return Response(content, media_type="application/json")
        assert body.text is not None  # the request model guarantees one source
        _check_length(body.text, settings)
        spec = service.resolve(body.model)
        args = (service, spec, body.text, body.top_k, body.policy, body.progress)
        return await _run(service, [spec], inspection.preview_job, *args)

    @app.get("/api/draws", response_model=DrawsOut, tags=["inspect"])
    def api_draws(
        n: int = Query(ge=1, description="Number of tokens."),
        seed: int = Query(0, ge=0, le=2**63 - 1, description="The policy's seed."),
    ) -> dict[str, Any]:
        """The uniform draws `select_drops` compares with r(s), so a page can redo the drops."""
        if n > settings.max_score_tokens:
            raise HTTPException(
                413, f"n = {n} is over the limit of {settings.max_score_tokens} tokens"
            )
        return {"seed": seed, "n": n, "u": inspection.draws(n, seed)}
