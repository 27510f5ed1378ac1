"""A screenshot of a bench study's page in the dashboard: docs/screenshots/study_<name>.png.

    .venv/bin/python bench/screenshot_study.py bench/results/study-reproduction

Serves a fresh home folder whose studies/ holds a copy of the bench study's study.json (its runs
stay where they are: the copy's runs_dir points at them), opens the study's page at 1400 px in
headless Chromium once its rebound chart has drawn, and saves the whole page. No model is loaded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshots"
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a bench study folder (with studies/ and runs/)")
    args = parser.parse_args(argv)
    from browser_utils import browser_page, live_server

    from app.main import create_app
    from app.settings import Settings
    from entrodrop.studies.folder import StudyFolder

    found = sorted((args.work / "studies").glob("*/study.json"))
    if len(found) != 1:
        print(f"expected one study under {args.work / 'studies'}, found {len(found)}")
        return 2
    source = StudyFolder(found[0].parent)
    home = Path(tempfile.mkdtemp(prefix="entrodrop-study-shot-"))
    copy = StudyFolder(home / "studies" / source.id)
    shutil.copytree(source.path, copy.path)
    copy.write({**source.read(), "runs_dir": str((args.work / "runs").resolve())})
    name = copy.read()["name"]
    app = create_app(Settings(home=home, load_model_on_startup=False))
    OUT.mkdir(parents=True, exist_ok=True)
    with live_server(app) as url, browser_page() as page:
        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(f"{url}/studies/{copy.id}")
        page.wait_for_function(
            "Number(document.querySelector('#chart-rebound').dataset.traces || 0) > 0"
        )
        path = OUT / f"study_{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print("saved", path)
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
