"""Bounded work: hub ids on shared and offline servers, machine caps on runs, caps on the run queue
and the uploads folder, and the start-up clean-up of what a full disk leaves behind."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import capacity, hub
from app.errors import PayloadTooLarge
from app.leftovers import clean_leftovers
from app.main import create_app
from app.model_service import ModelService
from app.runs.runner import JobRunner
from app.runs.storage import RunRecord, Storage
from app.runs.uploads import TooManyUploads, save_upload
from app.settings import Settings
from entrodrop import runfolder as rf
from entrodrop.data import uploads_dir
from entrodrop.models import ModelLoadError

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HUB_SPEC = "some-org/some-model-that-is-not-cached"


class Probe:
    """A stand-in for the network check: counts its calls, never touches the network."""

    def __init__(self, reachable: bool) -> None:
        self.reachable = reachable
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.reachable


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Probe:
    probe = Probe(reachable=False)
    monkeypatch.setattr(hub, "hub_reachable", hub.Reachability(probe))
    return probe


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> Probe:
    probe = Probe(reachable=True)
    monkeypatch.setattr(hub, "hub_reachable", hub.Reachability(probe))
    return probe


def _client(home: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(home=home, load_model_on_startup=False, **settings)))


# ------------------------------------------------------------ hub ids


def test_shared_server_refuses_hub_ids_in_runs_and_inspect(
    entrodrop_home: Path, online: Probe
) -> None:
    with _client(entrodrop_home, token=TOKEN) as client:
        r = client.post("/api/runs/check", json={"model": HUB_SPEC}, headers=AUTH)
        assert r.status_code == 422
        assert "ENTRODROP_ALLOW_HUB" in r.json()["detail"] and r.json()["errors"][0]["loc"] == [
            "model"
        ]
        r = client.post("/api/score", json={"text": "x = 1", "model": HUB_SPEC}, headers=AUTH)
        assert r.status_code == 422 and "ENTRODROP_ALLOW_HUB" in r.json()["detail"]
    assert online.calls == 0  # refused before any look at the network


def test_a_non_loopback_bind_counts_as_shared() -> None:
    assert hub.is_shared(Settings(host="0.0.0.0", token=TOKEN))
    assert hub.is_shared(Settings(host="127.0.0.1", token=TOKEN))
    assert not hub.is_shared(Settings(host="127.0.0.1"))


def test_allow_hub_lets_a_shared_server_take_hub_ids(entrodrop_home: Path, online: Probe) -> None:
    with _client(entrodrop_home, token=TOKEN, allow_hub=True) as client:
        r = client.post("/api/runs/check", json={"model": HUB_SPEC}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["configs"][0]["model"] == HUB_SPEC


def test_offline_hub_ids_fail_at_once_with_one_probe_a_minute(
    entrodrop_home: Path, offline: Probe
) -> None:
    with _client(entrodrop_home) as client:
        started = time.monotonic()
        for _ in range(3):
            r = client.post("/api/score", json={"text": "x = 1", "model": HUB_SPEC})
            assert r.status_code == 422 and r.json()["detail"].startswith("no network")
            r = client.post("/api/runs/check", json={"model": HUB_SPEC})
            assert r.status_code == 422 and "no network" in r.json()["detail"]
        assert time.monotonic() - started < 20  # never a download's long retries
    assert offline.calls == 1  # the answer is kept for a minute


def test_reachability_is_probed_again_after_its_ttl() -> None:
    probe = Probe(reachable=False)
    check = hub.Reachability(probe, ttl=0.0)
    assert not check() and not check()
    assert probe.calls == 2


def test_an_uncached_hub_id_has_no_cached_snapshot() -> None:
    # local_files_only: answers from the cache alone, with no network access.
    assert hub.cached_snapshot(HUB_SPEC) is None


def test_a_cached_hub_id_loads_from_its_folder_without_the_network(
    entrodrop_home: Path, tiny_model_dir: Path, offline: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "cached_snapshot", lambda spec: tiny_model_dir)
    service = ModelService(Settings(home=entrodrop_home, load_model_on_startup=False))
    loaded = service.get(HUB_SPEC)
    assert loaded.name == HUB_SPEC and loaded.path == str(tiny_model_dir)
    assert offline.calls == 0


# ------------------------------------------------------------ machine caps


def _check(client: TestClient, body: dict[str, object]) -> dict[str, str]:
    r = client.post("/api/runs/check", json=body)
    assert r.status_code == 422, r.text
    return {e["field"]: e["msg"] for e in r.json()["errors"]}


def test_launcher_processes_are_capped_to_the_machine(
    entrodrop_home: Path, tiny_model_dir: Path
) -> None:
    most = capacity.max_processes()
    base = {"model": str(tiny_model_dir), "seq_len": 32}
    with _client(entrodrop_home) as client:
        over = {**base, "launcher": {"kind": "accelerate", "num_processes": most + 1}}
        assert f"at most {most} on this machine" in _check(client, over)["launcher.num_processes"]
        fits = {**base, "launcher": {"kind": "accelerate", "num_processes": most}}
        assert client.post("/api/runs/check", json=fits).status_code == 200
    with _client(entrodrop_home, max_processes=1) as client:
        two = {**base, "launcher": {"kind": "accelerate", "num_processes": 2}}
        assert "ENTRODROP_MAX_PROCESSES" in _check(client, two)["launcher.num_processes"]


def test_seq_len_is_capped_to_the_models_context(
    entrodrop_home: Path, tiny_model_dir: Path
) -> None:
    with _client(entrodrop_home) as client:  # the tiny model's max_position_embeddings: 512
        msg = _check(client, {"model": str(tiny_model_dir), "seq_len": 1024})["seq_len"]
        assert msg == "at most 512 (the model's context length)"
    with _client(entrodrop_home, max_seq_len=64) as client:
        msg = _check(client, {"model": str(tiny_model_dir), "seq_len": 128})["seq_len"]
        assert "at most 64" in msg and "ENTRODROP_MAX_SEQ_LEN" in msg


def test_batch_memory_is_capped_to_the_machine(
    entrodrop_home: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = capacity.model_shape(str(tiny_model_dir), entrodrop_home / "runs")
    assert shape.vocab == 384 and shape.hidden == 32 and shape.layers == 2
    small = capacity.step_bytes(shape, 2, 32)
    monkeypatch.setattr(capacity, "memory_bytes", lambda: small)  # a machine that holds 2 x 32
    body = {"model": str(tiny_model_dir), "seq_len": 32}
    with _client(entrodrop_home) as client:
        assert client.post("/api/runs/check", json={**body, "batch_size": 2}).status_code == 200
        msg = _check(client, {**body, "batch_size": 4})["batch_size"]
        assert "batch_size x seq_len = 128 tokens needs about" in msg and "lower batch_size" in msg
        # Processes of one CPU share its memory: two of 2 x 32 need twice as much.
        two = {**body, "batch_size": 2, "launcher": {"kind": "accelerate", "num_processes": 2}}
        if capacity.device_count() == 0 and capacity.max_processes() >= 2:
            assert "batch_size" in _check(client, two)
    with _client(entrodrop_home, max_batch_tokens=100) as client:
        assert client.post("/api/runs/check", json={**body, "batch_size": 3}).status_code == 200
        msg = _check(client, {**body, "batch_size": 4})["batch_size"]
        assert "at most 100 here (ENTRODROP_MAX_BATCH_TOKENS)" in msg


def test_the_default_models_huge_batch_is_refused(entrodrop_home: Path) -> None:
    shape = capacity.shape_from({"vocab_size": 49152, "hidden_size": 576, "num_hidden_layers": 30})
    # 4,096 x 8,192 tokens of a 135M model: hundreds of terabytes, on any machine.
    assert capacity.step_bytes(shape, 4096, 8192) > 100 * capacity.memory_bytes()


# ------------------------------------------------------------ queue and uploads


def test_queued_runs_are_capped(
    entrodrop_home: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JobRunner, "_launch_queued", lambda self: None)  # they stay queued
    body = {"model": str(tiny_model_dir), "seq_len": 32, "max_steps": 2}
    with _client(entrodrop_home, max_queued_runs=2) as client:
        assert client.post("/api/runs", json=body).status_code == 201
        # a matched pair is two runs: it would pass the cap, so neither is queued
        r = client.post("/api/runs", json={**body, "compare_with": "none"})
        assert r.status_code == 429 and "at most 2 may wait" in r.json()["detail"]
        assert r.headers["retry-after"]
        assert client.post("/api/runs", json=body).status_code == 201
        r = client.post("/api/runs", json=body)
        assert r.status_code == 429 and "2 runs are already queued" in r.json()["detail"]
        assert len(client.get("/api/runs").json()["runs"]) == 2


def test_studies_and_runs_share_the_queue_bound(
    entrodrop_home: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JobRunner, "_launch_queued", lambda self: None)  # they stay queued
    base = {"model": str(tiny_model_dir), "seq_len": 32, "max_steps": 2}
    study = {"name": "s", "base": base, "variants": ["none", "random"], "seeds": [0, 1, 2]}
    with _client(entrodrop_home, max_queued_runs=10) as client:
        assert client.post("/api/studies", json=study).status_code == 201  # 6 runs wait
        r = client.post("/api/studies", json=study)  # 6 more would make 12
        assert r.status_code == 429 and r.headers["retry-after"], r.text
        assert "6 runs" in r.json()["detail"] and "room for 4" in r.json()["detail"]
        assert client.post("/api/studies", json={**study, "seeds": [0, 1]}).status_code == 201
        r = client.post("/api/runs", json=base)  # the studies' runs count for runs too
        assert r.status_code == 429 and "room for 0" in r.json()["detail"]
        assert len(client.get("/api/runs").json()["runs"]) == 10
        assert len(client.get("/api/studies").json()["studies"]) == 2


def test_the_reproduction_fits_the_default_queue_bound(
    entrodrop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JobRunner, "_launch_queued", lambda self: None)
    repo = Path(__file__).resolve().parents[2]
    body = (repo / "bench" / "studies" / "reproduction.json").read_text(encoding="utf-8")
    with _client(entrodrop_home) as client:
        r = client.post("/api/studies", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        config = json.loads(body)
        expected = len(config["variants"]) * len(config["seeds"])
        assert len(r.json()["runs"]) == expected  # every run waiting at once
        assert client.post("/api/runs", json={}).status_code == 201  # and room to spare


def test_uploads_folder_is_capped_in_files_and_bytes(entrodrop_home: Path) -> None:
    settings = Settings(home=entrodrop_home, max_uploads=2, max_upload_total_bytes=100)
    save_upload(b"first text\n", "a.txt", settings)
    save_upload(b"second text\n", "b.txt", settings)
    save_upload(b"first text\n", "a.txt", settings)  # already kept: no new file
    (uploads_dir(entrodrop_home) / "stale.txt.part").write_bytes(b"x")  # not an upload
    with pytest.raises(TooManyUploads, match="at most 2 uploaded files"):
        save_upload(b"third text\n", "c.txt", settings)
    roomy = settings.model_copy(update={"max_uploads": 10})
    with pytest.raises(PayloadTooLarge, match="would pass its 100 bytes"):
        save_upload(b"y" * 90 + b"\n", "d.txt", roomy)


def test_upload_caps_over_http(entrodrop_home: Path) -> None:
    with _client(entrodrop_home, max_uploads=1) as client:
        files = {"file": ("a.txt", b"some text\n", "text/plain")}
        assert client.post("/api/uploads", files=files).status_code == 201
        files = {"file": ("b.txt", b"other text\n", "text/plain")}
        r = client.post("/api/uploads", files=files)
        assert r.status_code == 429 and "ENTRODROP_MAX_UPLOADS" in r.json()["detail"]


def test_a_full_disk_leaves_no_part_file(
    entrodrop_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, target: Path) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "replace", full)
    with pytest.raises(OSError):
        save_upload(b"some text\n", "a.txt", Settings(home=entrodrop_home))
    assert list(uploads_dir(entrodrop_home).iterdir()) == []


# ------------------------------------------------------------ leftovers


def _row(storage: Storage, run_id: str, status: str) -> None:
    now = time.time()
    storage.create_run(
        RunRecord(
            id=run_id, created_at=now, queued_at=now, updated_at=now, status=status,
            config={"model": "default"}, launcher={},
        )
    )  # fmt: skip


def _checkpoint(run_dir: Path, step: int, complete: bool) -> Path:
    path = rf.checkpoint_dir(run_dir, step)
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"w")
    if complete:
        (path / rf.TRAINER_STATE).write_text("{}")
    return path


def _leftover_home(home: Path) -> dict[str, Path]:
    """A home after a full disk: a .part upload, folders without rows, partial checkpoints."""
    runs = home / "runs"
    uploads = uploads_dir(home)
    uploads.mkdir(parents=True)
    (uploads / "kept-123.txt").write_text("text\n")
    (uploads / "half-456.txt.part").write_text("te")
    paths = {"upload": uploads / "kept-123.txt", "part": uploads / "half-456.txt.part"}
    for name, files in (("never", [rf.CONFIG]), ("tmp", [rf.CONFIG + ".tmp"])):
        folder = runs / f"r20260101-000000-{name}"
        folder.mkdir(parents=True)
        for f in files:
            (folder / f).write_text("{}")
        paths[name] = folder
    data = runs / "r20260101-000000-data"  # no row, but someone's metrics: kept
    data.mkdir()
    (data / rf.CONFIG).write_text("{}")
    (data / rf.METRICS).write_text("{}\n")
    paths["data"] = data
    storage = Storage(home / "entrodrop.db")
    storage.open()
    for status in ("failed", "running"):
        run_dir = runs / f"r20260101-000000-{status}"
        _row(storage, run_dir.name, status)
        paths[f"{status}-complete"] = _checkpoint(run_dir, 2, complete=True)
        paths[f"{status}-partial"] = _checkpoint(run_dir, 4, complete=False)
    storage.close()
    return paths


def test_leftovers_are_cleaned_and_data_kept(entrodrop_home: Path) -> None:
    paths = _leftover_home(entrodrop_home)
    storage = Storage(entrodrop_home / "entrodrop.db")
    storage.open()
    done = clean_leftovers(Settings(home=entrodrop_home), storage)
    storage.close()
    gone = {"part", "never", "tmp", "failed-partial"}
    assert set(done.parts + done.run_folders + done.checkpoints) == {paths[k] for k in gone}
    for key, path in paths.items():
        assert path.exists() == (key not in gone), key
    assert rf.latest_checkpoint(paths["failed-complete"].parent) == paths["failed-complete"]


def test_the_server_cleans_leftovers_before_the_runner_starts(entrodrop_home: Path) -> None:
    paths = _leftover_home(entrodrop_home)
    with _client(entrodrop_home) as client:
        assert client.get("/api/health").status_code == 200
        assert not paths["part"].exists() and not paths["never"].exists()
        assert not paths["failed-partial"].exists()
        # Cleaned before recovery: the run left `running` (now interrupted) keeps its files,
        # since its process could still be writing when the server started.
        assert paths["running-partial"].exists()
        run = client.get("/api/runs/r20260101-000000-running").json()
        assert run["status"] == "interrupted"
        assert paths["upload"].exists() and paths["data"].exists()


def test_hub_errors_are_model_load_errors() -> None:
    with pytest.raises(ModelLoadError, match="ENTRODROP_ALLOW_HUB"):
        hub.check_hub_spec(HUB_SPEC, Settings(token=TOKEN))


def test_hf_hub_offline_means_unreachable_without_a_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network() -> bool:
        raise AssertionError("the network was probed")

    import entrodrop.network

    monkeypatch.setattr(entrodrop.network, "connect", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.Reachability()() is False


def test_a_cli_studys_queued_runs_are_not_leftovers(entrodrop_home: Path) -> None:
    """`entrodrop study` in the server's home writes every run's config.json up front; a run not
    yet started has no row and nothing else, yet it is the study's, not a failed launch."""
    from entrodrop.studies.config import StudyConfig
    from entrodrop.studies.local import create_study

    folder = create_study(StudyConfig.model_validate({"name": "q", "variants": ["none"]}))
    run_dirs = [folder.runs_dir() / r["id"] for r in folder.read()["runs"]]
    storage = Storage(entrodrop_home / "entrodrop.db")
    storage.open()
    done = clean_leftovers(Settings(home=entrodrop_home), storage)
    storage.close()
    assert done.run_folders == [] and all((d / rf.CONFIG).is_file() for d in run_dirs)
