"""report_to: none by default, a clear error when the tracker's package is missing, and trackers
kept inside the run folder and offline unless the user configured them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from entrodrop import trackers
from entrodrop.config import RunConfig
from entrodrop.runfolder import RunFolder


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Which tracker packages this test pretends are installed (none unless it says)."""
    present: dict[str, bool] = {}
    monkeypatch.setattr(
        trackers.importlib.util, "find_spec", lambda name: object() if present.get(name) else None
    )
    return present


def test_none_is_the_default_and_reports_nowhere(tmp_path: Path) -> None:
    from entrodrop.training.run import training_args

    assert RunConfig().report_to == "none"
    before = dict(os.environ)
    assert trackers.report_to("none", tmp_path) == []
    assert dict(os.environ) == before
    args = training_args(RunConfig(), tmp_path, progress=False)
    assert list(args.report_to) == []


@pytest.mark.parametrize(
    ("name", "package"), [("tensorboard", "tensorboard"), ("wandb", "wandb"), ("mlflow", "mlflow")]
)
def test_a_missing_package_is_a_clear_error(
    installed: dict[str, bool], name: str, package: str
) -> None:
    with pytest.raises(trackers.TrackerMissing, match=f"pip install {package}"):
        trackers.check_tracker(name)
    installed[package] = True
    trackers.check_tracker(name)


def test_trackers_stay_in_the_run_folder_and_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: dict[str, bool]
) -> None:
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    env = trackers.tracker_environment
    assert env("wandb", tmp_path) == {"WANDB_DIR": str(tmp_path), "WANDB_MODE": "offline"}
    assert env("mlflow", tmp_path)["MLFLOW_TRACKING_URI"].startswith("file://")
    assert env("tensorboard", tmp_path) == {
        "TENSORBOARD_LOGGING_DIR": str(tmp_path / "tensorboard")
    }
    monkeypatch.setenv("WANDB_API_KEY", "configured")  # the user's own setup wins: it syncs
    assert "WANDB_MODE" not in env("wandb", tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example")
    assert env("mlflow", tmp_path) == {}
    installed["wandb"] = True
    monkeypatch.setattr(os, "environ", dict(os.environ))  # report_to sets its defaults here
    assert trackers.report_to("wandb", tmp_path) == ["wandb"]
    assert os.environ["WANDB_DIR"] == str(tmp_path)


def test_the_server_refuses_a_tracker_it_does_not_have(
    entrodrop_home: Path, tiny_model_dir: Path, small_corpus: Path, installed: dict[str, bool]
) -> None:
    body: dict[str, Any] = {"model": str(tiny_model_dir), "dataset": str(small_corpus)}
    settings = Settings(
        home=entrodrop_home, load_model_on_startup=False, allowed_data_dirs=[small_corpus.parent]
    )
    with TestClient(create_app(settings)) as client:
        res = client.post("/api/runs/check", json={**body, "report_to": "mlflow"})
        assert res.status_code == 422, res.text
        assert res.json()["errors"][0]["loc"] == ["report_to"]
        assert "pip install mlflow" in res.json()["detail"]
        res = client.post("/api/runs/check", json={**body, "report_to": "comet"})
        assert res.status_code == 422 and "report_to" in res.json()["detail"]
        assert client.post("/api/runs/check", json=body).status_code == 200


def test_a_training_process_without_the_package_fails_with_the_message(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, installed: dict[str, bool]
) -> None:
    from entrodrop.training.run import TrainingFailed, train

    cfg = RunConfig(model=str(tiny_model_dir), dataset=str(small_corpus), report_to="tensorboard")
    with pytest.raises(TrainingFailed, match="pip install tensorboard"):
        train(cfg, tmp_path / "run")
    status = RunFolder(tmp_path / "run").read_status()
    assert status["status"] == "failed" and "pip install tensorboard" in status["error"]
