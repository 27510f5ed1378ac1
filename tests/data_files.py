"""Writing the same examples as .jsonl, .json, .csv or .parquet files, in any data format."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# One conversation in every instruction format: the same system prompt, question and answer.
SYSTEM = "Answer in one line."
QUESTION = "What does len() return?"
ANSWER = "The number of items in a container."
CONVERSATION = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": QUESTION},
    {"role": "assistant", "content": ANSWER},
]
RECORDS: dict[str, dict[str, Any]] = {
    "messages": {"messages": CONVERSATION},
    "sharegpt": {
        "conversations": [
            {"from": "system", "value": SYSTEM},
            {"from": "human", "value": QUESTION},
            {"from": "gpt", "value": ANSWER},
        ]
    },
    "alpaca": {"instruction": QUESTION, "input": "", "output": ANSWER, "system": SYSTEM},
    "prompt_completion": {"prompt": QUESTION, "completion": ANSWER, "system": SYSTEM},
    "text": {"text": f"{QUESTION} {ANSWER}"},
}
INSTRUCTION = ("messages", "sharegpt", "alpaca", "prompt_completion")


def variant(fmt: str, i: int) -> dict[str, Any]:
    """The format's record with the i-th question and answer (so examples differ)."""
    text = json.dumps(RECORDS[fmt])
    text = text.replace("len()", f"len{i}()").replace("container.", f"container {i}.")
    record: dict[str, Any] = json.loads(text)
    return record


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write records in the file type its suffix names (CSV: nested values as JSON text)."""
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    elif suffix == ".csv":
        columns = list(dict.fromkeys(k for r in records for k in r))
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for r in records:
                writer.writerow(
                    [
                        json.dumps(v) if isinstance(v, list) else v
                        for v in (r.get(c) for c in columns)
                    ]
                )
    elif suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        raise ValueError(suffix)
    return path
