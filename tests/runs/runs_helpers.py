"""Helpers for the runs tests: the test-double training child, a client factory, waiting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fake_trainer
import pytest
from fastapi.testclient import TestClient
from waiting import PATIENCE_S, wait_sync, wait_until  # noqa: F401  (re-exported for the runs tests)

from app.main import create_app
from app.settings import Settings
from entrodrop.runfolder import ACTIVE

# The test double of the training process (a real module: it writes through entrodrop.runfolder).
FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")
# The seed that picks each behaviour, for runs whose model must pass validation.
SEED_MODES = {mode: seed for seed, mode in fake_trainer.SEED_MODES.items()}


ClientFactory = Callable[..., Any]


@pytest.fixture
def make_client(entrodrop_home: Path) -> ClientFactory:
    """A TestClient (lifespan running) on this test's home; fake=True swaps in the test double."""

    @contextmanager
    def make(fake_child: bool = True, **kw: Any) -> Iterator[TestClient]:
        with TestClient(fake_app(entrodrop_home, fake_child, **kw)) as client:
            yield client

    return make


def fake_app(home: Path, fake_child: bool = True, **kw: Any) -> Any:
    """The app on `home` (no model loaded at start), its queue polled every 0.1 s, and with
    fake_child its runs trained by the test double instead of the real training process."""
    app = create_app(Settings(home=home, load_model_on_startup=False, **kw))
    app.state.jobs.poll_interval = 0.1
    if fake_child:
        app.state.jobs.entry = (str(FAKE_TRAINER),)
    return app


def wait_ended(client: TestClient, run_id: str, timeout: float = PATIENCE_S) -> dict[str, Any]:
    """The run's API record once it is neither queued nor running."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(client.get(f"/api/runs/{run_id}").json())
        return seen["status"] not in ACTIVE

    wait_sync(done, timeout, f"run {run_id}")
    return seen
