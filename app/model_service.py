"""Loads the server's model in the background, caches a few models by spec, and runs scoring
jobs one at a time in a worker thread behind a bounded queue (never in the event loop); a job
whose client went away is dropped before it runs, and remembers each model's measured speed."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import entrodrop
from app.errors import ModelNotReady, QueueFull
from app.hub import check_hub_spec, is_hub_id
from app.model_paths import check_model_folder
from app.score_job import ScoreJob
from app.settings import Settings
from entrodrop.models import LoadedModel, ModelLoadError
from entrodrop.paths import expand_user

log = logging.getLogger(__name__)

T = TypeVar("T")
Loader = Callable[[str], LoadedModel]
LOADING_RETRY_AFTER_S = 2


def _import_transformers() -> None:
    """Import transformers' model classes here, before any loader thread does.

    Its lazy module is not safe to import from two threads at once: a request importing it while
    the loader thread does can fail with "cannot import name AutoModelForCausalLM" for good.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401


class ModelService:
    """Owns every model the dashboard uses and the single thread that runs them."""

    def __init__(self, settings: Settings, loader: Loader | None = None, cache_size: int = 3):
        self.settings = settings
        self.spec = settings.model.strip() or "default"
        # run:<id> specs name runs of this server's home, which may differ from ENTRODROP_HOME.
        self._loader: Loader = loader or (
            lambda spec: entrodrop.load(spec, runs_dir=settings.runs_path)
        )
        self._cache_size = max(1, cache_size)
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self._state = "idle"  # idle -> loading -> ready | error
        self._error: str | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0  # jobs running or waiting
        self._rates: dict[str, float] = {}  # spec -> tokens/s of its last scoring on this machine

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.settings.load_model_on_startup:
            self.ensure_loading()

    async def stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def ensure_loading(self) -> None:
        """Start loading the server's model in a background thread, once."""
        with self._lock:
            if self._state != "idle":
                return
            self._state = "loading"
        _import_transformers()
        threading.Thread(target=self._load_server_model, name="model-loader", daemon=True).start()

    def _load_server_model(self) -> None:
        try:
            loaded = self._load(self.spec)
        except Exception as exc:  # reported in /api/health and the page, never swallowed
            log.exception("the server's model %r did not load", self.spec)
            with self._lock:
                self._state, self._error = "error", str(exc) or type(exc).__name__
            return
        with self._lock:
            self._cache[self.spec] = loaded
            self._state, self._error = "ready", None
        log.info("model %s ready", loaded.name)

    # ------------------------------------------------------------ state

    def status(self) -> dict[str, Any]:
        """The server model's state for /api/health and /api/model."""
        with self._lock:
            model = self._cache.get(self.spec)
            return {
                "spec": self.spec,
                "state": self._state,
                "model_loaded": self._state == "ready",
                "model": model.name if model else None,
                "error": self._error,
                "cached": list(self._cache),
                "queue": {"pending": self._pending, "limit": self.settings.score_queue_size},
            }

    def server_model(self) -> LoadedModel | None:
        with self._lock:
            return self._cache.get(self.spec) if self._state == "ready" else None

    def cached(self, spec: str) -> LoadedModel | None:
        """A model already in memory (never loads one)."""
        with self._lock:
            return self._cache.get(spec)

    def resolve(self, spec: str | None) -> str:
        """The spec a request means (None or blank: the server's model)."""
        return spec.strip() if spec and spec.strip() else self.spec

    def check_ready(self, spec: str) -> None:
        """Raise ModelNotReady while the server's model is not usable; other specs load on demand."""
        if spec != self.spec:
            return
        self.ensure_loading()
        with self._lock:
            state, error = self._state, self._error
        if state == "error":
            raise ModelNotReady(f"the server's model {self.spec!r} did not load: {error}", None)
        if state != "ready":
            raise ModelNotReady(
                f"the model {self.spec!r} is still loading; try again in a few seconds",
                LOADING_RETRY_AFTER_S,
            )

    # ------------------------------------------------------------ models (worker thread only)

    def get(self, spec: str) -> LoadedModel:
        """A loaded model for a spec: from the cache, else loaded now (call from the worker)."""
        self.check_ready(spec)
        with self._lock:
            if spec in self._cache:
                self._cache.move_to_end(spec)
                return self._cache[spec]
        loaded = self._load(spec)
        with self._lock:
            self._cache[spec] = loaded
            # Evict the least recently used model, but never the server's own.
            while len(self._cache) > self._cache_size:
                oldest = next(k for k in self._cache if k != self.spec)
                del self._cache[oldest]
        return loaded

    def _load(self, spec: str) -> LoadedModel:
        try:
            # The server's own model was chosen by whoever started it; others are requests.
            local = expand_user(spec)  # the allowed-folder rule before any look at it
            if spec != self.spec and (local.is_absolute() or spec[:1] in ".~" or local.exists()):
                spec = str(check_model_folder(Path(spec), self.settings))
            elif spec != self.spec and is_hub_id(spec):
                return self._load_hub(spec)
            return self._loader(spec)
        except ModelLoadError:
            raise
        except Exception as exc:  # a broken checkpoint is bad input, not a server fault
            raise ModelLoadError(f"cannot load {spec!r}: {exc}") from exc

    def _load_hub(self, spec: str) -> LoadedModel:
        # Refused on a shared server, or at once when offline and not cached (never a long hang
        # holding the only worker); a cached copy loads from its folder, without the network.
        cached = check_hub_spec(spec, self.settings)
        if cached is None:
            return self._loader(spec)
        return dataclasses.replace(self._loader(str(cached)), name=spec, spec=spec)

    # ------------------------------------------------------------ the queue

    def submit(self, fn: Callable[..., T], *args: Any, job: ScoreJob | None = None) -> Future[T]:
        """Queue fn(*args) for the worker thread; QueueFull when too many jobs are waiting.

        With a `job`, a job cancelled while it waited never runs (its client left), and the
        request can stop a running one between chunks (ScoreJob.check).
        """
        limit = self.settings.score_queue_size
        with self._lock:
            if self._pending >= limit + 1:  # one running plus `limit` waiting
                raise QueueFull(
                    f"{self._pending} scoring requests are ahead of this one (limit {limit}); "
                    "try again shortly",
                    retry_after=max(1, self._pending),
                )
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
            if job is not None:  # before the worker can say "started"
                job.emit({"event": "queued", "ahead": self._pending})
            self._pending += 1
            future: Future[T] = self._executor.submit(_call, job, fn, args)
        # Count down when the job ends or is cancelled while waiting.
        future.add_done_callback(self._job_done)
        return future

    async def run(self, fn: Callable[..., T], *args: Any, job: ScoreJob | None = None) -> T:
        """Run fn(*args) in the worker thread and wait for it (see submit)."""
        return await asyncio.wrap_future(self.submit(fn, *args, job=job))

    def _job_done(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    # ------------------------------------------------------------ measured speed

    def record_rate(self, spec: str, tokens: int, seconds: float) -> None:
        """Remember how fast `spec` scored here (tokens/s), for the next estimate."""
        if tokens > 0 and seconds > 0:
            with self._lock:
                self._rates[spec] = tokens / seconds

    def rate(self, spec: str) -> float | None:
        """Tokens/s of the last scoring with `spec` on this machine; None before the first."""
        with self._lock:
            return self._rates.get(spec)


def _call(job: ScoreJob | None, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """The worker's side of a job: drop it unrun when its client has gone."""
    if job is not None:
        job.start()
    return fn(*args)


def get_service(app: Any) -> ModelService:
    """The app's ModelService (built by app.main.create_app)."""
    service: ModelService = app.state.model_service
    return service
