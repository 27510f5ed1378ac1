"""The Tokens view with records written through the library's writer: a record at the bound (8,192
tokens x 64 evaluations) renders and a slider step recolours the same span elements; a running
run's view grows as its evaluations arrive; two runs that follow different tokens are told why."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from browser_utils import assert_fits, browser_page, live_server, screenshot
from records import large_record, make_probe, make_record
from runs_helpers import fake_app, wait_sync
from waiting import PATIENCE_MS, PATIENCE_S

from app.main import create_app
from app.settings import Settings
from entrodrop.runfolder import RunFolder
from entrodrop.tokens import MAX_EVALUATIONS, MAX_PROBE_TOKENS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]
SPANS = "#tok-heat .tok"

# A training child that writes one evaluation (its token record row and its eval/loss) each time
# the test says so (a file go<k>), so the test sees the page follow a live run step by step.
LIVE_CHILD = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[sys.argv.index("--records") + 1])
from records import make_record
from entrodrop import metrics
from entrodrop.runfolder import RunFolder

run_dir = Path(sys.argv[sys.argv.index("--run-dir") + 1])
folder = RunFolder(run_dir)
losses = [[4.0, 3.0, 2.0, 5.0], [3.0, 2.0, 2.5, 4.0], [2.0, 2.5, 3.5, 3.0]]
folder.write_status("running", step=0, total_steps=4, progress=0.0, started_at=time.time())
for k in range(3):
    while k and not (run_dir / f"go{k}").exists():
        time.sleep(0.05)
    folder.write_tokens(make_record(losses[: k + 1], steps=[0, 2, 4][: k + 1], every=2))
    mean = sum(losses[k]) / 4
    folder.append_metrics([{"step": 2 * k, "name": metrics.EVAL_LOSS, "value": mean,
                            "epoch": 0.0, "time": time.time()}])
    folder.write_status("running", step=2 * k, total_steps=4, progress=k / 2)
folder.write_status("succeeded", step=4, total_steps=4, progress=1.0)
"""


def fake_runs(url: str, n: int) -> list[str]:
    """n finished runs of the test-double child (their folders then get records)."""
    ids = []
    for seed in range(n):
        res = httpx.post(f"{url}/api/runs", json={"seed": seed}, timeout=PATIENCE_S)
        assert res.status_code == 201, res.text
        ids.append(res.json()["id"])
    for run_id in ids:
        wait_sync(
            lambda run_id=run_id: (
                httpx.get(f"{url}/api/runs/{run_id}", timeout=PATIENCE_S).json()["status"]
                == "succeeded"
            ),
            PATIENCE_S,
            f"fake run {run_id}",
        )
    return ids


def test_a_record_at_the_bound_scrubs_without_replacing_a_span(
    entrodrop_home: Path, tmp_path: Path
) -> None:
    app = fake_app(entrodrop_home)
    record = large_record(MAX_PROBE_TOKENS, MAX_EVALUATIONS)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        (run_id,) = fake_runs(url, 1)
        RunFolder(entrodrop_home / "runs" / run_id).write_tokens(record)
        page.goto(f"{url}/runs/{run_id}")
        page.locator("#tok-heat[data-step]").wait_for(timeout=PATIENCE_MS)
        assert page.locator(SPANS).count() == MAX_PROBE_TOKENS
        assert page.get_attribute("#tok-step", "max") == str(MAX_EVALUATIONS - 1)
        # The test keeps the spans it saw; after a slider step they must be the same elements.
        before = page.evaluate(
            "() => { window.seen = Array.from(document.querySelectorAll('#tok-heat .tok'));"
            " return window.seen.map((s) => s.className); }"
        )
        page.focus("#tok-step")
        page.keyboard.press("ArrowLeft")
        page.locator(f'#tok-heat[data-step="{record.steps[-2]}"]').wait_for()
        same, after = page.evaluate(
            "() => { const now = Array.from(document.querySelectorAll('#tok-heat .tok'));"
            " return [now.length === window.seen.length && now.every((s, i) => s === window.seen[i]),"
            " now.map((s) => s.className)]; }"
        )
        assert same, "a slider step replaced span elements"
        assert sum(a != b for a, b in zip(before, after, strict=True)) > 100
        page.keyboard.press("Home")
        page.locator('#tok-heat[data-step="0"]').wait_for()
        assert page.evaluate(
            "() => Array.from(document.querySelectorAll('#tok-heat .tok'))"
            ".every((s, i) => s === window.seen[i])"
        )
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()  # the charts take the phone's width as the page loads
        page.locator("#tok-heat[data-step]").wait_for(timeout=PATIENCE_MS)
        assert page.locator(SPANS).count() == MAX_PROBE_TOKENS
        assert_fits(page)
        screenshot(page, "tokens_view_large_narrow")
        assert errors == []


def test_a_running_runs_view_grows_with_its_evaluations(
    entrodrop_home: Path, tmp_path: Path
) -> None:
    child = tmp_path / "live_child.py"
    child.write_text(LIVE_CHILD, encoding="utf-8")
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    app.state.jobs.poll_interval = 0.1
    records = str(Path(__file__).resolve().parent)
    app.state.jobs.entry = (str(child), "--records", records)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        res = httpx.post(f"{url}/api/runs", json={}, timeout=PATIENCE_S)
        run_id = res.json()["id"]
        run_dir = entrodrop_home / "runs" / run_id
        page.goto(f"{url}/runs/{run_id}")
        page.locator('#tok-heat[data-step="0"]').wait_for(timeout=PATIENCE_MS)
        assert page.get_attribute("#tok-step", "max") == "0"
        (run_dir / "go1").touch()
        # The slider was on the last evaluation: it follows the new one.
        page.locator('#tok-heat[data-step="2"]').wait_for(timeout=PATIENCE_MS)
        assert page.get_attribute("#tok-step", "max") == "1"
        page.focus("#tok-step")
        page.keyboard.press("Home")
        page.locator('#tok-heat[data-step="0"]').wait_for()
        (run_dir / "go2").touch()
        # Away from the last evaluation, it stays where the reader put it.
        page.wait_for_function(
            "document.getElementById('tok-step').max === '2'", timeout=PATIENCE_MS
        )
        assert page.get_attribute("#tok-heat", "data-step") == "0"
        assert "evaluation 1 of 3" in (page.text_content("#tok-step-text") or "")
        assert errors == []


def test_runs_on_different_tokens_are_told_why(entrodrop_home: Path, tmp_path: Path) -> None:
    app = fake_app(entrodrop_home)
    with live_server(app) as url, browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        a, b, c = fake_runs(url, 3)
        folder = lambda run_id: RunFolder(entrodrop_home / "runs" / run_id)  # noqa: E731
        folder(a).write_tokens(make_record([[4.0, 4.0, 4.0], [2.0, 3.0, 1.0]]))
        folder(b).write_tokens(make_record([[4.0, 4.0]], probe=make_probe(2)))
        page.goto(f"{url}/compare?runs={a},{b},{c}")
        message = page.locator("#token-compare .tok-message")
        message.filter(has_text="follow different tokens").wait_for(timeout=PATIENCE_MS)
        assert page.locator("#token-compare .tok-result").is_hidden()
        page.select_option("#tc-b", c)  # a run with no record: the API's 404 in its own words
        message.filter(has_text="has no token record yet").wait_for()
        page.goto(f"{url}/runs/{c}")
        page.locator("#tok-message", has_text="has no token record yet").wait_for()
        assert page.locator("#tok-body").is_hidden()
        assert errors == []
