"""The studies pages in headless Chromium: build a small study on the New study page, launch it,
and see its tables filled in once its runs finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import (
    assert_fits,
    browser_page,
    buttons_outside_cards,
    live_server,
    screenshot,
)
from runs_helpers import fake_app, wait_sync
from waiting import PATIENCE_MS, PATIENCE_S

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
        page.check('input[name="model_kind"][value="folder"]')
        page.fill("#model-folder", str(tiny_model_dir))
        for name, value in (("max_steps", "2"), ("seq_len", "32"), ("batch_size", "2")):
            page.fill(f'[data-field="{name}"]', value)
        page.fill('[data-field="eval_every"]', "1")
        page.fill('[data-field="max_eval_tokens"]', "256")
        page.click("text=entropy vs random ablation")
        # 10 variants x 3 seeds: none, early_stop, EntroDrop and random per drop mode (4 each)
        assert page.text_content("#run-count").startswith("30 runs")
        for box in page.locator(".variant").all():
            box.uncheck()
        page.check("#variants label:has(code:text-is('none')) input")
        page.check("#variants label:has(code:text-is('random-input')) input")
        page.fill("#f-seeds", "0, 1")
        page.locator("#run-count").filter(has_text="4 runs will be queued").wait_for()

        page.click("#launch")
        page.wait_for_url("**/studies/s*", timeout=PATIENCE_MS)
        page.locator('#study-status .badge[data-status="succeeded"]').wait_for(timeout=PATIENCE_MS)
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


def test_studies_pages_fit_a_phone(entrodrop_home: Path, tmp_path: Path) -> None:
    """At 390 px the list, the form and a finished study's page scroll only down, never sideways."""
    app = fake_app(entrodrop_home)  # runs trained by the runs tests' fake trainer
    variants = ["none", "weight_decay", "entrodrop", "random"]
    body = {"name": "entrodrop vs baselines on a phone", "variants": variants, "seeds": [0, 1]}
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        res = httpx.post(f"{url}/api/studies", json=body, timeout=PATIENCE_S)
        assert res.status_code == 201, res.text
        study_id = res.json()["id"]
        wait_sync(
            lambda: (
                httpx.get(f"{url}/api/studies/{study_id}", timeout=PATIENCE_S).json()["status"]
                == "succeeded"
            ),
            PATIENCE_S,
            "the study's fake runs",
        )
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{url}/studies")
        page.locator(f'#studies-table tr[data-study-id="{study_id}"]').wait_for()
        check_narrow(page, "study_list_narrow")
        page.goto(f"{url}/studies/new")
        page.locator("#run-count").filter(has_text="runs").wait_for()
        check_narrow(page, "study_new_narrow")
        page.goto(f"{url}/studies/{study_id}")
        page.locator('#study-status .badge[data-status="succeeded"]').wait_for()
        page.locator("#summary-table tbody tr").nth(len(variants) - 1).wait_for()
        # Each paired row is a card: the difference whole on one line, "CI excludes 0" named.
        row = page.locator("#paired-table tbody tr").first
        diff, verdict = row.locator("td.diff"), row.locator("td.verdict")
        assert "±" in (diff.text_content() or "")
        for cell in (diff, verdict):
            box = cell.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
            assert cell.evaluate("(c) => c.scrollWidth <= c.clientWidth")  # nothing cut off
        assert verdict.get_attribute("data-label") == "CI excludes 0"
        assert verdict.evaluate("(c) => getComputedStyle(c, '::before').content") == (
            '"CI excludes 0"'
        )
        check_narrow(page, "study_detail_narrow")
        assert not errors, errors


def check_narrow(page: Any, name: str) -> None:
    """No sideways scrolling and every button inside its card; a screenshot to look at."""
    assert_fits(page)
    assert buttons_outside_cards(page) == [], page.url
    screenshot(page, name)


def test_an_interrupted_cli_study_says_how_to_continue(entrodrop_home: Path) -> None:
    """A study whose `entrodrop study` process died: the page shows it interrupted, no Cancel
    button, and the --resume command, wrapped to fit a phone."""
    from entrodrop.studies.config import StudyConfig
    from entrodrop.studies.local import create_study

    config = StudyConfig.model_validate({"name": "cut off", "variants": ["none"], "seeds": [0, 1]})
    folder = create_study(config)
    folder.update_run(folder.read()["runs"][0]["id"], status="running")  # then SIGKILL
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{url}/studies/{folder.id}")
        page.locator('#study-status .badge[data-status="interrupted"]').wait_for()
        assert page.is_visible("#study-resume") and not page.is_visible("#cancel-study")
        command = page.text_content("#study-resume-command")
        assert command == f"entrodrop study --resume {folder.path}"
        assert page.locator('#study-runs .badge[data-status="interrupted"]').count() == 1
        check_narrow(page, "study_interrupted_narrow")
        assert not errors, errors
