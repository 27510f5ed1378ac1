"""Preview of a run's first training batch: which tokens the policy drops at s = 0, 0.5 and 1
(computed by the library, entrodrop.training.preview, on the model service's worker thread)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.model_service import ModelService
from entrodrop.config import RunConfig
from entrodrop.models import LoadedModel
from entrodrop.training.preview import first_batch


class PreviewService:
    """Computes previews on the model service: one model cache and one worker thread for all
    scoring, Inspect's and the previews' alike."""

    def __init__(self, model_service: Callable[[], ModelService]) -> None:
        self._model_service = model_service

    async def preview(self, config: RunConfig) -> dict[str, Any]:
        """Never in the event loop: loading and scoring take the service's worker thread."""
        service = self._model_service()
        return await service.run(self.compute, service.get, config)

    def compute(self, get_model: Callable[[str], LoadedModel], config: RunConfig) -> dict[str, Any]:
        """The first rows of the training data, scored, with their drops at three points.

        Raises ModelLoadError or DataError (messages for a person).
        """
        return first_batch(get_model(config.model), config)
