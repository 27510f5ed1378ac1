"""Screenshots of the runs pages with the real default model: docs/screenshots/*.png (1400 and 390 px).

    .venv/bin/python bench/screenshots_runs.py [--steps 30] [--eval-every 5]

Starts a server on a fresh home folder, fills the new-run form (EntroDrop vs a matched `none`
baseline), previews the first batch, launches the pair and photographs each page as a user sees
it. Takes about 5 minutes on an idle 2-core CPU (about 50 with one core busy with other work).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshots"
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from entrodrop.paths import dev_model_cache  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--eval-every", type=int, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="entrodrop-shots-"))
    os.environ["ENTRODROP_HOME"] = str(home)
    os.environ.setdefault("ENTRODROP_MODEL_CACHE", str(dev_model_cache()))
    from browser_utils import browser_page, live_server

    from app.main import create_app
    from app.settings import Settings

    OUT.mkdir(parents=True, exist_ok=True)
    app = create_app(Settings(home=home, load_model_on_startup=False))
    with live_server(app) as url, browser_page() as page:
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(f"{url}/runs/new")
        page.fill('[data-field="max_steps"]', str(args.steps))
        page.fill('[data-field="eval_every"]', str(args.eval_every))
        page.select_option("#f-compare", "none")
        page.click("#preview-button")
        page.locator("#preview-points button").nth(1).wait_for(timeout=300_000)
        page.locator("#preview-points button").nth(1).click()
        shot(page, "new_run")

        page.click("#launch")
        page.wait_for_url("**/compare?runs=*", timeout=60_000)
        ids = page.url.split("runs=")[1].split(",")
        page.goto(f"{url}/runs/{ids[0]}")
        # Mid-run: the curves have a few evaluations and the progress bar an ETA.
        page.wait_for_function(
            "Number(document.querySelector('#chart-eval').dataset.points || 0) >= 9",
            timeout=2_400_000,
        )
        time.sleep(1)
        shot(page, "run")

        page.goto(f"{url}/runs")
        # The baseline mid-run: its row shows steps done and an ETA, not "0 / 30 steps · starting".
        page.wait_for_function(
            "(id) => { const row = document.querySelector(`tr[data-run-id='${id}']`);"
            " return !!row && Number(row.querySelector('.progress').getAttribute('aria-valuenow')) > 0"
            " && row.querySelector('.eta').textContent.includes('ETA'); }",
            arg=ids[1],
            timeout=2_400_000,
        )
        shot(page, "runs")

        page.goto(f"{url}/compare?runs={','.join(ids)}")
        page.locator(f'tr[data-run-id="{ids[1]}"] .badge[data-status="succeeded"]').wait_for(
            timeout=2_400_000
        )
        page.select_option("#x-axis", "tokens")
        # Every drawn chart redrawn on the new axis (the redraw is throttled) before the shot.
        page.wait_for_function(
            "Array.from(document.querySelectorAll('.chart')).every("
            "(c) => !c.data || c.dataset.axis === 'tokens')"
        )
        shot(page, "compare")
        narrow_shots(page, url, ids[0])
    print(f"screenshots in {OUT}; runs in {home}")


def narrow_shots(page: Any, url: str, run_id: str) -> None:
    """The run page and the runs list on a 390 px phone."""
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in ((f"/runs/{run_id}", "run_narrow"), ("/runs", "runs_narrow")):
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        time.sleep(1)  # a screenshot, not a test: let the charts settle
        shot(page, name)


def shot(page: object, name: str) -> None:
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    print("saved", path, flush=True)


if __name__ == "__main__":
    main()
