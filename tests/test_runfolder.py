"""The run-folder contract: run ids, statuses, complete checkpoints, atomic writes, and the one
rule every reader keeps: a half-written checkpoint-<step>/ is never used."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

import entrodrop
from app.inspect.data import list_checkpoints
from app.main import create_app
from app.model_service import ModelService
from app.runs.storage import RunRecord, Storage
from app.settings import Settings
from entrodrop import runfolder as rf
from entrodrop.config import RunConfig
from entrodrop.launch import Launcher
from entrodrop.runfolder import RunFolder

# ---------------------------------------------------------------- run ids


def test_new_run_ids_have_the_one_format_and_sort_by_time() -> None:
    ids = [rf.new_run_id() for _ in range(20)]
    for run_id in ids:
        assert re.fullmatch(r"r\d{8}-\d{6}-[0-9a-f]{4}", run_id), run_id
        assert rf.is_run_id(run_id)
    assert ids[0][1:9] == time.strftime("%Y%m%d", time.gmtime())
    assert len(set(ids)) > 1  # random tails


@pytest.mark.parametrize(
    "name", ["r20261127-093512-3fa2", "r261127093512-3fa2", "r-tiny", "my_run", "a" * 64]
)
def test_readers_accept_both_formats_and_user_named_folders(name: str) -> None:
    assert rf.is_run_id(name)


@pytest.mark.parametrize("name", ["", "..", "../x", "a/b", ".hidden", "-x", "a b", "a" * 65])
def test_readers_refuse_anything_that_is_not_one_safe_folder_name(name: str) -> None:
    assert not rf.is_run_id(name)


def test_run_spec_with_an_old_format_id_still_loads(
    tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    shutil.copytree(tiny_model_dir, entrodrop_home / "runs" / "r261127093512-3fa2" / "model")
    assert entrodrop.load("run:r261127093512-3fa2").name == "run:r261127093512-3fa2"


# ---------------------------------------------------------------- statuses


def test_one_status_set_split_into_active_and_final() -> None:
    assert set(rf.STATUSES) == {
        "queued", "running", "succeeded", "failed", "cancelled", "interrupted",
    }  # fmt: skip
    assert set(rf.ACTIVE) | set(rf.FINAL) == set(rf.STATUSES)
    assert not set(rf.ACTIVE) & set(rf.FINAL)
    assert set(rf.PROCESS_STATUSES) == set(rf.STATUSES) - {"queued", "interrupted"}


@pytest.mark.parametrize("status", ["queued", "interrupted", "done"])
def test_a_training_process_writes_only_its_own_statuses(tmp_path: Path, status: str) -> None:
    with pytest.raises(ValueError, match="cannot write status"):
        RunFolder(tmp_path).write_status(status)  # type: ignore[arg-type]
    assert not (tmp_path / rf.STATUS).exists()


def test_status_json_keeps_the_earlier_attempt_fields(tmp_path: Path) -> None:
    RunFolder(tmp_path).write_status("running", started_at=1.0, step=0)
    RunFolder(tmp_path).write_status("failed", error="boom")  # a new process: a resume
    st = rf.read_status(tmp_path)
    assert st is not None
    assert st["status"] == "failed" and st["started_at"] == 1.0 and st["error"] == "boom"
    assert rf.read_status(tmp_path, since=st["updated_at"] + 60) is None  # an older attempt's
    RunFolder(tmp_path, writer=False).write_status("succeeded")  # not the main process
    assert RunFolder(tmp_path).read_status()["status"] == "failed"


# ---------------------------------------------------------------- checkpoints


def make_checkpoint(
    run_dir: Path, step: int, complete: bool = True, source: Path | None = None
) -> Path:
    """checkpoint-<step>/ as the Trainer leaves it, or as a kill while saving leaves it."""
    path = rf.checkpoint_dir(run_dir, step)
    if source is not None:
        shutil.copytree(source, path)
    else:
        path.mkdir(parents=True)
        (path / "config.json").write_text("{}")
        (path / "model.safetensors").write_bytes(b"weights")
    if complete:
        (path / rf.TRAINER_STATE).write_text(json.dumps({"global_step": step}))
    else:  # killed mid-save: half the weights, no trainer state yet
        weights = path / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: max(1, weights.stat().st_size // 2)])
    return path


def test_only_complete_checkpoints_count_in_step_order(tmp_path: Path) -> None:
    for step in (9, 10, 100):
        make_checkpoint(tmp_path, step)
    make_checkpoint(tmp_path, 200, complete=False)
    no_weights = rf.checkpoint_dir(tmp_path, 300)
    no_weights.mkdir()
    (no_weights / rf.TRAINER_STATE).write_text("{}")
    sharded = make_checkpoint(tmp_path, 150)
    (sharded / "model.safetensors").rename(sharded / "model.safetensors.index.json")
    (tmp_path / "checkpoint-400").write_text("a file, not a folder")
    shutil.copytree(rf.checkpoint_dir(tmp_path, 9), tmp_path / "checkpoint-500.tmp")
    shutil.copytree(rf.checkpoint_dir(tmp_path, 9), tmp_path / "checkpoint-x")

    found = rf.checkpoints(tmp_path)
    assert [rf.checkpoint_step(p) for p in found] == [9, 10, 100, 150]  # numbers, not names
    assert rf.latest_checkpoint(tmp_path) == rf.checkpoint_dir(tmp_path, 150)
    assert (
        rf.checkpoints(tmp_path / "missing") == [] and rf.latest_checkpoint(tmp_path / "no") is None
    )
    with pytest.raises(ValueError, match="not a checkpoint-<step> folder"):
        rf.checkpoint_step(tmp_path / "model")


def test_the_model_of_a_run_is_model_then_the_latest_complete_checkpoint(tmp_path: Path) -> None:
    assert rf.run_model_dir(tmp_path) is None
    make_checkpoint(tmp_path, 2)
    make_checkpoint(tmp_path, 4, complete=False)
    assert rf.run_model_dir(tmp_path) == rf.checkpoint_dir(tmp_path, 2)
    (tmp_path / rf.MODEL).mkdir()
    (tmp_path / rf.MODEL / "config.json").write_text("{}")
    assert rf.has_final_model(tmp_path) and rf.run_model_dir(tmp_path) == tmp_path / rf.MODEL


def test_names_match_transformers_own() -> None:
    """The server does not import transformers to list a folder: these names must not drift."""
    from transformers.trainer import TRAINER_STATE_NAME
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

    assert rf.CHECKPOINT_PREFIX == PREFIX_CHECKPOINT_DIR and rf.TRAINER_STATE == TRAINER_STATE_NAME
    assert rf.WEIGHT_FILES == (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME)
    assert rf.checkpoint_dir("out", 7) == Path("out") / f"{PREFIX_CHECKPOINT_DIR}-7"


# ---------------------------------------------------------------- atomic writes


def test_atomic_json_replaces_whole_files_and_writes_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "summary.json"
    rf.write_json_atomic(path, {"a": math.nan, "b": [1.0, math.inf], "c": {"d": -math.inf}})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": {"d": None}}
    rf.write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    with pytest.raises(TypeError):  # fails while writing: the old file stays whole
        rf.write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]  # no temporary left


def test_truncating_metrics_replaces_the_file_for_the_server_to_notice(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.append_metrics({"step": s, "name": "train/loss", "value": 1.0 / s} for s in (1, 2, 3))
    with folder.metrics_path.open("a") as f:
        f.write('{"step": 4, "name": "tr')  # a line cut by a kill
    inode = folder.metrics_path.stat().st_ino
    folder.truncate_metrics_after(2)
    assert [r["step"] for r in folder.read_metrics()] == [1, 2]
    assert folder.metrics_path.stat().st_ino != inode  # a new file, not an edit in place
    RunFolder(tmp_path, writer=False).truncate_metrics_after(1)  # only the main process cuts
    assert len(folder.read_metrics()) == 2


# ---------------------------------------------------------------- the half-written checkpoint


def half_saved_run(run_dir: Path, tiny_model_dir: Path) -> None:
    """A run killed while saving checkpoint-4: checkpoint-2 is whole, checkpoint-4 is not."""
    make_checkpoint(run_dir, 2, source=tiny_model_dir)
    make_checkpoint(run_dir, 4, complete=False, source=tiny_model_dir)


def test_inspect_and_the_run_page_ignore_a_half_written_checkpoint(
    tiny_model_dir: Path, entrodrop_home: Path
) -> None:
    run_id = rf.new_run_id()
    run_dir = entrodrop_home / "runs" / run_id
    half_saved_run(run_dir, tiny_model_dir)
    config = RunConfig(model=str(tiny_model_dir))
    rf.write_text_atomic(run_dir / rf.CONFIG, config.model_dump_json())
    storage = Storage(entrodrop_home / "entrodrop.db")
    storage.open()
    now = time.time()
    storage.create_run(
        RunRecord(run_id, now, now, now, "cancelled", config.model_dump(mode="json"),
                  Launcher().model_dump(), started_at=now, finished_at=now, step=4)
    )  # fmt: skip
    storage.close()

    settings = Settings(home=entrodrop_home, load_model_on_startup=False)
    # (a) Inspect: run:<id> loads the whole checkpoint (the half one would not load at all) ...
    loaded = ModelService(settings).get(f"run:{run_id}")
    assert Path(loaded.path) == rf.checkpoint_dir(run_dir, 2) and loaded.name == f"run:{run_id}"
    # ... and lists the complete checkpoint by its step, never the half-written one
    assert [c["spec"] for c in list_checkpoints(settings.runs_path)] == [f"run:{run_id}:2"]
    with TestClient(create_app(settings)) as client:
        res = client.post(
            "/api/score", json={"text": "def f(x): return x", "model": f"run:{run_id}"}
        )
        assert res.status_code == 200, res.text
        assert res.json()["model"] == f"run:{run_id}"
        # (c) the run page and its twin: the last checkpoint a resume can use is step 2
        run = client.get(f"/api/runs/{run_id}").json()
        assert run["checkpoint_step"] == 2 and run["links"]["inspect"] == f"/?model=run:{run_id}"
        page = client.get(f"/runs/{run_id}").text
        assert '<dd id="checkpoint-step">step 2</dd>' in page


def test_resume_continues_from_the_last_whole_checkpoint(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    from entrodrop.training.run import train

    cfg = RunConfig(
        model=str(tiny_model_dir), dataset=str(small_corpus), max_steps=4, seq_len=32, batch_size=4,
        eval_every=2, max_train_tokens=2048, max_eval_tokens=256,
        entrodrop={"entropy_source": "online", "drop_mode": "input"},
        save_total_limit=2,  # checkpoint-2 stays, as it would while checkpoint-4 is being saved
    )  # fmt: skip
    run_dir = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads cost more than they save
    try:
        assert train(cfg, run_dir)["status"] == "succeeded"
        # Now make it a run killed while saving checkpoint-4, before its final model.
        shutil.rmtree(run_dir / rf.MODEL)
        last = rf.checkpoint_dir(run_dir, 4)
        (last / rf.TRAINER_STATE).unlink()
        rf.drop_state_path(last, 0).unlink()
        weights = last / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        assert rf.latest_checkpoint(run_dir) == rf.checkpoint_dir(run_dir, 2)

        summary = train(cfg, run_dir, resume=True)
    finally:
        torch.set_num_threads(threads)
    # (b) resume: from checkpoint-2 (a start from the half checkpoint-4 would fail to load)
    assert summary["status"] == "succeeded" and summary["steps"] == 4
    assert "resuming from checkpoint-2" in (run_dir / rf.LOG).read_text()
    rows: list[dict[str, Any]] = RunFolder(run_dir).read_metrics()
    counts = Counter((r["step"], r["name"]) for r in rows)
    assert max(counts.values()) == 1  # steps 3-4 logged once, by the resumed attempt
    assert {r["step"] for r in rows if r["name"] == "eval/loss"} == {0, 2, 4}  # 0: the start
    assert rf.is_complete_checkpoint(last)  # saved anew, whole, with the drop generator's state
    assert rf.drop_state_path(last, 0).is_file()


# A training process that dies (os._exit: no clean-up, as a kill) at one point of saving
# checkpoint-4: inside the drop-state write, or between it and the Trainer's trainer_state.json.
KILL_SCRIPT = """
import os, sys
from pathlib import Path
import safetensors.torch
import transformers.trainer_callback as tc
from entrodrop.config import RunConfig
from entrodrop.training.run import train

where, run_dir, config = sys.argv[1], Path(sys.argv[2]), RunConfig.model_validate_json(sys.argv[3])
real_save_file, real_save_state = safetensors.torch.save_file, tc.TrainerState.save_to_json

def save_file(tensors, path, *args, **kwargs):
    if where == "drop-state" and "checkpoint-4" in str(path) and "entrodrop_state" in str(path):
        os._exit(9)
    return real_save_file(tensors, path, *args, **kwargs)

def save_to_json(self, path):
    if where == "trainer-state" and "checkpoint-4" in str(path):
        os._exit(9)
    return real_save_state(self, path)

safetensors.torch.save_file, tc.TrainerState.save_to_json = save_file, save_to_json
train(config, run_dir)
"""


@pytest.mark.parametrize("where", ["drop-state", "trainer-state"])
def test_a_kill_while_saving_never_leaves_a_complete_checkpoint_without_drop_state(
    where: str, tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """The drop state is part of a complete checkpoint: a process killed after it and before
    trainer_state.json (or while writing it) leaves a checkpoint that resume passes over."""
    import subprocess
    import sys

    from entrodrop.training.run import train

    cfg = RunConfig(
        model=str(tiny_model_dir), dataset=str(small_corpus), max_steps=6, seq_len=32, batch_size=4,
        eval_every=2, max_train_tokens=2048, max_eval_tokens=256, method="random",
        entrodrop={"entropy_source": "online", "drop_mode": "input", "schedule": "constant"},
    )  # fmt: skip
    run_dir = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", KILL_SCRIPT, where, str(run_dir), cfg.model_dump_json()]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 9, done.stderr[-2000:]
    half = rf.checkpoint_dir(run_dir, 4)
    assert half.is_dir() and not (half / rf.TRAINER_STATE).exists()
    assert rf.drop_state_path(half, 0).is_file() == (where == "trainer-state")
    assert not rf.is_complete_checkpoint(half)
    assert rf.latest_checkpoint(run_dir) == rf.checkpoint_dir(run_dir, 2)
    for complete in rf.checkpoints(run_dir):
        assert rf.drop_state_path(complete, 0).is_file()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = train(cfg, run_dir, resume=True)
        straight = train(cfg, tmp_path / "straight")
    finally:
        torch.set_num_threads(threads)
    assert resumed["status"] == straight["status"] == "succeeded"

    def drops(folder: Path) -> list[tuple[int, float]]:
        rows = RunFolder(folder).read_metrics()
        return [(r["step"], r["value"]) for r in rows if r["name"] == "drop/fraction_realised"]

    assert drops(run_dir) == drops(tmp_path / "straight")  # the generator continued exactly
