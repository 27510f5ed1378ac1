"""Waiting in tests: on events (a predicate, a file, a step count), never on wall-clock progress.

Every timeout here is a safety net that a healthy machine never reaches, however busy it is: a
test that needs a run to be fast enough is a flaky test. pytest-timeout (pyproject) is the last net.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

# How long a test waits for an event before it calls the event lost. ENTRODROP_TEST_PATIENCE_S
# shortens it while hunting a failure by hand (a lost event then fails in seconds, not minutes).
PATIENCE_S = float(os.environ.get("ENTRODROP_TEST_PATIENCE_S", "600"))
PATIENCE_MS = int(PATIENCE_S * 1000)  # the same for Playwright, which counts milliseconds


async def wait_until(
    predicate: Callable[[], object], timeout: float = PATIENCE_S, what: str = ""
) -> None:
    """Await until predicate() is truthy (the runner's task ticks meanwhile), or fail."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        await asyncio.sleep(0.05)


def wait_sync(predicate: Callable[[], object], timeout: float = PATIENCE_S, what: str = "") -> None:
    """The same for code that is not async (TestClient, browser tests)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(0.1)
