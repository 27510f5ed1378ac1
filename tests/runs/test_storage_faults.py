"""A damaged database or a full disk gives a message for a person, not a traceback or bare 500."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.main import create_app
from app.runs.storage import StorageUnusable
from app.settings import Settings
from entrodrop.cli import app as cli


def _corrupt_db(home: Path) -> None:
    (home / "entrodrop.db").write_bytes(b"this is not an sqlite database" * 100)


def test_damaged_database_stops_start_up_with_a_message(entrodrop_home: Path) -> None:
    _corrupt_db(entrodrop_home)
    with pytest.raises(StorageUnusable, match="is damaged"):
        create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "is damaged" in result.output and "Traceback" not in result.output


def test_full_disk_after_start_up_is_a_507_with_detail(
    entrodrop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))

    @app.get("/api/_disk_full_probe")
    def probe() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/api/_disk_full_probe")
    assert r.status_code == 507
    assert "No space left on device" in r.json()["detail"]
