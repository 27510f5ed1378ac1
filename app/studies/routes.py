"""Studies: the list, new-study form and study pages, and the API that creates and reads them.

Routes call a data function (app.studies.views, .form, .create, .control) and render; the page
and its JSON twin come from the same function. Errors are domain exceptions (app.errors).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from app.deps import RunnerDep, SettingsDep, StorageDep, StudiesDep, TemplatesDep
from app.errors import ErrorBody
from app.studies import views
from app.studies.control import cancel_study, delete_study
from app.studies.create import check_study, create_study
from app.studies.form import new_study_form
from app.studies.schemas import (
    StudiesPublic,
    StudyCheck,
    StudyCreated,
    StudyDeleted,
    StudyDetail,
    StudyForm,
)
from app.studies.store import StudyNotFound
from entrodrop.studies.config import StudyConfig
from entrodrop.studies.report import report_html

router = APIRouter()
api = APIRouter(prefix="/api", tags=["studies"])


def _error_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in codes}


def _page(
    request: Request, templates: TemplatesDep, name: str, data: Any, status: int = 200
) -> Response:
    # The page gets exactly what its JSON twin answers: the response model as JSON data.
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    context = {"nav": "studies", "data": data}
    return templates.TemplateResponse(request, name, context, status_code=status)


# ------------------------------------------------------------ pages


@router.get("/studies", response_class=HTMLResponse, include_in_schema=False)
def studies_page(
    request: Request, runner: RunnerDep, store: StudiesDep, templates: TemplatesDep
) -> Response:
    return _page(request, templates, "studies/list.html", views.studies_list(runner, store))


@router.get("/studies/new", response_class=HTMLResponse, include_in_schema=False)
def new_study_page(
    request: Request, settings: SettingsDep, storage: StorageDep, templates: TemplatesDep
) -> Response:
    return _page(request, templates, "studies/new.html", new_study_form(settings, storage))


@router.get("/studies/{study_id}", response_class=HTMLResponse, include_in_schema=False)
def study_page(
    request: Request, study_id: str, runner: RunnerDep, store: StudiesDep, templates: TemplatesDep
) -> Response:
    try:
        data = views.study_detail(runner, store, study_id)
    except StudyNotFound:
        message = {"message": f"No study {study_id!r}."}
        return _page(request, templates, "studies/error.html", message, 404)
    return _page(request, templates, "studies/detail.html", data)


@router.get("/studies/{study_id}/report.html", response_class=HTMLResponse, include_in_schema=False)
def study_report(study_id: str, runner: RunnerDep, store: StudiesDep) -> Response:
    """The study as one self-contained HTML file to share (its JSON twin: /api/studies/{id})."""
    detail = views.study_detail(runner, store, study_id)  # StudyNotFound: 404
    html = report_html(detail.model_dump(mode="json"))
    headers = {"Content-Disposition": f'attachment; filename="study-{study_id}.html"'}
    return HTMLResponse(html, headers=headers)


# ------------------------------------------------------------ API


@api.get("/studies/form", response_model=StudyForm, summary="What the new-study form offers")
def api_form(settings: SettingsDep, storage: StorageDep) -> StudyForm:
    return new_study_form(settings, storage)


@api.post(
    "/studies/check",
    response_model=StudyCheck,
    responses=_error_doc(422),
    summary="Validate a study and estimate its whole time and disk here",
)
def api_check(body: StudyConfig, runner: RunnerDep) -> dict[str, Any]:
    return check_study(body, runner)


@api.post(
    "/studies",
    status_code=201,
    response_model=StudyCreated,
    responses=_error_doc(422, 429, 507),
    summary="Queue every variant with every seed as one study",
)
def api_create(body: StudyConfig, runner: RunnerDep, store: StudiesDep) -> StudyCreated:
    record = create_study(body, runner, store)
    detail = views.study_detail(runner, store, record["id"])
    return StudyCreated(id=detail.id, runs=detail.runs, url=detail.links.page)


@api.get("/studies", response_model=StudiesPublic, summary="All studies, newest first")
def api_studies(runner: RunnerDep, store: StudiesDep) -> StudiesPublic:
    return views.studies_list(runner, store)


@api.get(
    "/studies/{study_id}.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **_error_doc(404)},
    summary="The summary and paired tables as CSV",
)
def api_study_csv(study_id: str, runner: RunnerDep, store: StudiesDep) -> Response:
    body = views.study_csv(runner, store, study_id)
    headers = {"Content-Disposition": f'attachment; filename="{study_id}.csv"'}
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


@api.get(
    "/studies/{study_id}",
    response_model=StudyDetail,
    responses=_error_doc(404),
    summary="One study: runs, summary (mean ± 95% CI), paired differences, readings, curves",
)
def api_study(study_id: str, runner: RunnerDep, store: StudiesDep) -> StudyDetail:
    return views.study_detail(runner, store, study_id)


@api.post(
    "/studies/{study_id}/cancel",
    response_model=StudyDetail,
    responses=_error_doc(404, 409),
    summary="Cancel the study's queued and running runs",
)
def api_cancel(study_id: str, runner: RunnerDep, store: StudiesDep) -> StudyDetail:
    cancel_study(runner, store, study_id)
    return views.study_detail(runner, store, study_id)


@api.delete(
    "/studies/{study_id}",
    response_model=StudyDeleted,
    responses=_error_doc(404, 409),
    summary="Delete a study (refused while its runs are active); ?runs=true deletes its runs too",
)
def api_delete(
    study_id: str,
    runner: RunnerDep,
    store: StudiesDep,
    runs: bool = Query(False, description="Also delete the study's runs and their folders"),
) -> StudyDeleted:
    deleted = delete_study(runner, store, study_id, with_runs=runs)
    return StudyDeleted(id=study_id, deleted_runs=deleted)
