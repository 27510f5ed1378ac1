"""After training in headless Chromium (test-double trainer): an early-stopped run's page with its
best step beside the final values, benchmarks, the export section and the Evaluate action; the
runs list's best step and total disk; compare's best step and benchmark column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import assert_fits, browser_page, live_server, screenshot
from runs_helpers import SEED_MODES, fake_app, wait_sync
from waiting import PATIENCE_MS, PATIENCE_S

from app.runs.facts import METRIC_LABELS
from entrodrop.metrics import EVAL_LOSS

pytestmark = pytest.mark.browser
NARROW = {"width": 390, "height": 844}


def _app(home: Path) -> Any:
    return fake_app(home)


def _run(url: str, run_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/api/runs/{run_id}", timeout=PATIENCE_S).json())


def _finished_run(url: str) -> str:
    body = {"seed": SEED_MODES["after"], "early_stopping_patience": 1}
    res = httpx.post(f"{url}/api/runs", json=body, timeout=PATIENCE_S)
    assert res.status_code == 201, res.text
    run_id = str(res.json()["id"])
    wait_sync(lambda: _run(url, run_id)["status"] == "succeeded", PATIENCE_S, "the fake run")
    return run_id


def _check_best_and_stop(page: Any) -> None:
    stopped = page.text_content("#stopped-early") or ""
    assert stopped.startswith("Early stopping at step 3: held-out loss (eval/loss) did not")
    assert "early stopping at step" not in stopped  # the step is said once
    assert "Best (step 2)" in (page.text_content("#best-table thead") or "")
    row = page.locator(f'#best-table tr[data-metric="{EVAL_LOSS}"]')
    assert row.locator("td").nth(0).text_content() == METRIC_LABELS[EVAL_LOSS]
    assert row.locator(".best-value").text_content() == "5.5000"
    assert row.locator(".final-value").text_content() == "5.7000"
    assert page.is_visible("#inspect-best")


def _check_export(page: Any, run_id: str) -> None:
    options = page.eval_on_selector_all("#export-checkpoint option", "os => os.map(o => o.value)")
    assert options == ["final", "best", "2", "3"]
    assert not page.is_visible("#export-merge-label")  # full weights: nothing to merge
    page.select_option("#export-checkpoint", "best")
    href = page.get_attribute("#export-download", "href") or ""
    assert href == f"/api/runs/{run_id}/export.zip?checkpoint=best"
    command = page.text_content("#export-command") or ""
    assert command.startswith(f"entrodrop export {run_id} --checkpoint best --out ")
    page.select_option("#export-checkpoint", "2")
    assert "--checkpoint 2 " in (page.text_content("#export-command") or "")


def test_a_finished_run_page_best_export_benchmarks_and_evaluate(entrodrop_home: Path) -> None:
    with live_server(_app(entrodrop_home)) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        run_id = _finished_run(url)
        page.goto(f"{url}/runs/{run_id}")
        page.locator('#run-status .badge[data-status="succeeded"]').wait_for()
        _check_best_and_stop(page)
        bench = page.locator('#bench-table tr[data-task="python_docs_mc"]')
        assert "0.5000 ± 0.1000" in (bench.text_content() or "")
        _check_export(page, run_id)
        screenshot(page, "runs_detail_after")

        # Evaluate: the offline tasks come ticked; the job goes through the one queue.
        ticked = page.eval_on_selector_all(
            "#evaluate-tasks input:checked", "xs => xs.map(x => x.value)"
        )
        assert ticked == ["python_docs_mc", "python_reference_ppl"]
        page.fill("#evaluate-limit", "2")
        page.click("#evaluate-run")
        page.locator("#evaluate-state", has_text="queued").wait_for(timeout=PATIENCE_MS)
        page.locator('#run-status .badge[data-status="succeeded"]').wait_for(timeout=PATIENCE_MS)
        assert page.is_visible("#evaluate-form")

        page.set_viewport_size(NARROW)
        page.reload()
        page.locator("#export-card").wait_for()
        assert_fits(page)
        screenshot(page, "runs_detail_after_narrow")
        assert not errors, errors


def test_the_runs_list_and_compare_show_the_best_step(entrodrop_home: Path) -> None:
    with live_server(_app(entrodrop_home)) as url, browser_page() as page:
        run_id = _finished_run(url)
        page.goto(f"{url}/runs")
        row = page.locator(f'tr[data-run-id="{run_id}"]')
        assert "step 2 · stopped early" in (row.locator(".best-step").text_content() or "")
        assert "5.5000" in (row.locator(".best").text_content() or "")
        disk = page.text_content("#home-disk") or ""
        assert disk.startswith("Runs use ") and disk.endswith(" free")
        page.goto(f"{url}/compare?runs={run_id}")
        cells = page.locator(f'tr[data-run-id="{run_id}"]')
        assert (cells.locator(".best-step").text_content() or "").startswith("2")
        bench = cells.locator('.bench-metric[data-name="python_docs_mc: acc"]')
        assert bench.text_content() == "0.5000"
