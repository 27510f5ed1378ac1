"""The runs pages in headless Chromium: fill the form, launch, watch the curve appear and finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_utils import browser_page, live_server, screenshot
from waiting import PATIENCE_MS

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.browser


def test_form_launch_watch_and_finish(entrodrop_home: Path, tiny_model_dir: Path) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    app.state.jobs.poll_interval = 0.2
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/runs/new")
        page.check('input[name="model_kind"][value="folder"]')
        page.fill("#model-folder", str(tiny_model_dir))

        # A bad value is reported beside its own field, in the server's words.
        page.fill('[data-field="batch_size"]', "0")
        batch_error = page.locator('[data-error-for="batch_size"]')
        batch_error.filter(has_text="greater than or equal to 1").wait_for()
        page.fill('[data-field="batch_size"]', "2")
        for name, value in (("max_steps", "4"), ("seq_len", "32"), ("eval_every", "2")):
            page.fill(f'[data-field="{name}"]', value)
        page.click("text=More settings")
        page.fill('[data-field="max_eval_tokens"]', "256")
        page.wait_for_function(
            "!document.querySelector('[data-error-for=\"batch_size\"]').textContent"
        )
        page.wait_for_function(
            "document.querySelector('#config-json').textContent.includes('\"max_steps\": 4')"
        )
        assert page.text_content("#cli-command") == "entrodrop train --config run.json"

        # The first-batch preview: three progress points; at s = 1 some tokens are struck out.
        page.click("#preview-button")
        page.locator("#preview-points button").nth(2).wait_for(timeout=PATIENCE_MS)
        page.locator("#preview-points button").nth(2).click()
        assert page.locator("#preview .tok.dropped").count() > 0
        screenshot(page, "runs_new_form")

        page.click("#launch")
        page.wait_for_url("**/runs/r*", timeout=PATIENCE_MS)
        page.wait_for_function(
            "Number(document.querySelector('#chart-train').dataset.points || 0) > 0",
            timeout=PATIENCE_MS,
        )  # the curve appeared while the run was live
        page.locator('#run-status .badge[data-status="succeeded"]').wait_for(timeout=PATIENCE_MS)
        page.wait_for_function(
            "Number(document.querySelector('#chart-eval').dataset.points || 0) >= 6"
        )  # overall, low- and high-entropy held-out loss at steps 2 and 4
        assert page.is_visible("#inspect-link") and not page.is_visible("#cancel-run")
        assert "step 4" in (page.text_content("#checkpoint-step") or "")
        screenshot(page, "runs_detail")

        page.goto(f"{url}/runs")
        page.locator('tr .badge[data-status="succeeded"]').wait_for()
        screenshot(page, "runs_list")
        assert not errors, errors
