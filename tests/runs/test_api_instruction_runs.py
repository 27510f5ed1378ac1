"""Instruction data through the runs API: uploads, validation before any run, the preview."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from data_files import CONVERSATION, RECORDS, variant, write
from runs_helpers import ClientFactory


def upload(client: Any, name: str, raw: bytes) -> Any:
    return client.post("/api/uploads", files={"file": (name, raw)})


def lines(*records: dict[str, Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_an_upload_says_what_it_found(make_client: ClientFactory, entrodrop_home: Path) -> None:
    with make_client() as client:
        for fmt in ("messages", "sharegpt", "alpaca", "prompt_completion"):
            res = upload(client, f"{fmt}.jsonl", lines(*(variant(fmt, i) for i in range(3))))
            assert res.status_code == 201, res.text
            found = res.json()
            assert found["format"] == fmt and found["n_examples"] == 3 and found["n_chars"] > 0
        csv = b"instruction,input,output\nSay hi,,Hi.\nAdd,1 2,3\n"
        assert upload(client, "a.csv", csv).json()["format"] == "alpaca"


BAD_UPLOADS = [
    ("mixed.jsonl", lines(RECORDS["messages"], RECORDS["alpaca"]), "mixed.jsonl line 2: mixed"),
    ("keys.jsonl", lines({**RECORDS["alpaca"], "id": 1}), "keys.jsonl line 1: unknown keys 'id'"),
    ("empty.jsonl", lines({"instruction": "q", "output": ""}), "empty.jsonl line 1: 'output' is"),
    ("noanswer.jsonl", lines({"messages": CONVERSATION[:2]}), "line 1: missing assistant turn"),
    ("order.jsonl", lines({"messages": CONVERSATION[::-1]}), "line 1: roles out of order"),
    ("int.jsonl", lines({"prompt": "q", "completion": 4}), "'completion' must be a string"),
    ("array.jsonl", json.dumps([RECORDS["messages"]]).encode(), "array.jsonl line 1 starts a JSON"),
    ("cols.csv", b"question,reply\nq,a\n", "cols.csv has no usable column"),
    ("latin.csv", b"text\ncaf\xe9\n", "latin.csv is not UTF-8 text (line 2"),
]


@pytest.mark.parametrize(("name", "raw", "needle"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_are_422_naming_the_line_and_keep_nothing(
    make_client: ClientFactory, entrodrop_home: Path, name: str, raw: bytes, needle: str
) -> None:
    with make_client() as client:
        res = upload(client, name, raw)
        assert res.status_code == 422 and needle in res.json()["detail"], res.text
    uploads = entrodrop_home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_a_run_with_bad_data_is_refused_before_anything_is_made(
    make_client: ClientFactory,
    entrodrop_home: Path,
    tmp_path: Path,
    tiny_chat_model_dir: Path,
    tiny_model_dir: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    mixed = folder / "mixed.jsonl"
    mixed.write_bytes(lines(RECORDS["messages"], RECORDS["sharegpt"]))
    good = write(folder / "good.jsonl", [variant("messages", i) for i in range(6)])
    text = write(folder / "text.jsonl", [variant("text", i) for i in range(6)])
    cases = [
        ({"dataset": str(mixed)}, "dataset", "mixed.jsonl line 2: mixed formats"),
        ({"dataset": str(good), "seq_len": 8}, "dataset", "no example has a trained token"),
        ({"dataset": str(good), "model": str(tiny_model_dir)}, "dataset", "no chat template"),
        ({"dataset": str(good), "heldout_dataset": str(text)}, "heldout_dataset", "same kind"),
        ({"dataset": str(good), "data_format": "alpaca"}, "dataset", "missing 'instruction'"),
    ]
    with make_client(allowed_data_dirs=[folder]) as client:
        for body, field, needle in cases:
            full = {"model": str(tiny_chat_model_dir), "seq_len": 256, **body}
            res = client.post("/api/runs", json=full)
            assert res.status_code == 422, res.text
            errors = res.json()["errors"]
            assert errors[0]["field"] == field and needle in errors[0]["msg"], errors
        assert client.get("/api/runs").json()["runs"] == []
        ok = client.post(
            "/api/runs", json={"model": str(tiny_chat_model_dir), "dataset": str(good)}
        )
        assert ok.status_code == 201, ok.text
    runs = entrodrop_home / "runs"
    assert [p.name for p in runs.iterdir()] == [ok.json()["id"]]


def test_the_preview_marks_trained_tokens_and_drops_only_those(
    make_client: ClientFactory, tmp_path: Path, tiny_chat_model_dir: Path
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = write(folder / "chat.jsonl", [variant("messages", i) for i in range(10)])
    body = {
        "model": str(tiny_chat_model_dir),
        "dataset": str(path),
        "seq_len": 256,
        "batch_size": 2,
        "entrodrop": {"rate_max": 1.0, "quantile": 0.8},
    }
    with make_client(allowed_data_dirs=[folder], fake_child=True) as client:
        res = client.post("/api/runs/preview", json=body)
        assert res.status_code == 200, res.text
        preview = res.json()
        assert preview["instruction"] and preview["train_on"] == "answers"
        tokens = [t for row in preview["rows"] for t in row]
        assert 0 < preview["n_trained"] == sum(t["trained"] for t in tokens) < len(tokens)
        assert {t["role"] for t in tokens} >= {"system", "user", "assistant"}
        assert any(t["dropped"][2] for t in tokens)
        assert all(t["trained"] for t in tokens if any(t["dropped"]))
        wide = client.post(
            "/api/runs/preview",
            json={**body, "entrodrop": {**body["entrodrop"], "drop_scope": "all"}},
        ).json()
        assert any(t["dropped"][2] and not t["trained"] for row in wide["rows"] for t in row)


def test_the_data_report_of_a_run_is_what_entrodrop_data_prints(
    make_client: ClientFactory, tiny_chat_model_dir: Path
) -> None:
    from typer.testing import CliRunner

    from entrodrop.cli import app

    model = str(tiny_chat_model_dir)
    with make_client() as client:
        raw = lines(*(variant("sharegpt", i) for i in range(5)))
        dataset = upload(client, "chat.jsonl", raw).json()["dataset"]
        res = client.post(
            "/api/runs/data", json={"model": model, "dataset": dataset, "seq_len": 256}
        )
        assert res.status_code == 200, res.text
        report = res.json()
    printed = CliRunner().invoke(
        app, ["data", dataset, "--model", model, "--seq-len", "256", "--json"]
    )
    assert printed.exit_code == 0 and json.loads(printed.stdout) == report
    assert report["format"] == "sharegpt" and report["examples"] == 5
    assert 0 < report["trained_tokens"] < report["tokens"]


def test_an_upload_can_name_its_format(make_client: ClientFactory) -> None:
    both = lines({"text": "t", "prompt": "p", "completion": "c"})
    with make_client() as client:
        refused = upload(client, "both.jsonl", both)
        assert refused.status_code == 422 and "set data_format" in refused.json()["detail"]
        res = client.post(
            "/api/uploads", files={"file": ("both.jsonl", both)}, data={"data_format": "text"}
        )
        assert res.status_code == 201 and res.json()["format"] == "text", res.text


@pytest.mark.processes
@pytest.mark.timeout(300)
def test_a_study_on_a_chat_file_runs_as_on_text(
    make_client: ClientFactory, tmp_path: Path, tiny_chat_model_dir: Path
) -> None:
    from waiting import wait_sync

    folder = tmp_path / "data"
    folder.mkdir()
    path = write(folder / "chat.jsonl", [variant("alpaca", i) for i in range(10)])
    base = {
        "model": str(tiny_chat_model_dir), "dataset": str(path), "seq_len": 256,
        "batch_size": 2, "max_steps": 2, "eval_every": 2, "max_eval_tokens": 512,
    }  # fmt: skip
    body = {"name": "chat", "base": base, "variants": ["none", "entrodrop"], "seeds": [0]}
    with make_client(fake_child=False, allowed_data_dirs=[folder]) as client:
        created = client.post("/api/studies", json=body)
        assert created.status_code == 201, created.text
        study_id = created.json()["id"]

        def ended() -> bool:
            study = client.get(f"/api/studies/{study_id}").json()
            return bool(study["status"] not in study["facts"]["active"])

        wait_sync(ended, 240, f"study {study_id}")
        study = client.get(f"/api/studies/{study_id}").json()
        assert study["status"] == "succeeded", study["runs"]
        assert {row["variant"] for row in study["summary"]} == {"none", "entrodrop-online-input"}
        run = client.get(f"/api/runs/{study['runs'][1]['id']}").json()
        assert run["config"]["dataset"] == str(path) and run["config"]["train_on"] == "answers"
