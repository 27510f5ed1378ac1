"""The services routes depend on, as `Annotated` dependencies: each is built once by create_app
and kept on app.state; a route names what it needs in its signature."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from app.model_service import ModelService
from app.runs.preview import PreviewService
from app.runs.runner import JobRunner
from app.runs.storage import Storage
from app.settings import Settings
from app.studies.store import StudyStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_model_service(request: Request) -> ModelService:
    service: ModelService = request.app.state.model_service
    return service


def get_runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def get_preview(request: Request) -> PreviewService:
    preview: PreviewService = request.app.state.run_preview
    return preview


def get_studies(request: Request) -> StudyStore:
    studies: StudyStore = request.app.state.studies
    return studies


def get_templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelServiceDep = Annotated[ModelService, Depends(get_model_service)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]
StorageDep = Annotated[Storage, Depends(get_storage)]
PreviewDep = Annotated[PreviewService, Depends(get_preview)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
StudiesDep = Annotated[StudyStore, Depends(get_studies)]
