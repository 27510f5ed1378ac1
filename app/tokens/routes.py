"""Token endpoints: a run's per-token record (JSON or CSV) and token-level compares.

Routes validate, call a data function (app.tokens.views) and return; errors are domain
exceptions that carry their status (app.errors): no record 404, a step not recorded or runs
that follow different tokens 422.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.deps import RunnerDep, StudiesDep
from app.errors import ErrorBody
from app.runs.routes import RunId, parse_ids
from app.tokens import views
from app.tokens.schemas import RunTokens, StudyTokensCompare, TokensCompare, csv_doc

api = APIRouter(prefix="/api", tags=["tokens"])
MAX_STEP = 1_000_000  # RunConfig.max_steps' bound


def _error_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


StepQuery = Query(
    None, ge=0, le=MAX_STEP, description="The record as it stood at this evaluation step"
)


@api.get(
    "/runs/{run_id}/tokens",
    response_model=RunTokens,
    responses={**csv_doc(), **_error_doc(404, 422)},
    summary="Per-token loss and entropy at every evaluation, and the cartography",
)
def api_run_tokens(
    run_id: RunId,
    runner: RunnerDep,
    step: int | None = StepQuery,
    format: Literal["json", "csv"] = Query("json", description="json, or csv: a row per token"),
    rank: bool = Query(False, description="Include each token's rank at each step"),
    top: int = Query(20, ge=0, le=1000, description="Tokens listed for the rebound"),
) -> Any:
    if format == "csv":
        body = views.run_tokens_csv(runner, run_id, step)
        headers = {"Content-Disposition": f'attachment; filename="{run_id}-tokens.csv"'}
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)
    return views.run_tokens(runner, run_id, step, rank, top)


@api.get(
    "/compare/tokens",
    response_model=TokensCompare,
    responses=_error_doc(404, 422),
    summary="Two runs token by token: b - a of each token's loss, sorted",
)
def api_compare_tokens(
    runner: RunnerDep,
    runs: str = Query(..., description="Two run ids, a,b"),
    step: int | None = StepQuery,
) -> dict[str, Any]:
    return views.compare_tokens(runner, parse_ids(runs), step)


@api.get(
    "/studies/{study_id}/tokens",
    response_model=StudyTokensCompare,
    responses=_error_doc(404, 422),
    summary="A study's two variants token by token: mean b - a over seeds, consistent signs",
)
def api_study_tokens(
    study_id: str,
    store: StudiesDep,
    a: str | None = Query(None, max_length=200, description="Variant a (default: none)"),
    b: str | None = Query(None, max_length=200, description="Variant b (default: the next)"),
    step: int | None = StepQuery,
) -> dict[str, Any]:
    return views.study_tokens(store, study_id, a, b, step)
