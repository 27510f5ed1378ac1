"""Data files that lie about their size cost the server nothing: uploads are parsed in a child
process with a memory limit, and the server's own peak memory is measured around the upload."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

HERE = Path(__file__).resolve().parent
MB = 1_000_000


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@contextmanager
def peak_growth() -> Iterator[list[int]]:
    """[bytes]: how far this process's peak resident memory rose above its level at the start
    (Linux: /proc/self/clear_refs resets the peak, VmHWM, to the current RSS)."""
    Path("/proc/self/clear_refs").write_text("5")
    start = _status_kb("VmRSS")
    grown = [0]
    yield grown
    grown[0] = (_status_kb("VmHWM") - start) * 1024


def lying_parquet_file(folder: Path, value_bytes: int) -> bytes:
    """The bytes of lying_parquet.py's file, built in another process (its honest value takes
    `value_bytes` of memory, which must not count as the server's)."""
    out = folder / "bomb.parquet"
    subprocess.run(
        [sys.executable, str(HERE / "lying_parquet.py"), str(out), str(value_bytes)], check=True
    )
    return out.read_bytes()


def _honest_parquet() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"text": ["an honest row", "and another"]}), buf)
    return buf.getvalue()


@pytest.fixture
def client(entrodrop_home: Path) -> Iterator[TestClient]:
    app = create_app(Settings(home=entrodrop_home, load_model_on_startup=False))
    with TestClient(app) as c:
        yield c


def test_a_lying_parquet_footer_is_4xx_and_the_server_stays_flat(
    client: TestClient, tmp_path: Path
) -> None:
    bomb = lying_parquet_file(tmp_path, 300 * MB)
    footer = pq.ParquetFile(io.BytesIO(bomb)).metadata.row_group(0).column(0)
    assert len(bomb) < 20_000 and footer.total_uncompressed_size <= 1000  # it lies
    # An honest upload first: whatever parsing costs once (imports, a helper process) is paid.
    honest = client.post("/api/uploads", files={"file": ("ok.parquet", _honest_parquet())})
    assert honest.status_code == 201, honest.text
    with peak_growth() as grown:
        r = client.post("/api/uploads", files={"file": ("bomb.parquet", bomb)})
    assert 400 <= r.status_code < 500, r.text
    assert "bomb.parquet" in r.json()["detail"]
    assert grown[0] < 100 * MB, f"the server's peak memory grew by {grown[0] / MB:.0f} MB"
    assert not list((client.app.state.settings.home / "uploads").glob("bomb*"))  # type: ignore[attr-defined]


def test_a_lying_parquet_named_by_path_is_4xx_in_the_preview(
    entrodrop_home: Path, tmp_path: Path, tiny_model_dir: Path, small_corpus: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "bomb.parquet").write_bytes(lying_parquet_file(tmp_path, 300 * MB))
    (data / "small.txt").write_bytes(small_corpus.read_bytes())
    settings = Settings(home=entrodrop_home, allowed_data_dirs=[data], load_model_on_startup=False)
    body = {"model": str(tiny_model_dir), "seq_len": 16, "batch_size": 1}
    with TestClient(create_app(settings)) as client:
        # An honest preview first: the model is loaded and the parsing helper started.
        honest = client.post("/api/runs/preview", json={**body, "dataset": str(data / "small.txt")})
        assert honest.status_code == 200, honest.text
        with peak_growth() as grown:
            r = client.post(
                "/api/runs/preview", json={**body, "dataset": str(data / "bomb.parquet")}
            )
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["errors"][0]["loc"] == ["dataset"] and "bomb.parquet" in r.json()["detail"]
        assert grown[0] < 100 * MB, f"the server's peak memory grew by {grown[0] / MB:.0f} MB"
