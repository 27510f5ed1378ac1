"""Bad input gets a 4xx with a readable `detail`: odd text, odd files, bad numbers, bad paths."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not installed

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.fuzz_api import offline_client  # noqa: E402

UPLOAD_CAP = 4096
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An allowed data folder with a file, a symlink out and a symlinked folder out; odd models."""
    root = tmp_path_factory.mktemp("bad-input")
    allowed, outside = root / "data", root / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "notes.txt").write_text("first note\n\n\nsecond note\n")
    (allowed / "notes.csv").write_text("a,b\n")
    (allowed / "folder.txt").mkdir()
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside / "secret.txt", allowed / "link.txt")
    os.symlink(outside, allowed / "linkdir")
    models = root / "models"
    for name, files in {
        "no-config": {"weights.safetensors": "x"},
        "pickle-only": {"config.json": '{"model_type": "llama"}', "pytorch_model.bin": "x"},
        "bad-config": {"config.json": "{not json", "model.safetensors": "x"},
        "not-causal": {"config.json": '{"model_type": "vit"}', "model.safetensors": "x"},
    }.items():
        (models / name).mkdir(parents=True)
        for file, content in files.items():
            (models / name / file).write_text(content)
    return {"root": root, "allowed": allowed, "outside": outside, "models": models}


@pytest.fixture(scope="module")
def client(tiny_model_dir: Path, folders: dict[str, Path]) -> Iterator[TestClient]:
    """One app for the module: the tiny model, no real training, a small upload cap."""
    home = folders["root"] / "home"
    with offline_client(
        home, tiny_model_dir, allowed_data_dirs=[folders["allowed"]], max_upload_bytes=UPLOAD_CAP
    ) as c:
        yield c


def refused(res: Any, status: int | tuple[int, ...] = 422, needle: str = "") -> dict[str, Any]:
    """Assert a 4xx JSON error whose `detail` is a sentence (containing `needle`)."""
    statuses = (status,) if isinstance(status, int) else status
    assert res.status_code in statuses, (res.status_code, res.text[:300])
    body: dict[str, Any] = res.json()
    detail = body.get("detail")
    assert isinstance(detail, str) and detail.strip(), body
    assert "Traceback" not in detail
    assert needle.lower() in detail.lower(), detail
    return body


def fields_of(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


# ---------------------------------------------------------------- text to score

TEXT_ENDPOINTS = {
    "/api/score": {},
    "/api/compare": {"model_b": "run:none-such"},
    "/api/preview": {},
}


@pytest.mark.parametrize("url", list(TEXT_ENDPOINTS))
def test_text_that_is_not_unicode_is_refused(client: TestClient, url: str) -> None:
    extra = json.dumps(TEXT_ENDPOINTS[url])[1:-1]
    sep = ", " if extra else ""
    lone = f'{{"text": "ab\\ud800cd"{sep}{extra}}}'.encode()
    refused(client.post(url, content=lone, headers=JSON), 422, "text")
    not_utf8 = f'{{"text": "ab\xff\xfe"{sep}{extra}}}'.encode("latin-1")
    refused(client.post(url, content=not_utf8, headers=JSON), (400, 422))


def test_empty_binary_and_huge_texts(client: TestClient) -> None:
    refused(client.post("/api/score", json={"text": ""}), 422, "empty")
    refused(client.post("/api/score", json={"text": "\x00\x01abc"}), 422, "binary")  # NUL bytes
    odd = "\x1b[31mred\x1b[0m text \ufffe\U0001f600 \u202e right to left"
    res = client.post("/api/score", json={"text": odd})
    assert res.status_code == 200 and res.json()["n_tokens"] > 0  # odd but valid text is scored
    huge = "x" * 2_000_000  # far over 20 000 tokens: refused before tokenizing
    refused(client.post("/api/score", json={"text": huge}), 413, "limit")
    refused(client.post("/api/preview", json={"text": huge}), 413, "limit")


def test_deeply_nested_json_is_a_4xx(client: TestClient) -> None:
    deep = b"[" * 100_000
    for url in ("/api/runs", "/api/runs/check", "/api/runs/preview", "/api/score"):
        refused(client.post(url, content=deep, headers=JSON), (400, 422))
    assert client.get("/api/runs").json()["runs"] == []


# ---------------------------------------------------------------- hyperparameters

BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"learning_rate": -1e-4}, "learning_rate"),
    ({"epochs": -1}, "epochs"),
    ({"batch_size": -4}, "batch_size"),
    ({"grad_accum": 0}, "grad_accum"),
    ({"max_steps": -5}, "max_steps"),
    ({"seq_len": 4}, "seq_len"),
    ({"eval_every": 0}, "eval_every"),
    ({"entrodrop": {"rate_max": -0.1}}, "entrodrop.rate_max"),
    ({"entrodrop": {"selection": "threshold", "threshold": -1}}, "entrodrop.threshold"),
    ({"method": "weight_decay", "baseline_strength": -1}, "baseline_strength"),
    ({"max_steps": 10**40}, "max_steps"),
    ({"batch_size": 10**12}, "batch_size"),
    ({"seq_len": 10**9}, "seq_len"),
    ({"seed": 2**70}, "seed"),
    ({"epochs": 1e308}, "epochs"),
    ({"learning_rate": 1e6}, "learning_rate"),
    ({"entrodrop": {"steepness": 1e300}}, "entrodrop.steepness"),
    ({"entrodrop": {"seed": 2**64}}, "entrodrop.seed"),
    ({"launcher": {"kind": "accelerate", "num_processes": 10**6}}, "launcher.num_processes"),
    ({"max_train_tokens": -1}, "max_train_tokens"),
]
NON_FINITE: list[tuple[bytes, str]] = [
    (b'{"learning_rate": NaN}', "learning_rate"),
    (b'{"epochs": Infinity}', "epochs"),
    (b'{"epochs": 1e400}', "epochs"),
    (b'{"entrodrop": {"quantile": NaN}}', "entrodrop.quantile"),
    (b'{"entrodrop": {"midpoint": -Infinity}}', "entrodrop.midpoint"),
    (b'{"method": "neftune", "baseline_strength": NaN}', "baseline_strength"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CONFIGS)
def test_invalid_hyperparameters_are_422_at_their_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    for url in ("/api/runs/check", "/api/runs"):
        assert field in fields_of(refused(client.post(url, json=body))), url


@pytest.mark.parametrize(("raw", "field"), NON_FINITE)
def test_nan_and_infinity_are_422(client: TestClient, raw: bytes, field: str) -> None:
    for url in ("/api/runs/check", "/api/runs", "/api/runs/preview"):
        assert field in fields_of(refused(client.post(url, content=raw, headers=JSON))), url


def test_no_run_was_created_by_bad_configs(client: TestClient) -> None:
    assert client.get("/api/runs").json()["runs"] == []


def test_bad_policy_numbers_on_the_inspect_api(client: TestClient) -> None:
    base: dict[str, Any] = {"entropies": [None, 1.0, 2.0]}
    refused(client.post("/api/preview", json={**base, "policy": {"steepness": 1e300}}), 422)
    refused(client.post("/api/preview", json={**base, "policy": {"seed": -1}}), 422, "seed")
    raw = b'{"entropies": [null, 1.0], "progress": NaN}'
    refused(client.post("/api/preview", content=raw, headers=JSON), 422, "progress")
    refused(client.get("/api/draws", params={"n": -1}), 422, "n")
    refused(client.get("/api/draws", params={"n": 10**30}), 413, "limit")
    refused(client.get("/api/draws", params={"n": 3, "seed": 2**64}), 422, "seed")


# ---------------------------------------------------------------- run ids


@pytest.mark.parametrize(
    "run_id", ["..", "..%2F..%2Fetc%2Fpasswd", "a" * 65, "r-%C3%BCn%C3%AF", "%00", "-r", "r%20x"]
)
def test_odd_run_ids_are_404(client: TestClient, run_id: str) -> None:
    for method, url in (
        ("GET", f"/api/runs/{run_id}"),
        ("GET", f"/api/runs/{run_id}/metrics"),
        ("POST", f"/api/runs/{run_id}/resume"),
        ("GET", f"/api/compare?runs={run_id}"),
    ):
        refused(client.request(method, url), 404)
    if run_id != "..":  # (the client itself resolves /runs/.. to /)
        assert client.get(f"/runs/{run_id}").status_code == 404


def test_huge_cursor_values_are_refused(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={}).json()["id"]
    try:
        for url in (f"/api/runs/{run_id}/metrics", f"/api/runs/{run_id}/events"):
            refused(client.get(url, params={"after": 10**30}), 422, "after")
        res = client.get(f"/api/runs/{run_id}/metrics", params={"after": 2**63 - 1})
        assert res.status_code == 200 and res.json() == []
        # A reconnecting EventSource's Last-Event-ID is only a hint: an odd one starts afresh.
        for last in (b"9" * 40, b"\xb2"):  # "\xb2" is "²", which str.isdigit() accepts
            url = f"/api/runs/{run_id}/events"
            with client.stream("GET", url, headers={"last-event-id": last}) as res:
                assert res.status_code == 200
                assert next(res.iter_lines()).startswith("retry:")
    finally:
        client.app.state.jobs.storage.update_run(run_id, status="failed")  # type: ignore[attr-defined]


# ---------------------------------------------------------------- model paths


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("../no-such-model", "no model folder"),
        ("no-config", "no config.json"),
        ("pickle-only", "safetensors"),
        ("file", "file"),
    ],
)
def test_model_paths_that_are_not_models(
    client: TestClient, folders: dict[str, Path], name: str, needle: str
) -> None:
    path = folders["models"] / "pickle-only" / "config.json" if name == "file" else None
    spec = str(path or folders["models"] / name)
    refused(client.post("/api/score", json={"text": "hi", "model": spec}), 422, needle)
    body = refused(client.post("/api/runs/check", json={"model": spec}), 422)
    assert fields_of(body) == {"model"}


@pytest.mark.parametrize(
    ("name", "needle"), [("bad-config", "config"), ("not-causal", "not a causal language model")]
)
def test_unloadable_configs_are_422_on_score(
    client: TestClient, folders: dict[str, Path], name: str, needle: str
) -> None:
    spec = str(folders["models"] / name)
    refused(client.post("/api/score", json={"text": "hi", "model": spec}), 422, needle)


# ---------------------------------------------------------------- dataset paths


@pytest.mark.parametrize(
    ("dataset", "needle"),
    [
        ("linkdir/secret.txt", ""),  # a symlinked folder leading out
        ("folder.txt", "no such file"),  # a folder, not a file
        ("notes.csv", "no usable column"),  # CSV is read; its columns are not a format
        ("notes\x00.txt", "path"),
        ("~/notes.txt", "outside"),
        ("ABS_HOME_DB", "outside"),  # the server's own database
        ("ABS_UPLOADS_DOTDOT", ".."),
    ],
)
def test_dataset_paths_outside_or_odd_are_refused(
    client: TestClient, folders: dict[str, Path], dataset: str, needle: str
) -> None:
    home = folders["root"] / "home"
    dataset = {
        "ABS_HOME_DB": str(home / "entrodrop.db"),
        "ABS_UPLOADS_DOTDOT": str(home / "uploads" / ".." / "entrodrop.db"),
    }.get(dataset, dataset)
    body = refused(client.post("/api/runs/check", json={"dataset": dataset}), 422, needle)
    assert fields_of(body) == {"dataset"}


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize(
    ("name", "content", "status", "needle"),
    [
        ("empty.txt", b"", 422, "empty"),
        ("blank.txt", b"  \n\n\n \t\n", 422, "empty"),
        ("binary.txt", bytes(range(256)) * 4, 422, "binary"),
        ("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), 422, "UTF-8"),
        ("deep.jsonl", b"[" * 3000 + b"\n", 422, "line 1"),
        ("rows.jsonl", b'{"text": "ok"}\n[1, 2]\n', 422, "line 2"),
        ("junk.parquet", b"PAR1 not really parquet PAR1", 422, "parquet"),
        ("model.safetensors", b"x", 422, "unsupported"),
        ("big.txt", b"x" * (UPLOAD_CAP + 1), 413, f"{UPLOAD_CAP} bytes"),
    ],
)
def test_bad_uploads(
    client: TestClient, name: str, content: bytes, status: int, needle: str
) -> None:
    refused(client.post("/api/uploads", files={"file": (name, content)}), status, needle)


def test_upload_names_cannot_escape_the_uploads_folder(
    client: TestClient, folders: dict[str, Path]
) -> None:
    for name in ("../../escape.txt", "/etc/cron.d/x.txt", "..\\..\\win.txt", "a\x00b.txt"):
        res = client.post("/api/uploads", files={"file": (name, b"some text")})
        assert res.status_code == 201, res.text
        saved = Path(res.json()["dataset"])
        assert saved.parent == folders["root"] / "home" / "uploads", saved
    refused(client.post("/api/uploads", data={"x": "no file"}), 415, "multipart/form-data")


# ---------------------------------------------------------------- size caps, streamed


def stream_post(
    app: Any, path: str, head: bytes, size: int, content_type: bytes
) -> tuple[int, int]:
    """POST `head` then `size` filler bytes in 64 KiB chunks, without a Content-Length.

    Returns (status, bytes the app read): a capped server stops reading early.
    """
    chunk = b"x" * 65_536
    parts = [head] + [chunk] * (size // len(chunk))
    state = {"read": 0, "status": 0}

    async def receive() -> dict[str, Any]:
        if parts:
            part = parts.pop(0)
            state["read"] += len(part)
            return {"type": "http.request", "body": part, "more_body": bool(parts)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            state["status"] = message["status"]

    scope = {
        "type": "http", "http_version": "1.1", "method": "POST", "path": path,
        "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"",
        "headers": [(b"content-type", content_type)], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return state["status"], state["read"]


def test_bodies_are_capped_while_streaming(folders: dict[str, Path]) -> None:
    settings = Settings(
        home=folders["root"] / "capped", load_model_on_startup=False, max_upload_bytes=UPLOAD_CAP
    )
    app = create_app(settings)
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )
    status, read = stream_post(
        app, "/api/uploads", head, 50_000_000, b"multipart/form-data; boundary=b"
    )
    assert status == 413 and read < UPLOAD_CAP + 200_000, read  # not the 50 MB sent
    status, read = stream_post(app, "/api/score", b'{"text": "', 50_000_000, b"application/json")
    assert status == 413 and read < 20_000_000, read
    assert not list((folders["root"] / "capped").glob("uploads/*"))
