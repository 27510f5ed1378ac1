"""In headless Chromium: a page on another port cannot frame New run (clickjacking), and every page
works under its Content-Security-Policy (no violation, no script error, charts drawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import attacker_site, browser_page, live_server
from runs_helpers import FAKE_TRAINER, wait_sync
from waiting import PATIENCE_MS, PATIENCE_S

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.browser

FRAMING = """<!doctype html><html><body><h1>Win a prize: click the button</h1>
<iframe id="victim" src="{target}/runs/new" width="1200" height="900"
        onload="this.dataset.loaded = '1'"></iframe></body></html>"""

# Every violation the page's policy reports, kept before any script of the page runs.
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
"""
CHARTS = ".js-plotly-plot .main-svg"


def _app(home: Path, model: Path | None = None) -> Any:
    settings = Settings(home=home, model=str(model or "default"), load_model_on_startup=bool(model))
    app = create_app(settings)
    app.state.jobs.entry = (str(FAKE_TRAINER),)
    app.state.jobs.poll_interval = 0.1
    return app


def test_another_port_cannot_frame_new_run(entrodrop_home: Path) -> None:
    with live_server(_app(entrodrop_home)) as url, browser_page() as page:
        with attacker_site(FRAMING.format(target=url)) as evil:
            page.goto(evil)
            page.wait_for_function(
                "document.getElementById('victim').dataset.loaded === '1'", timeout=PATIENCE_MS
            )  # the browser has settled the frame: loaded, or refused
            (frame,) = [f for f in page.frames if f != page.main_frame]
            assert not frame.url.startswith(url), frame.url  # Chromium's error page instead
            assert frame.query_selector("#launch") is None
        assert httpx.get(f"{url}/api/runs").json()["runs"] == []


def _finished(url: str, run_id: str) -> bool:
    return httpx.get(f"{url}/api/runs/{run_id}").json()["status"] == "succeeded"


def _inspect_scored(page: Any) -> None:
    # Selectors and function predicates: a string predicate is eval'd, which the policy forbids.
    page.wait_for_selector("#model-status[data-state=ready]", timeout=PATIENCE_MS)
    page.fill("#text", "def mean(xs):\n    return sum(xs) / len(xs)\n")
    page.click("#score-btn")
    page.wait_for_function("() => window.EntroInspect.state.renderCount > 0", timeout=PATIENCE_MS)
    page.wait_for_selector(CHARTS)


def test_every_page_works_under_its_content_security_policy(
    entrodrop_home: Path, tiny_model_dir: Path
) -> None:
    with live_server(_app(entrodrop_home, tiny_model_dir)) as url, browser_page() as page:
        runs = [httpx.post(f"{url}/api/runs", json={}).json()["id"] for _ in range(2)]
        body = {"name": "csp", "variants": ["none"], "seeds": [0]}
        study = httpx.post(f"{url}/api/studies", json=body).json()["id"]
        wait_sync(lambda: all(_finished(url, r) for r in runs), PATIENCE_S, "the fake runs")
        pages: list[tuple[str, Any]] = [
            ("/", _inspect_scored),
            ("/runs", 'tr .badge[data-status="succeeded"]'),
            ("/runs/new", "#launch"),
            (f"/runs/{runs[0]}", CHARTS),
            (f"/compare?runs={runs[0]},{runs[1]}", CHARTS),
            ("/studies", "text=csp"),
            ("/studies/new", "#study-form"),
            (f"/studies/{study}", CHARTS),
            ("/docs", ".swagger-ui .info"),
            ("/redoc", "text=EntroDrop Studio"),
        ]
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.add_init_script(WATCH_CSP)
        for path, ready in pages:
            page.goto(url + path)
            if callable(ready):
                ready(page)
            else:
                page.wait_for_selector(ready, timeout=PATIENCE_MS)
            policy = httpx.get(url + path).headers["content-security-policy"]
            assert page.evaluate("window.__violations") == [], (path, policy)
            assert errors == [], (path, errors)
