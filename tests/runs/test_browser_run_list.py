"""The runs list's bookkeeping in headless Chromium (test-double trainer): study runs named and linked
to their study, "Started" as the start (or "queued"), a pair whose other run was deleted, and a
card per run on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import assert_fits, browser_page, live_server, screenshot
from runs_helpers import SEED_MODES, fake_app, wait_sync
from waiting import PATIENCE_S

pytestmark = pytest.mark.browser


def _app(home: Path, tmp_path: Path) -> Any:
    return fake_app(home, cancel_grace_s=2.0)


def _get(url: str, path: str) -> Any:
    res = httpx.get(url + path, timeout=PATIENCE_S)
    assert res.status_code == 200, res.text
    return res.json()


def _post(url: str, path: str, body: Any = None) -> Any:
    res = httpx.post(url + path, json=body, timeout=PATIENCE_S)
    assert res.status_code in (200, 201), res.text
    return res.json()


def _status(url: str, run_id: str) -> str:
    return str(_get(url, f"/api/runs/{run_id}")["status"])


def test_study_runs_started_times_and_a_lone_pair(entrodrop_home: Path, tmp_path: Path) -> None:
    with live_server(_app(entrodrop_home, tmp_path)) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        body = {"name": "lr check", "variants": ["none", "random"], "seeds": [0]}
        study = _post(url, "/api/studies", body)
        pair = _post(url, "/api/runs", {"method": "entrodrop", "compare_with": "none"})["ids"]
        for run_id in [r["id"] for r in study["runs"]] + pair:
            wait_sync(lambda r=run_id: _status(url, r) == "succeeded", PATIENCE_S, "fake runs")
        # While a slow run holds the one slot, the next one waits in the queue.
        slow = _post(url, "/api/runs", {"seed": SEED_MODES["slow"]})["id"]
        wait_sync(lambda: _status(url, slow) == "running", PATIENCE_S, "the slow run to start")
        queued = _post(url, "/api/runs", {})["id"]

        listed = {r["id"]: r for r in _get(url, "/api/runs")["runs"]}
        for run in study["runs"]:
            row = listed[run["id"]]
            assert row["name"] == f"lr check · {run['variant']} · seed 0"
            assert row["study"]["id"] == study["id"] and row["links"]["study"] == study["url"]
        page.goto(f"{url}/runs")
        first = study["runs"][0]
        cell = page.locator(f'tr[data-run-id="{first["id"]}"] .run-cell')
        assert cell.locator(".run-name").text_content() == "lr check · none · seed 0"
        assert cell.locator("a.study-link").get_attribute("href") == study["url"]

        # Started: the start time of a run that started, "queued" for one that waits.
        started = page.locator(f'tr[data-run-id="{slow}"] td.started')
        assert started.get_attribute("data-time") == str(listed[slow]["started_at"])
        assert listed[slow]["started_at"] != listed[slow]["created_at"]
        assert page.locator(f'tr[data-run-id="{queued}"] td.started').text_content() == "queued"
        assert listed[queued]["started_at"] is None

        # A pair whose other run is gone: no chip, no "Compare the pair" leading to "No run".
        page.goto(f"{url}/runs/{pair[0]}")
        assert page.locator("a", has_text="Compare the pair").count() == 1
        assert httpx.delete(f"{url}/api/runs/{pair[1]}", timeout=PATIENCE_S).status_code == 200
        page.goto(f"{url}/runs/{pair[0]}")
        assert page.locator("a", has_text="Compare the pair").count() == 0
        assert _get(url, f"/api/runs/{pair[0]}")["links"]["compare"] is None
        page.goto(f"{url}/runs")
        assert page.locator(f'tr[data-run-id="{pair[0]}"] a.pair:not(.study-link)').count() == 0
        screenshot(page, "runs_list_study")

        # The page follows the queue: once the slow run is stopped the queued one starts.
        _post(url, f"/api/runs/{slow}/cancel")
        wait_sync(lambda: _get(url, f"/api/runs/{queued}")["started_at"] is not None, PATIENCE_S)
        page.wait_for_function(
            "(id) => document.querySelector(`tr[data-run-id='${id}'] td.started`).dataset.time",
            arg=queued,
        )
        assert page.locator(f'tr[data-run-id="{queued}"] td.started').text_content() != "queued"
        assert not errors, errors


def test_runs_list_is_a_card_per_run_on_a_phone(entrodrop_home: Path, tmp_path: Path) -> None:
    with live_server(_app(entrodrop_home, tmp_path)) as url, browser_page() as page:
        ids = [_post(url, "/api/runs", {"method": m})["id"] for m in ("entrodrop", "none")]
        for run_id in ids:
            wait_sync(lambda r=run_id: _status(url, r) == "succeeded", PATIENCE_S, "fake runs")
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{url}/runs")
        assert_fits(page)
        for run_id in ids:
            row = page.locator(f'tr[data-run-id="{run_id}"]')
            for cls, label in (
                ("best-cell", "Best eval loss · step"),
                ("final", "Final eval loss"),
            ):
                cell = row.locator(f"td.{cls}")
                box = cell.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (cls, box)
                assert cell.get_attribute("data-label") == label
                shown = cell.evaluate("(c) => getComputedStyle(c, '::before').content")
                assert shown == f'"{label}"'  # the card names each number
                assert cell.text_content() == "5.7000"  # the fake trainer's last eval loss
            assert row.locator(".badge").is_visible()
            for cls in ("started", "disk", "method-cell", "run-cell"):  # nothing cut off
                assert row.locator(f"td.{cls}").evaluate("(c) => c.scrollWidth <= c.clientWidth")
        screenshot(page, "runs_list_narrow")
