"""The runs pages in headless Chromium: fill the form, launch, watch the curve appear and finish."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browser_utils import assert_fits, browser_page, live_server, screenshot
from runs_helpers import SEED_MODES, fake_app, wait_sync
from waiting import PATIENCE_MS, PATIENCE_S

from app.main import create_app
from app.runs.facts import METRIC_LABELS
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


# ---------------------------------------------------------------- managing runs (test-double child)

NARROW = {"width": 390, "height": 844}


def _fake_app(entrodrop_home: Path, tmp_path: Path) -> Any:
    return fake_app(entrodrop_home, cancel_grace_s=2.0)


def _launch(url: str, seed: int | None = None, **extra: Any) -> str:
    body = {"seed": seed, **extra} if seed is not None else extra
    res = httpx.post(f"{url}/api/runs", json=body, timeout=PATIENCE_S)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def _run(url: str, run_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/api/runs/{run_id}", timeout=PATIENCE_S).json())


def test_cancel_restart_attempts_rename_and_delete(entrodrop_home: Path, tmp_path: Path) -> None:
    app = _fake_app(entrodrop_home, tmp_path)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        run_id = _launch(url, SEED_MODES["slow"])
        page.goto(f"{url}/runs/{run_id}")
        page.wait_for_function("Number(document.querySelector('#chart-train').dataset.points) > 2")
        dialogs: list[str] = []

        def accept(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        page.click("#cancel-run")
        page.locator('#run-status .badge[data-status="cancelled"]').wait_for()
        assert dialogs and "Stop this run" in dialogs[0]  # asked before cancelling
        # Cancelled before any checkpoint: it can only restart, and the page says why.
        page.locator("#restart-run").wait_for()
        assert not page.is_visible("#resume-run") and page.is_visible("#restart-note")
        first_points = int(page.get_attribute("#chart-train", "data-points") or 0)
        page.click("#restart-run")
        wait_sync(lambda: _run(url, run_id)["attempts"] == 2, PATIENCE_S, "the second attempt")
        page.wait_for_function(
            "document.querySelector('#chart-train').dataset.attempts === '2'"
        )  # the chart shows the new attempt only
        page.locator("#earlier-label").wait_for()
        page.check("#earlier-attempts")
        page.wait_for_function("document.querySelector('#chart-train').dataset.attempts === '1,2'")
        page.uncheck("#earlier-attempts")
        page.click("#cancel-run")
        page.locator('#run-status .badge[data-status="cancelled"]').wait_for()
        rows = httpx.get(f"{url}/api/runs/{run_id}/metrics", timeout=PATIENCE_S).json()
        assert {r["attempt"] for r in rows} == {2} and first_points > 0
        screenshot(page, "runs_detail_restart")

        # Rename, tag and annotate it.
        page.click("#run-meta summary")
        page.fill("#meta-name", "lr sweep 1")
        page.fill("#meta-tags", "sweep, bad tag")
        page.click("#meta-save")
        page.locator("#meta-state").filter(has_text="pattern").wait_for()  # refused, with why
        page.fill("#meta-tags", "sweep, paper")
        page.fill("#meta-notes", "the first restart")
        page.click("#meta-save")
        page.locator("#meta-state").filter(has_text="saved").wait_for()
        assert page.text_content("#run-name") == "lr sweep 1"
        got = _run(url, run_id)
        assert (got["name"], got["tags"], got["notes"]) == (
            "lr sweep 1",
            ["sweep", "paper"],
            "the first restart",
        )

        # Delete it (after a confirmation); the list no longer has it and the folder is gone.
        page.click("#delete-run")
        page.wait_for_url(f"{url}/runs")
        assert any("cannot be undone" in d for d in dialogs)
        assert not (entrodrop_home / "runs" / run_id).exists()
        assert httpx.get(f"{url}/api/runs/{run_id}", timeout=PATIENCE_S).status_code == 404
        assert not errors, errors


def test_resume_offered_only_with_a_checkpoint(entrodrop_home: Path, tmp_path: Path) -> None:
    app = _fake_app(entrodrop_home, tmp_path)
    with live_server(app) as url, browser_page() as page:
        run_id = _launch(url, SEED_MODES["ckpt"])
        wait_sync(
            lambda: _run(url, run_id)["checkpoint"] == "checkpoint-3", PATIENCE_S, "a checkpoint"
        )
        httpx.post(f"{url}/api/runs/{run_id}/cancel", timeout=PATIENCE_S)
        wait_sync(lambda: _run(url, run_id)["status"] == "cancelled", PATIENCE_S, "the cancel")
        page.goto(f"{url}/runs/{run_id}")
        assert page.is_visible("#resume-run") and not page.is_visible("#restart-run")
        assert "checkpoint-3" in (page.text_content("#resume-run") or "")
        page.click("#resume-run")
        page.locator('#run-status .badge[data-status="running"]').wait_for()
        wait_sync(lambda: _run(url, run_id)["step"] > 4, PATIENCE_S, "steps after the checkpoint")
        httpx.post(f"{url}/api/runs/{run_id}/cancel", timeout=PATIENCE_S)
        page.locator('#run-status .badge[data-status="cancelled"]').wait_for()
        # The resumed attempt's curve is whole: one point per step from step 1.
        page.wait_for_function("document.querySelector('#chart-train').dataset.attempts === '2'")
        xs = page.evaluate("document.querySelector('#chart-train').data[0].x")
        assert xs == list(range(1, len(xs) + 1)), xs


def test_list_filters_sorts_compares_and_fits_a_phone(entrodrop_home: Path, tmp_path: Path) -> None:
    app = _fake_app(entrodrop_home, tmp_path)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        ids = [_launch(url, method=m) for m in ("entrodrop", "none", "random")]
        for run_id in ids:
            wait_sync(
                lambda r=run_id: _run(url, r)["status"] == "succeeded", PATIENCE_S, "fake runs"
            )
        httpx.patch(f"{url}/api/runs/{ids[1]}", json={"tags": ["baseline"]}, timeout=PATIENCE_S)
        page.goto(f"{url}/runs")
        rows = page.locator("tr[data-run-id]:visible")
        assert rows.count() == 3
        page.select_option("#filter-method", "random")
        assert rows.count() == 1 and rows.first.get_attribute("data-run-id") == ids[2]
        page.select_option("#filter-method", "")
        page.select_option("#filter-tag", "baseline")
        assert rows.count() == 1 and rows.first.get_attribute("data-run-id") == ids[1]
        page.select_option("#filter-tag", "")
        page.fill("#filter-text", ids[0][-6:])
        assert rows.count() == 1
        page.fill("#filter-text", "")
        page.click('button.sort[data-sort="method"]')  # ascending by method label
        order = [rows.nth(i).get_attribute("data-method") for i in range(3)]
        assert order == ["entrodrop", "none", "random"]
        page.click('button.sort[data-sort="method"]')
        assert rows.first.get_attribute("data-method") == "random"
        screenshot(page, "runs_list_sorted")

        for run_id in ids:
            page.check(f'.pick[value="{run_id}"]')
        page.click("#compare-selected")
        page.wait_for_url("**/compare?runs=*")
        assert sorted(page.url.split("runs=")[1].split(",")) == sorted(ids)
        page.wait_for_function("document.querySelector('#chart-train').dataset.points === '9'")
        page.select_option("#x-axis", "tokens")  # tokens seen = step × batch × accum × length
        page.wait_for_function("document.querySelector('#chart-train').dataset.axis === 'tokens'")
        run = _run(url, ids[0])
        xs = page.evaluate("document.querySelector('#chart-train').data[0].x")
        assert xs == [s * run["tokens_per_step"] for s in (1, 2, 3)]
        title = page.evaluate("document.querySelector('#chart-train').layout.xaxis.title.text")
        assert title == "tokens seen"
        screenshot(page, "runs_compare")

        # The `none` baseline's config shows no EntroDrop block.
        page.goto(f"{url}/runs/{ids[1]}")
        assert '"entrodrop"' not in (page.text_content(".config-json") or "")
        page.goto(f"{url}/runs/{ids[0]}")
        assert '"entrodrop"' in (page.text_content(".config-json") or "")

        page.set_viewport_size(NARROW)
        for path in ("/runs", f"/runs/{ids[0]}", f"/compare?runs={','.join(ids)}", "/runs/new"):
            page.goto(url + path)
            page.wait_for_load_state("networkidle")
            assert_fits(page)
        page.goto(f"{url}/runs/{ids[0]}")
        page.wait_for_function("Number(document.querySelector('#chart-train').dataset.points) > 0")
        box, card = (
            page.locator("#delete-run").bounding_box(),
            page.locator(".run-head").bounding_box(),
        )
        assert box and card and box["x"] + box["width"] <= card["x"] + card["width"]
        screenshot(page, "runs_detail_narrow")
        page.goto(f"{url}/runs")
        screenshot(page, "runs_list_narrow")
        page.set_viewport_size({"width": 1024, "height": 900})
        for path in ("/runs", f"/runs/{ids[0]}", f"/compare?runs={','.join(ids)}", "/runs/new"):
            page.goto(url + path)
            assert_fits(page)
        assert not errors, errors


def test_api_docs_load_with_no_request_to_another_host(entrodrop_home: Path) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    with live_server(app) as url, browser_page() as page:
        hosts: set[str] = set()
        blocked: list[str] = []
        # blob: URLs are this page's own (ReDoc's search worker): not another host.
        page.on(
            "request",
            lambda req: hosts.add(urlsplit(req.url.removeprefix("blob:")).hostname or req.url),
        )
        page.on(
            "console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None
        )
        page.goto(f"{url}/docs")
        page.locator(".swagger-ui .info .title").filter(has_text="EntroDrop Studio").wait_for()
        page.locator(".opblock-summary-path", has_text="/api/runs/{run_id}").first.wait_for()
        screenshot(page, "api_docs")
        page.goto(f"{url}/redoc")
        page.locator("h1", has_text="EntroDrop Studio").wait_for(timeout=PATIENCE_MS)
        page.wait_for_load_state("networkidle")
        assert hosts == {"127.0.0.1"} and not blocked, (hosts, blocked)


# ---------------------------------------------------------------- charts: synced hover and exports


def _finished_runs(url: str, n: int) -> list[str]:
    """n fake runs (three steps of train and held-out loss each), waited on until they succeed."""
    ids = [_launch(url, seed=i) for i in range(n)]
    for run_id in ids:
        wait_sync(lambda r=run_id: _run(url, r)["status"] == "succeeded", PATIENCE_S, "fake runs")
    return ids


def _hover_text(page: Any, chart: str) -> str:
    return str(page.evaluate(f"document.querySelector('#chart-{chart} .hoverlayer').textContent"))


def test_hover_on_one_chart_shows_the_same_step_on_the_others(
    entrodrop_home: Path, tmp_path: Path
) -> None:
    app = _fake_app(entrodrop_home, tmp_path)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        ids = _finished_runs(url, 2)
        page.goto(f"{url}/compare?runs={','.join(ids)}")
        page.wait_for_function("document.querySelector('#chart-train').dataset.points === '6'")
        page.wait_for_function("document.querySelector('#chart-eval').dataset.points === '6'")
        assert _hover_text(page, "eval") == ""
        # The mouse on step 2's marker of the train-loss chart (the fake trainer: 5.0 - step / 10).
        # Plotly's drag layer takes the pointer events: move the mouse there, over the marker.
        marker = page.locator("#chart-train .scatterlayer .trace:first-child .points path").nth(1)
        box = marker.bounding_box()
        assert box
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function(
            "document.querySelector('#chart-train .hoverlayer').textContent.includes('4.8')"
        )
        # The held-out chart shows its own values at the same step (6.0 - step / 10), per run.
        page.wait_for_function(
            "document.querySelector('#chart-eval .hoverlayer').textContent.includes('5.8')"
        )
        text = _hover_text(page, "eval")
        assert text.count("5.8") == 2 and "5.9" not in text and "5.7" not in text, text
        screenshot(page, "runs_compare_hover")
        # Leaving the chart clears the label on the others too.
        page.mouse.move(1, 1)
        page.wait_for_function(
            "document.querySelector('#chart-eval .hoverlayer').textContent === ''"
        )
        assert not errors, errors


def test_each_chart_exports_its_points_as_csv_and_png(entrodrop_home: Path, tmp_path: Path) -> None:
    app = _fake_app(entrodrop_home, tmp_path)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        (run_id,) = _finished_runs(url, 1)
        page.goto(f"{url}/runs/{run_id}")
        page.wait_for_function("document.querySelector('#chart-train').dataset.points === '3'")
        card = page.locator('.chart-card[data-panel="train"]')
        with page.expect_download() as got:
            card.locator(".export-csv").click()
        csv_file = got.value
        assert csv_file.suggested_filename == f"{run_id}-train.csv"
        lines = Path(csv_file.path()).read_text().splitlines()
        assert lines[0] == "series,step,value"
        metrics = httpx.get(f"{url}/api/runs/{run_id}/metrics", timeout=PATIENCE_S).json()
        want = [
            f"{METRIC_LABELS['train/loss']},{m['step']},{m['value']:g}"
            for m in metrics
            if m["name"] == "train/loss"
        ]
        assert lines[1:] == want and len(want) == 3, lines

        # On another x-axis the CSV follows what is drawn: its header names the axis.
        page.select_option("#x-axis", "epoch")
        page.wait_for_function("document.querySelector('#chart-train').dataset.axis === 'epoch'")
        with page.expect_download() as got:
            card.locator(".export-csv").click()
        lines = Path(got.value.path()).read_text().splitlines()
        assert lines[0] == "series,epoch,value"
        assert [float(line.split(",")[1]) for line in lines[1:]] == [0.1, 0.2, 0.3]

        with page.expect_download() as got:
            card.locator(".export-png").click()
        png = got.value
        assert png.suggested_filename == f"{run_id}-train.png"
        data = Path(png.path()).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, len(data)
        assert not errors, errors


def test_compare_exports_raw_and_smoothed_and_never_smooths_the_schedule(
    entrodrop_home: Path, tmp_path: Path
) -> None:
    """The chart CSV holds the raw values and, while smoothing is on, the smoothed ones in a named
    column; r(s) (deterministic) is never smoothed; the PNG carries the title and axis titles."""
    app = _fake_app(entrodrop_home, tmp_path)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        ids = [_launch(url, SEED_MODES["drops"], method=m) for m in ("entrodrop", "random")]
        for run_id in ids:
            wait_sync(lambda r=run_id: _run(url, r)["status"] == "succeeded", PATIENCE_S, "runs")
        page.goto(f"{url}/compare?runs={','.join(ids)}")
        page.wait_for_function("document.querySelector('#chart-drop').dataset.points === '32'")
        page.fill("#smoothing", "0.55")  # fires `input`, as dragging does
        page.wait_for_function(
            "document.querySelector('#chart-train').dataset.smoothing === '0.55'"
        )

        def exported(panel: str) -> list[dict[str, str]]:
            with page.expect_download() as got:
                page.locator(f'.chart-card[data-panel="{panel}"] .export-csv').click()
            return list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text())))

        raw = {
            (r["step"], r["name"]): r["value"]
            for r in httpx.get(f"{url}/api/runs/{ids[0]}/metrics", timeout=PATIENCE_S).json()
        }
        train = exported("train")
        assert list(train[0]) == ["series", "step", "value", "smoothed_ema_0.55"]
        mine = [
            r
            for r in train
            if r["series"].startswith(
                page.evaluate("document.querySelector('#chart-train').data[0].name")
            )
        ]
        assert [float(r["value"]) for r in mine] == [raw[(s, "train/loss")] for s in range(1, 9)]
        assert any(abs(float(r["smoothed_ema_0.55"]) - float(r["value"])) > 0.05 for r in mine)

        drop = exported("drop")
        schedule = [r for r in drop if METRIC_LABELS["drop/rate_scheduled"] in r["series"]]
        assert len(schedule) == 16 and all(r["smoothed_ema_0.55"] == "" for r in schedule)
        # As drawn: r(s) keeps its raw values, so its last value is the schedule's, not a mean.
        drawn = page.evaluate(
            "document.querySelector('#chart-drop').data"
            ".filter((t) => t.meta && t.meta.metric === 'drop/rate_scheduled').map((t) => t.y)"
        )
        assert drawn[0] == [raw[(s, "drop/rate_scheduled")] for s in range(1, 9)]
        assert "all trained tokens" in (page.text_content('.chart-card[data-panel="drop"]') or "")

        # The PNG: Plotly renders the figure the button hands it; record that figure.
        page.evaluate(
            """() => { const real = Plotly.downloadImage;
              Plotly.downloadImage = (fig, opts) => { window.exportedFigure = fig; return real(fig, opts); }; }"""
        )
        with page.expect_download() as got:
            page.locator('.chart-card[data-panel="train"] .export-png').click()
        assert Path(got.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        layout = page.evaluate("window.exportedFigure.layout")
        assert layout["title"]["text"] == "Training loss"
        assert layout["xaxis"]["title"]["text"] == "step"
        assert layout["yaxis"]["title"]["text"] == "loss (nats)"
        screenshot(page, "runs_compare_exports")
        assert not errors, errors
