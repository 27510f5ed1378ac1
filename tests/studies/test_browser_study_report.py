"""The study page's "Download report" in headless Chromium: the saved file opens with every
network request refused, its tables render, and it asks for nothing over http(s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import browser_page, live_server, screenshot
from runs_helpers import fake_app, wait_sync
from waiting import PATIENCE_S

from app.main import create_app
from app.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _finished_study(url: str) -> str:
    body = {"name": "report check", "variants": ["none", "random"], "seeds": [0, 1]}
    res = httpx.post(f"{url}/api/studies", json=body, timeout=PATIENCE_S)
    assert res.status_code == 201, res.text
    study_id = str(res.json()["id"])

    def done() -> bool:
        study = httpx.get(f"{url}/api/studies/{study_id}", timeout=PATIENCE_S).json()
        return bool(study["status"] == "succeeded")

    wait_sync(done, PATIENCE_S, "the study's fake runs")
    return study_id


def test_the_report_button_saves_a_file_that_opens_offline(
    entrodrop_home: Path, tmp_path: Path
) -> None:
    app = fake_app(entrodrop_home)  # runs trained by the runs tests' fake trainer
    with live_server(app) as url, browser_page() as page:
        study_id = _finished_study(url)
        page.goto(f"{url}/studies/{study_id}")
        page.locator('#study-status .badge[data-status="succeeded"]').wait_for()
        with page.expect_download() as info:
            page.click("#download-report")
        saved = tmp_path / "report.html"
        info.value.save_as(saved)
        assert info.value.suggested_filename.endswith(".html")

        # Offline: anything but the file itself is refused, and every ask is recorded.
        asked: list[str] = []

        def refuse(route: Any) -> None:
            asked.append(route.request.url)
            route.abort()

        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
            "file://") else refuse(route))  # fmt: skip
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(saved.as_uri())
        page.locator("table").first.wait_for()
        assert page.locator("table tbody tr").count() >= 2  # the variants' rows
        assert "none" in (page.locator("table").first.text_content() or "")
        assert page.locator("svg").count() > 0  # the curves, drawn into the file itself
        screenshot(page, "study_report_offline")
        assert [u for u in asked if u.startswith(("http://", "https://"))] == []
        assert not errors, errors


def test_new_study_shows_the_whole_studys_time_and_disk_and_takes_benchmarks(
    entrodrop_home: Path,
) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/studies/new")
        estimate = page.locator('#study-estimate[data-state="done"]')
        estimate.wait_for()
        text = estimate.text_content() or ""
        assert " runs: about " in text and "disk " in text and " free under the home" in text
        # The offline tasks come ticked; what stays ticked goes into every run's config (the
        # base), with its limit.
        assert page.is_checked('.eval-task[value="python_docs_mc"]')
        page.uncheck('.eval-task[value="python_reference_ppl"]')
        page.fill("#f-eval_limit", "5")
        with page.expect_request("**/api/studies/check") as asked:
            page.fill("#f-seeds", "0, 1")
        base = asked.value.post_data_json["base"]
        assert base["eval_tasks"] == ["python_docs_mc"] and base["eval_limit"] == 5
        page.locator('#study-estimate[data-state="done"]').wait_for()
        screenshot(page, "study_new_estimate")
        assert not errors, errors
