"""A page on another local origin tries to drive the dashboard in headless Chromium: run creation
(text/plain no-cors fetch), an upload (FormData) and a cancel (auto-submitted form) all fail, while
the dashboard's own upload, launch and cancel still work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_utils import attacker_site, browser_page, live_server
from runs_helpers import FAKE_TRAINER, SEED_MODES, wait_sync
from waiting import PATIENCE_MS, PATIENCE_S

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="cancel" method="post" action="{target}/api/runs/{run}/cancel" target="sink"></form>
<script>
(async () => {{
  const target = "{target}";
  const quietly = (p) => p.catch(() => null);
  await quietly(fetch(target + "/api/runs", {{
    method: "POST", mode: "no-cors", credentials: "include",
    headers: {{ "Content-Type": "text/plain" }}, body: JSON.stringify({{ max_steps: 1 }}),
  }}));
  const fd = new FormData();
  fd.append("file", new Blob(["an attacker's text\\n"], {{ type: "text/plain" }}), "evil.txt");
  await quietly(fetch(target + "/api/uploads", {{
    method: "POST", mode: "no-cors", credentials: "include", body: fd }}));
  document.getElementById("cancel").submit();
}})();
</script></body></html>"""


class Recorder:
    """ASGI wrapper noting each write's answer: the test waits on the requests, not on time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.writes: list[tuple[str, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] == "GET":
            await self.app(scope, receive, send)
            return

        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.writes.append((scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, noting)


def test_another_origin_cannot_create_upload_or_cancel(
    entrodrop_home: Path, tmp_path: Path
) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    app.state.jobs.entry = (str(FAKE_TRAINER),)
    app.state.jobs.poll_interval = 0.2
    recorder = Recorder(app)
    uploads = entrodrop_home / "uploads"
    with live_server(recorder) as url, browser_page() as page:
        # A victim run that keeps running until cancelled (made by a script: no browser headers).
        victim = httpx.post(f"{url}/api/runs", json={"seed": SEED_MODES["slow"]}).json()["id"]
        status = lambda: httpx.get(f"{url}/api/runs/{victim}").json()  # noqa: E731
        wait_sync(lambda: status()["status"] == "running", PATIENCE_S, "the victim run to start")
        page.goto(f"{url}/runs")  # the user has the dashboard open: its cookies exist

        recorder.writes.clear()
        with attacker_site(ATTACK.format(target=url, run=victim)) as evil:
            page.goto(evil)
            wait_sync(lambda: len(recorder.writes) >= 3, PATIENCE_S, "the three forged requests")
        forged = dict(recorder.writes)
        assert forged == {
            "/api/runs": 403,
            "/api/uploads": 403,
            f"/api/runs/{victim}/cancel": 403,
        }, recorder.writes
        runs = httpx.get(f"{url}/api/runs").json()["runs"]
        assert [r["id"] for r in runs] == [victim]
        assert status()["status"] == "running", status()["error"]
        assert not status()["cancel_requested"]
        assert not uploads.exists() or not any(uploads.iterdir())

        # The dashboard's own buttons and form still work (pageFetch adds the token).
        page.goto(f"{url}/runs/{victim}")
        page.once("dialog", lambda dialog: dialog.accept())  # the page asks before cancelling
        page.click("#cancel-run")
        wait_sync(lambda: status()["status"] == "cancelled", PATIENCE_S, "the page's own cancel")
        page.goto(f"{url}/runs/new")
        page.set_input_files(
            "#dataset-file",
            files=[{"name": "mine.txt", "mimeType": "text/plain", "buffer": b"my own text\n" * 50}],
        )
        page.locator("#upload-status", has_text="1 texts").wait_for(timeout=PATIENCE_MS)
        assert [p.name for p in uploads.iterdir()][0].startswith("mine-")
        page.click("#launch")
        page.wait_for_url("**/runs/r*", timeout=PATIENCE_MS)
        runs = httpx.get(f"{url}/api/runs").json()["runs"]
        assert len(runs) == 2
        own = httpx.get(f"{url}/api/runs/{runs[0]['id']}").json()
        assert own["config"]["dataset"].startswith(str(uploads)), own["config"]
