"""The Inspect browser tests' page: opened on the module's `server` once its model is ready, and
failed on any page error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_utils import browser_page
from waiting import PATIENCE_MS


@pytest.fixture
def page(server: str) -> Iterator[Any]:
    errors: list[str] = []
    with browser_page() as tab:
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(server + "/")
        tab.wait_for_function(
            "document.getElementById('model-status').dataset.state === 'ready'", timeout=PATIENCE_MS
        )
        yield tab
    assert not errors, errors
