"""Preview of a run's first training batch: which tokens the policy drops at s = 0, 0.5 and 1
(computed by the library, entrodrop.training.preview, on the model service's worker thread; a
user's data file read in a memory-limited child first, since it may lie about its size)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.model_service import ModelService
from app.runs.schemas import RunPreview
from entrodrop.config import RunConfig
from entrodrop.data import PYTHON_REFERENCE, is_builtin, load_dataset
from entrodrop.models import LoadedModel
from entrodrop.sandbox import limits_for, run_isolated
from entrodrop.training.preview import first_batch


class PreviewService:
    """Computes previews on the model service: one model cache and one worker thread for all
    scoring, Inspect's and the previews' alike."""

    def __init__(self, model_service: Callable[[], ModelService]) -> None:
        self._model_service = model_service

    async def preview(self, config: RunConfig) -> RunPreview:
        """Never in the event loop: loading and scoring take the service's worker thread."""
        service = self._model_service()
        return await service.run(self.compute, service.get, config)

    def compute(self, get_model: Callable[[str], LoadedModel], config: RunConfig) -> RunPreview:
        """The first rows of the training data, scored, with their drops at three points.

        Raises ModelLoadError or DataError (messages for a person).
        """
        return RunPreview.model_validate(
            first_batch(get_model(config.model), config, self._dataset(config))
        )

    def _dataset(self, config: RunConfig) -> Any:
        """The run's data; a user's file is read in a memory-limited child (it may lie about
        its size) within the server's decoded-text budget."""
        specs = (config.dataset, config.heldout_dataset or PYTHON_REFERENCE)
        read = partial(
            load_dataset,
            config.dataset,
            heldout=config.heldout_dataset,
            data_format=config.data_format,
        )
        if all(is_builtin(spec) for spec in specs):
            return read()
        budget = self._model_service().settings.text_budget
        return run_isolated(
            partial(read, max_text_bytes=budget),
            name=Path(config.dataset).name,
            limits=limits_for(budget),
        )
