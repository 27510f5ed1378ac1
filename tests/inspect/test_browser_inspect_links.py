"""Links to the Inspect page restore a view but do no work their reader did not ask for: a page on
another site that navigates the browser to `/?model=<folder>&text=x` gets no model loaded and
nothing scored until the reader clicks Score (headless Chromium, tiny model)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from browser_utils import browser_page, live_server, screenshot
from waiting import PATIENCE_MS, PATIENCE_S, wait_sync

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.browser

ATTACKER = "http://attacker.example/"  # answered by the test (page.route): another site


def counting_submits(app: Any) -> list[str]:
    """Every job the model worker is handed (scoring, compare, preview), as it is handed."""
    service = app.state.model_service
    submitted: list[str] = []
    real = service.submit

    def submit(fn: Any, *args: Any, **kw: Any) -> Any:
        submitted.append(repr(fn))
        return real(fn, *args, **kw)

    service.submit = submit
    return submitted


def cached(url: str) -> list[str]:
    return list(httpx.get(f"{url}/api/model", timeout=PATIENCE_S).json()["cached"])


def test_a_cross_site_link_loads_and_scores_nothing_until_a_click(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-model"  # a checkpoint the server has not loaded
    shutil.copytree(tiny_model_dir, other)
    app = create_app(Settings(home=tmp_path / "home", model=str(tiny_model_dir)))
    submitted = counting_submits(app)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        wait_sync(
            lambda: httpx.get(f"{url}/api/health", timeout=PATIENCE_S).json()["model_loaded"],
            PATIENCE_S,
            "the server's own model",
        )
        assert cached(url) == [str(tiny_model_dir)]
        target = f"{url}/?{urlencode({'model': str(other), 'text': 'x = 1'})}"
        page.route(
            ATTACKER,
            lambda route: route.fulfill(
                content_type="text/html",
                body=f"<script>location.href = {target!r};</script>",
            ),
        )
        page.goto(ATTACKER)  # another site's page sends the browser to the link
        page.wait_for_url(f"{url}/?*")
        # The page ran its link handling: the form holds the link's request and says what it is.
        note = page.locator("#link-note")
        note.filter(has_text="Nothing has been loaded or scored").wait_for()
        assert str(other) in (note.text_content() or "") and "5 characters" in (
            note.text_content() or ""
        )
        assert page.input_value("#text") == "x = 1"
        assert page.input_value("#model-folder") == str(other)
        page.wait_for_function("document.getElementById('model-status').dataset.state === 'ready'")
        page.wait_for_load_state("networkidle")  # whatever the page does by itself is done
        screenshot(page, "inspect_link_waits")
        assert submitted == [] and cached(url) == [str(tiny_model_dir)]
        assert page.evaluate("window.EntroInspect.state.renderCount") == 0

        page.click("#score-btn")  # the reader asks: now it loads and scores
        page.wait_for_function("window.EntroInspect.state.renderCount > 0", timeout=PATIENCE_MS)
        assert len(submitted) == 1 and str(other) in cached(url)
        assert not note.is_visible()

        # A link with a short text on the server's own model restores the view scored.
        page.goto(f"{url}/?{urlencode({'text': 'y = 2'})}")
        page.wait_for_function("window.EntroInspect.state.renderCount > 0", timeout=PATIENCE_MS)
        assert "is scored with the server's model" in (note.text_content() or "")
        assert len(submitted) == 2
        assert not errors, errors
