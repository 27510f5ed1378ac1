"""Data formats: detection per file type, one internal form, bad input named by file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_files import CONVERSATION, INSTRUCTION, RECORDS, variant, write

from entrodrop import data
from entrodrop.data import DataError, DataTooLarge, parse_data_file, read_data_file

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("fmt", [*INSTRUCTION, "text"])
def test_each_format_is_detected_in_each_file_type(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = write(tmp_path / f"data{suffix}", [variant(fmt, i) for i in range(3)])
    found = read_data_file(path)
    assert found.format == fmt and len(found.examples) == 3
    if fmt == "text":
        assert found.examples[0] == "What does len0() return? The number of items in a container 0."
    else:
        first = found.examples[0]
        assert first[-1] == {
            "role": "assistant",
            "content": "The number of items in a container 0.",
        }
    assert read_data_file(path, data_format=fmt).examples == found.examples  # forced: the same


def test_the_three_instruction_formats_become_one_conversation(tmp_path: Path) -> None:
    for fmt in INSTRUCTION:
        path = write(tmp_path / f"{fmt}.jsonl", [RECORDS[fmt]])
        assert read_data_file(path).examples == [CONVERSATION], fmt
    alpaca_input = {"instruction": "Sum these.", "input": "1 2", "output": "3"}
    path = write(tmp_path / "input.jsonl", [alpaca_input])
    user = read_data_file(path).conversations()[0][0]
    assert user == {"role": "user", "content": "Sum these.\n1 2"}  # as LLaMA-Factory joins them


def test_tables_read_only_the_format_columns(tmp_path: Path) -> None:
    rows = [{**variant("alpaca", i), "id": i, "source": "x"} for i in range(2)]
    for suffix in (".csv", ".parquet"):
        found = read_data_file(write(tmp_path / f"t{suffix}", rows))
        assert found.format == "alpaca" and len(found.examples) == 2


def test_nested_messages_in_parquet_drop_null_struct_fields(tmp_path: Path) -> None:
    # A struct column's schema is the union of its rows' keys: missing ones read back as null.
    rows = [{"messages": CONVERSATION}, {"messages": [{**m, "name": None} for m in CONVERSATION]}]
    path = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert read_data_file(path).examples == [CONVERSATION, CONVERSATION]


BAD = [
    (
        "mixed.jsonl",
        json.dumps(RECORDS["messages"]) + "\n" + json.dumps(RECORDS["alpaca"]) + "\n",
        "mixed.jsonl line 2: mixed formats: this record is alpaca, but line 1 is messages",
    ),
    (
        "unknown.jsonl",
        json.dumps({**RECORDS["messages"], "category": "qa"}) + "\n",
        "unknown.jsonl line 1: unknown keys 'category' for the messages format",
    ),
    (
        "keys.jsonl",
        json.dumps({"messages": [{"role": "user", "content": "q", "weight": 1}]}) + "\n",
        "keys.jsonl line 1: message 1: unknown keys 'weight'",
    ),
    (
        "empty.jsonl",
        json.dumps({"messages": [*CONVERSATION[:2], {"role": "assistant", "content": " "}]}),
        "empty.jsonl line 1: message 3 (assistant) is empty",
    ),
    (
        "missing.jsonl",
        json.dumps({"messages": CONVERSATION[:2]}),
        "missing.jsonl line 1: missing assistant turn",
    ),
    (
        "order.jsonl",
        json.dumps({"messages": [CONVERSATION[1], CONVERSATION[1], CONVERSATION[2]]}),
        "order.jsonl line 1: roles out of order: user after user (message 2)",
    ),
    (
        "system.jsonl",
        json.dumps({"messages": [CONVERSATION[1], CONVERSATION[0], CONVERSATION[2]]}),
        "system.jsonl line 1: roles out of order: system after user",
    ),
    (
        "type.jsonl",
        "\n" + json.dumps({"messages": [CONVERSATION[1], {"role": "assistant", "content": 3}]}),
        "type.jsonl line 2: message 2 (assistant): content must be a string, not a number",
    ),
    (
        "alpaca.jsonl",
        json.dumps({"instruction": "q", "output": ["a"]}),
        "alpaca.jsonl line 1: 'output' must be a string, not a list",
    ),
    (
        "sharegpt.jsonl",
        json.dumps({"conversations": [{"from": "user", "value": "q"}]}),
        "sharegpt.jsonl line 1: conversations item 1: 'from' 'user' is not one of human, gpt",
    ),
    (
        "array.jsonl",
        json.dumps([RECORDS["messages"]]),
        "array.jsonl line 1 starts a JSON array",
    ),
    (
        "object.json",
        json.dumps(RECORDS["messages"]),
        "object.json holds a JSON object, not an array of them",
    ),
    (
        "broken.json",
        "[\n" + json.dumps(RECORDS["messages"]) + ',\n{"messages": [}\n]',
        "broken.json item 2 (line 3): not valid JSON",
    ),
    (
        "nocolumn.csv",
        "question,answer\nq,a\n",
        "nocolumn.csv has no usable column (columns: question, answer)",
    ),
    (
        "short.csv",
        "instruction,output\nq,a\nq2,\n",
        "short.csv line 3: missing 'output' for the alpaca format",
    ),
    (
        "both.jsonl",
        json.dumps({"text": "t", "prompt": "p", "completion": "c"}),
        "both.jsonl line 1: both 'text' (text) and 'prompt' (prompt_completion)",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    with pytest.raises(DataError) as err:
        parse_data_file(content.encode(), name)
    assert message in str(err.value)
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="^" + re.escape(message.split(":")[0])):
        read_data_file(path)  # the same from disk


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        (
            "bad.jsonl",
            b'{"text": "ok"}\n{"text": "caf\xe9"}\n',
            "bad.jsonl is not UTF-8 text (line 2",
        ),
        ("bad.csv", b"text\nok\ncaf\xe9\n", "bad.csv is not UTF-8 text (line 3"),
        (
            "bad.json",
            b'[{"text": "ok"},\n {"text": "caf\xe9"}]',
            "bad.json is not UTF-8 text (line 2",
        ),
    ],
)
def test_non_utf8_bytes_name_the_line(name: str, raw: bytes, message: str) -> None:
    with pytest.raises(DataError) as err:
        parse_data_file(raw, name)
    assert message in str(err.value)


def test_a_txt_file_cannot_be_forced_to_an_instruction_format(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("just text")
    with pytest.raises(DataError, match="a .txt file is plain text; data_format 'alpaca'"):
        read_data_file(path, data_format="alpaca")
    with pytest.raises(DataError, match="python-reference is text data"):
        data.all_examples("python-reference", data_format="messages")


def test_forcing_a_format_checks_every_record_against_it(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", [RECORDS["alpaca"]])
    with pytest.raises(DataError, match="a.jsonl line 1: missing 'messages' for the messages"):
        read_data_file(path, data_format="messages")


# ---------------------------------------------------------------- the decoded-size budget


def test_json_array_and_csv_count_decoded_bytes(tmp_path: Path) -> None:
    records = [variant("alpaca", i) for i in range(20)]
    roles = len("system") + len("user") + len("assistant")  # the internal form's strings
    kept = sum(len(r["instruction"]) + len(r["output"]) + len(r["system"]) + roles for r in records)
    for suffix in (".json", ".csv", ".jsonl", ".parquet"):
        path = write(tmp_path / f"b{suffix}", records)
        found = read_data_file(path, max_text_bytes=kept)
        assert len(found.examples) == 20
        with pytest.raises(DataTooLarge, match=f"more than {kept - 1} bytes"):
            read_data_file(path, max_text_bytes=kept - 1)


def test_one_json_item_over_the_budget_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"text": "z" * 3_000_000}]))
    with pytest.raises(DataTooLarge):
        read_data_file(path, max_text_bytes=1000)


def test_a_nested_parquet_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    import psutil

    # One 1 MB answer referenced by every row through the dictionary: tiny on disk.
    answer = pa.DictionaryArray.from_arrays(
        pa.array([0] * 500, pa.int32()), pa.array(["a" * 1_000_000])
    )
    role = pa.array(["assistant"] * 500)
    user = pa.StructArray.from_arrays(
        [pa.array(["user"] * 500), pa.array(["q"] * 500)], names=["role", "content"]
    )
    reply = pa.StructArray.from_arrays(
        [role, answer.dictionary_decode()], names=["role", "content"]
    )
    messages = pa.ListArray.from_arrays(
        pa.array(list(range(0, 1001, 2)), pa.int32()),
        pa.concat_arrays([user, reply]).take(
            pa.array([i // 2 + (500 if i % 2 else 0) for i in range(1000)])
        ),
    )
    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"messages": messages}), path, compression="zstd")
    assert path.stat().st_size < 200_000
    before = psutil.Process().memory_info().rss
    with pytest.raises(DataTooLarge, match="more than 5000000 bytes"):
        read_data_file(path, max_text_bytes=5_000_000)
    assert psutil.Process().memory_info().rss - before < 300_000_000


# ---------------------------------------------------------------- splits and the built-in set


def test_conversations_split_every_fifth_and_refuse_one(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", [variant("messages", i) for i in range(11)])
    ds = data.load_dataset(str(path))
    assert isinstance(ds, data.ChatData) and ds.format == "messages"
    assert len(ds.train) == 9 and len(ds.heldout) == 2
    assert ds.split.startswith("c.jsonl: 11 examples, 2 held out (every 5th): #5 'What does len4()")
    one = write(tmp_path / "one.jsonl", [variant("messages", 0)])
    with pytest.raises(DataError, match="one.jsonl has 1 example: at least 2 are needed"):
        data.load_dataset(str(one))
    text = write(tmp_path / "t.jsonl", [variant("text", i) for i in range(3)])
    with pytest.raises(DataError, match="t.jsonl is plain text but c.jsonl is instruction data"):
        data.load_dataset(str(path), heldout=str(text))


def test_python_qa_is_deterministic_split_and_offline() -> None:
    ds = data.load_dataset("python-qa")
    assert isinstance(ds, data.ChatData)
    n = len(ds.train) + len(ds.heldout)
    assert 300 <= n <= 500 and len(ds.heldout) == n // 5
    questions = {c[1]["content"] for c in ds.train}
    assert not questions & {c[1]["content"] for c in ds.heldout}
    assert data.python_qa_examples() == data.python_qa_examples()
    assert all(" at 0x" not in c[2]["content"] for c in data.python_qa_examples())
    assert [m["role"] for m in ds.train[0]] == ["system", "user", "assistant"]
