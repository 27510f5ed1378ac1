"""The studies pages in headless Chromium: build a small study on the New study page, launch it,
and see its tables filled in once its runs finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_utils import browser_page, live_server, screenshot

from app.main import create_app
from app.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def test_new_study_form_launch_and_table(entrodrop_home: Path, tiny_model_dir: Path) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    app.state.jobs.poll_interval = 0.2
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/studies/new")
        page.fill("#f-name", "tiny none vs random")
        page.fill("#f-model", str(tiny_model_dir))
        for name, value in (("max_steps", "2"), ("seq_len", "32"), ("batch_size", "2")):
            page.fill(f'[data-field="{name}"]', value)
        page.fill('[data-field="eval_every"]', "1")
        page.fill('[data-field="max_eval_tokens"]', "256")
        page.click("text=entropy vs random ablation")
        assert page.text_content("#run-count").startswith("21 runs")  # 7 variants x 3 seeds
        for box in page.locator(".variant").all():
            box.uncheck()
        page.check("#variants label:has(code:text-is('none')) input")
        page.check("#variants label:has(code:text-is('random-input')) input")
        page.fill("#f-seeds", "0, 1")
        page.locator("#run-count").filter(has_text="4 runs will be queued").wait_for()

        page.click("#launch")
        page.wait_for_url("**/studies/s*", timeout=30_000)
        page.locator('#study-status .badge[data-status="succeeded"]').wait_for(timeout=540_000)
        # Columns in the outcomes' own order (the page's facts), the final held-out loss first.
        assert (
            page.locator("#summary-table thead th").nth(2).text_content() == "final held-out loss"
        )
        rows = page.locator("#summary-table tbody tr")
        assert rows.count() == 2
        assert (
            page.locator('#summary-table tr[data-variant="random-input"] td.n').text_content()
            == "2"
        )
        assert (
            "±"
            in page.locator('#summary-table tr[data-variant="none"] td.stat').first.text_content()
        )
        assert (
            page.locator('#paired-table tr[data-variant="random-input"][data-vs="none"]').count()
            == 1
        )
        assert "n=2" in page.text_content("#readings")
        page.wait_for_function(
            "Number(document.querySelector('#chart-rebound').dataset.traces) === 2"
        )
        screenshot(page, "study_page")  # docs/screenshots/study_page.png is a copy of it
        assert errors == []
