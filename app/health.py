"""Health of the server and its model: GET /api/health (also the header badge's data)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.deps import ModelServiceDep
from app.model_service import ModelService

router = APIRouter(tags=["health"])


class HealthPublic(BaseModel):
    """Server status; `model_loaded` turns true once the background load has finished."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    status: str
    model_loaded: bool
    model: str | None
    spec: str
    state: str
    error: str | None


def health(service: ModelService) -> HealthPublic:
    """The data of GET /api/health (and the page's model badge)."""
    status = service.status()
    return HealthPublic(
        status="ok",
        model_loaded=status["model_loaded"],
        model=status["model"],
        spec=status["spec"],
        state=status["state"],
        error=status["error"],
    )


@router.get("/api/health", response_model=HealthPublic)
async def api_health(service: ModelServiceDep) -> HealthPublic:
    """Server status; `model_loaded` turns true once the background load has finished."""
    return health(service)
