"""Every path a request names is checked totally: whatever the string, the answer is a 4xx with a
message, never a 500 (`~nosuchuser/...` made Path.expanduser raise RuntimeError)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

# Strings a user may send that a path look-up can choke on: an unknown user's home, a NUL byte,
# a loop of symlinks (made in the fixture), a name too long for the file system.
ODD_PATHS = ["~nosuchuser/x.txt", "~nosuchuser", "~", "a\x00b.txt", "/tmp/" + "x" * 300]


def _cases() -> list[tuple[str, str, Any]]:
    """(url, field, body maker) for every path field of every endpoint that takes one."""
    return [
        ("/api/runs", "dataset", lambda p: {"dataset": p}),
        ("/api/runs", "heldout_dataset", lambda p: {"heldout_dataset": p}),
        ("/api/runs", "general_dataset", lambda p: {"general_dataset": p}),
        ("/api/runs", "model", lambda p: {"model": p}),
        ("/api/runs/check", "dataset", lambda p: {"dataset": p}),
        ("/api/runs/check", "heldout_dataset", lambda p: {"heldout_dataset": p}),
        ("/api/runs/check", "general_dataset", lambda p: {"general_dataset": p}),
        ("/api/runs/check", "model", lambda p: {"model": p}),
        ("/api/runs/preview", "dataset", lambda p: {"dataset": p}),
        ("/api/runs/preview", "model", lambda p: {"model": p}),
        (
            "/api/studies",
            "base.dataset",
            lambda p: {"name": "s", "variants": ["none"], "base": {"dataset": p}},
        ),
        (
            "/api/studies",
            "base.model",
            lambda p: {"name": "s", "variants": ["none"], "base": {"model": p}},
        ),
        ("/api/score", "model", lambda p: {"text": "hello", "model": p}),
        ("/api/preview", "model", lambda p: {"text": "hello", "model": p}),
        ("/api/compare", "model_a", lambda p: {"text": "hello", "model_a": p, "model_b": "x/y"}),
        ("/api/compare", "model_b", lambda p: {"text": "hello", "model_a": "a/b", "model_b": p}),
    ]


@pytest.fixture(params=["no data folders", "a data folder"])
def served(
    request: pytest.FixtureRequest, entrodrop_home: Path, tmp_path: Path
) -> Iterator[tuple[TestClient, list[str]]]:
    """A client, and the odd paths to send it (with a data folder: a symlink loop inside it)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "loop").symlink_to(data / "loop")
    shared = request.param == "a data folder"
    app = create_app(Settings(home=entrodrop_home, allowed_data_dirs=[data] if shared else []))
    app.state.model_service.ensure_loading = lambda: None  # no model: these fail before one
    loops = [str(data / "loop"), str(data / "loop" / "x.txt")] if shared else []
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, [*ODD_PATHS, *loops]


@pytest.mark.parametrize(
    ("url", "field", "body"), _cases(), ids=[f"{u} {f}" for u, f, _ in _cases()]
)
def test_odd_paths_in_every_path_field_are_4xx(
    served: tuple[TestClient, list[str]], url: str, field: str, body: Any
) -> None:
    client, paths = served
    for path in paths:
        r = client.post(url, json=body(path))
        assert 400 <= r.status_code < 500, (url, field, path, r.status_code, r.text)
        assert r.json()["detail"], (url, field, path)
    assert client.get("/api/runs").json()["runs"] == []
