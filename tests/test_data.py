"""Datasets: built-in corpora, user files with clear errors, and token blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from entrodrop import data
from entrodrop.data import DataError
from entrodrop.data.parquet import declared_text_bytes


def test_python_reference_split_is_disjoint() -> None:
    ds = data.python_reference()
    assert len(ds.train) + len(ds.heldout) == 79
    assert 10 <= len(ds.heldout) <= 20
    assert not set(ds.train) & set(ds.heldout)


def test_general_text_is_prose() -> None:
    texts = data.general_texts()
    joined = " ".join(texts)
    assert len(joined) > 1000 and "def " not in joined[:2000]


def test_user_files(tmp_path: Path) -> None:
    txt = tmp_path / "a.txt"
    txt.write_text("first doc\n\n\nsecond doc", encoding="utf-8")
    assert data.read_user_file(txt) == ["first doc", "second doc"]
    jl = tmp_path / "b.jsonl"
    jl.write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"text": "two"}) + "\n")
    assert data.read_user_file(jl) == ["one", "two"]
    pqf = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["p1", "p2"], "other": [1, 2]}), pqf)
    assert data.read_user_file(pqf) == ["p1", "p2"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"   \n", "is empty"),
        ("bin.txt", b"\x00\x01\x02binary", "binary"),
        ("latin.txt", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("bad.jsonl", b'{"text": "ok"}\n{not json}\n', "line 2: not valid JSON"),
        ("nofield.jsonl", b'{"body": "x"}\n', r"line 1: no known format in the keys \('body'\)"),
        ("bad.parquet", b"PAR1 not really", "not a readable parquet"),
        ("doc.pdf", b"%PDF-1.4", "unsupported file type"),
    ],
)
def test_bad_files_give_clear_errors(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(DataError, match=message):
        data.read_user_file(f)


def test_parquet_without_text_column(tmp_path: Path) -> None:
    f = tmp_path / "x.parquet"
    pq.write_table(pa.table({"body": ["a"]}), f)
    with pytest.raises(DataError, match="no usable column"):
        data.read_user_file(f)


def test_blocks_and_too_short(tiny_loaded) -> None:
    blocks = data.build_blocks(["def f():\n    return 1\n"] * 20, tiny_loaded.tokenizer, seq_len=16)
    assert blocks.dim() == 2 and blocks.shape[1] == 16 and blocks.shape[0] >= 2
    with pytest.raises(DataError, match="too few for one block"):
        data.build_blocks(["x"], tiny_loaded.tokenizer, seq_len=64)


def test_allowed_paths(tmp_path: Path) -> None:
    allowed = tmp_path / "data"
    allowed.mkdir()
    (allowed / "ok.txt").write_text("hello")
    outside = tmp_path / "secret.txt"
    outside.write_text("no")
    (allowed / "link.txt").symlink_to(outside)
    assert data.check_path_allowed("ok.txt", [allowed]) == (allowed / "ok.txt").resolve()
    assert data.check_path_allowed(str(allowed / "ok.txt"), [allowed]).name == "ok.txt"
    for bad in ("../secret.txt", str(outside), "link.txt", "/etc/passwd"):
        with pytest.raises(DataError, match="outside the allowed"):
            data.check_path_allowed(bad, [allowed])
    with pytest.raises(DataError, match="disabled"):
        data.check_path_allowed("ok.txt", [])


def test_load_dataset_specs(tmp_path: Path) -> None:
    assert data.load_dataset("python-reference").name == "python-reference"
    f = tmp_path / "one.txt"
    f.write_text("\n".join(f"line {i}" for i in range(100)))
    ds = data.load_dataset(str(f))
    assert ds.train and ds.heldout and "line 99" in ds.heldout[0]
    with pytest.raises(DataError, match="unknown dataset"):
        data.load_dataset("nope-corpus")


def test_txt_split_is_logged_document_by_document(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("\r\n\r\n\r\n".join(f"Document {i} text." for i in range(1, 12)))  # CRLF
    ds = data.load_dataset(str(f))
    # Split at two blank lines (Windows line ends too): 11 documents, the 5th and 10th held out.
    assert [t.strip() for t in ds.heldout] == ["Document 5 text.", "Document 10 text."]
    assert len(ds.train) == 9
    assert ds.split.startswith("notes.txt: 11 documents, 2 held out (every 5th)")
    assert "#5 'Document 5 text.'" in ds.split and "#10 'Document 10 text.'" in ds.split
    ref = data.load_dataset("python-reference")
    assert ref.split.startswith("python-reference: 79 topics, 16 held out")


def test_explicit_heldout_and_general_files(tmp_path: Path) -> None:
    train = tmp_path / "train.txt"
    train.write_text("\n\n\n".join(f"Train doc {i}." for i in range(10)))
    held = tmp_path / "held.jsonl"
    held.write_text("\n".join(json.dumps({"text": f"Held doc {i}."}) for i in range(3)))
    ds = data.load_dataset(str(train), heldout=str(held))
    # A held-out file makes every training document train; only the file is evaluated.
    assert len(ds.train) == 10 and ds.heldout == [f"Held doc {i}." for i in range(3)]
    assert "all 10 documents train; held out: held.jsonl (3 documents)" in ds.split
    assert data.general_texts(str(held)) == ds.heldout
    assert data.general_texts() != ds.heldout  # the default: CPython's LICENSE
    with pytest.raises(DataError, match="unknown dataset"):
        data.load_dataset(str(train), heldout=str(tmp_path / "missing.txt"))


# ---------------------------------------------------------------- bounded reading


def _bomb(rows: int, value_bytes: int) -> pa.Table:
    # One dictionary value referenced by every row: tiny on disk, rows x value_bytes decoded.
    indices = pa.array([0] * rows, pa.int32())
    return pa.table(
        {"text": pa.DictionaryArray.from_arrays(indices, pa.array(["x" * value_bytes]))}
    )


def test_parquet_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    import psutil

    f = tmp_path / "bomb.parquet"
    pq.write_table(_bomb(1000, 1_000_000), f, compression="zstd")
    assert f.stat().st_size < 2000
    before = psutil.Process().memory_info().rss
    with pytest.raises(data.DataTooLarge, match="more than 5000000 bytes"):
        data.read_user_file(f, max_text_bytes=5_000_000)
    assert psutil.Process().memory_info().rss - before < 200_000_000


def test_declared_page_sizes_refuse_a_plain_bomb_from_the_footer(tmp_path: Path) -> None:
    f = tmp_path / "plain.parquet"
    table = pa.table({"text": ["y" * 100_000] * 20})
    pq.write_table(table, f, compression="zstd", use_dictionary=False)
    parquet = pq.ParquetFile(f)
    assert declared_text_bytes(parquet.metadata) > 1_000_000  # known before decoding
    with pytest.raises(data.DataTooLarge):
        data.read_user_file(f, max_text_bytes=1_000_000)
    assert len(data.read_user_file(f, max_text_bytes=3_000_000)) == 20


def test_parquet_within_budget_reads_every_row_in_batches(tmp_path: Path) -> None:
    f = tmp_path / "many.parquet"
    texts = [f"row {i}" for i in range(data.PARQUET_BATCH_ROWS * 3 + 7)]
    pq.write_table(pa.table({"text": texts}), f, row_group_size=100)
    assert data.read_user_file(f, max_text_bytes=1_000_000) == texts
    f2 = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), f2)
    with pytest.raises(DataError, match="must hold strings"):
        data.read_user_file(f2)


def test_jsonl_and_txt_budgets(tmp_path: Path) -> None:
    jl = tmp_path / "a.jsonl"
    jl.write_text(
        "".join(json.dumps({"text": "é" * 100, "meta": "m" * 1000}) + "\n" for _ in range(10))
    )
    # 10 texts of 200 UTF-8 bytes: the other fields do not count, the text's bytes do
    assert len(data.read_user_file(jl, max_text_bytes=2000)) == 10
    with pytest.raises(data.DataTooLarge, match="1999 bytes"):
        data.read_user_file(jl, max_text_bytes=1999)
    one_line = tmp_path / "long.jsonl"
    one_line.write_text(json.dumps({"text": "z" * 200_000}))
    with pytest.raises(data.DataTooLarge):
        data.read_user_file(one_line, max_text_bytes=1000)  # not read whole before refusing
    txt = tmp_path / "b.txt"
    txt.write_text("w" * 5000)
    with pytest.raises(data.DataTooLarge):
        data.read_user_file(txt, max_text_bytes=4999)
    assert data.read_user_file(txt, max_text_bytes=5000) == ["w" * 5000]


def test_training_processes_take_the_budget_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "bomb.parquet"
    pq.write_table(_bomb(100, 100_000), f, compression="zstd")
    assert len(data.load_dataset(str(f)).train) == 80  # no variable: the CLI's own files, no cap
    monkeypatch.setenv(data.TEXT_BUDGET_ENV, "1000000")
    with pytest.raises(data.DataTooLarge, match="1000000 bytes"):
        data.load_dataset(str(f))  # as in a child the server started
    monkeypatch.setenv(data.TEXT_BUDGET_ENV, "lots")
    with pytest.raises(DataError, match="not a number"):
        data.load_dataset(str(f))
