"""Data formats: detection from keys, and every instruction format to ONE internal form.

The internal form of an instruction example is a conversation: a list of messages
``{"role": "system" | "user" | "assistant" | "tool", "content": str}``, checked here (roles in
order, no empty turn, ending with an answer). Plain text stays a string. So the same conversation
written as chat messages, ShareGPT or Alpaca becomes the same list, and renders to the same tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, get_args

from entrodrop.config import DataFormat, DataFormatChoice
from entrodrop.data.errors import DataError, utf8_size

__all__ = ["DataFormat", "DataFormatChoice"]  # the choice lists live in entrodrop.config
FORMATS: tuple[DataFormat, ...] = get_args(DataFormat)
INSTRUCTION_FORMATS: tuple[DataFormat, ...] = tuple(f for f in FORMATS if f != "text")

Message = dict[str, str]
Conversation = list[Message]
Example = str | Conversation
ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
ALPACA_JOIN = "\n"  # instruction and input become one user turn, as LLaMA-Factory joins them


@dataclass(frozen=True)
class FormatKeys:
    """A format's keys: the one that identifies it, the others it needs, and the optional ones."""

    signature: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    strict: bool = True  # other keys are errors (plain text ignores them, as it always has)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.required, *self.optional)


KEYS: dict[DataFormat, FormatKeys] = {
    "text": FormatKeys("text", ("text",), strict=False),
    "messages": FormatKeys("messages", ("messages",)),
    "sharegpt": FormatKeys("conversations", ("conversations",), ("system",)),
    "alpaca": FormatKeys("instruction", ("instruction", "output"), ("input", "system")),
    "prompt_completion": FormatKeys("prompt", ("prompt", "completion"), ("system",)),
}
FORMAT_HELP: dict[DataFormat, str] = {
    "text": "plain text: a 'text' field (or a .txt file)",
    "messages": "chat: 'messages', a list of {role, content}",
    "sharegpt": "ShareGPT: 'conversations', a list of {from: human|gpt|system, value}",
    "alpaca": "Alpaca: 'instruction', optional 'input', 'output', optional 'system'",
    "prompt_completion": "'prompt' and 'completion'",
}
_EXPECTED = "; ".join(FORMAT_HELP.values())


def identify(keys: set[str] | list[str], where: str) -> DataFormat:
    """The format whose identifying key is among `keys` (exactly one must be)."""
    present = set(keys)
    found = [f for f in FORMATS if KEYS[f].signature in present]
    if len(found) > 1:
        names = " and ".join(f"'{KEYS[f].signature}' ({f})" for f in found)
        raise DataError(f"{where}: both {names}: one format per record, set data_format")
    if not found:
        shown = ", ".join(repr(k) for k in sorted(present)) or "none"
        raise DataError(f"{where}: no known format in the keys ({shown}); expected {_EXPECTED}")
    return found[0]


def detect(keys: set[str] | list[str], forced: DataFormatChoice, where: str) -> DataFormat:
    """The format of a record (or a table) from its keys, its keys checked against it; `forced`
    (not 'auto') is checked instead. `where` names the file and place ('chat.jsonl line 3')."""
    present = set(keys)
    fmt: DataFormat = identify(present, where) if forced == "auto" else forced
    spec = KEYS[fmt]
    missing = [k for k in spec.required if k not in present]
    if missing:
        what = ", ".join(repr(k) for k in missing)
        raise DataError(f"{where}: missing {what} for the {fmt} format ({FORMAT_HELP[fmt]})")
    unknown = sorted(present - set(spec.columns))
    if spec.strict and unknown:
        allowed = ", ".join(repr(k) for k in spec.columns)
        raise DataError(
            f"{where}: unknown keys {', '.join(repr(k) for k in unknown)} for the {fmt} format "
            f"(it takes {allowed}); remove them or set data_format"
        )
    return fmt


def _string(value: Any, field: str, where: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: '{field}' must be a string, not {_kind(value)}")
    if not allow_empty and not value.strip():
        raise DataError(f"{where}: '{field}' is empty")
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "true/false", int: "a number"}
    return "null" if value is None else names.get(type(value), f"a {type(value).__name__}")


def _list(value: Any, field: str, where: str) -> list[Any]:
    if isinstance(value, str):  # a CSV cell (or a string column) holding the list as JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: '{field}' is text but not a JSON list ({exc.msg})") from exc
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: '{field}' must be a non-empty list of messages")
    return value


def _messages(items: list[Any], where: str) -> Conversation:
    out: Conversation = []
    for i, item in enumerate(items, start=1):
        at = f"{where}: message {i}"
        if not isinstance(item, dict):
            raise DataError(f"{at} must be an object with 'role' and 'content', not {_kind(item)}")
        item = {k: v for k, v in item.items() if v is not None}
        if "from" in item or "value" in item:
            raise DataError(
                f"{at} has ShareGPT keys 'from'/'value': put the list under 'conversations', or "
                "write 'role'/'content'"
            )
        unknown = sorted(set(item) - {"role", "content"})
        if unknown:
            raise DataError(
                f"{at}: unknown keys {', '.join(map(repr, unknown))} (takes role, content)"
            )
        role = item.get("role")
        if role not in ROLES:
            raise DataError(f"{at}: role {role!r} is not one of {', '.join(ROLES)}")
        out.append({"role": role, "content": _content(item.get("content"), role, at)})
    return out


def _content(value: Any, role: str, at: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{at} ({role}) is empty")
    if not isinstance(value, str):
        raise DataError(f"{at} ({role}): content must be a string, not {_kind(value)}")
    return value


def _sharegpt(record: dict[str, Any], where: str) -> Conversation:
    out: Conversation = []
    if "system" in record:
        out.append({"role": "system", "content": _string(record["system"], "system", where)})
    for i, item in enumerate(_list(record["conversations"], "conversations", where), start=1):
        at = f"{where}: conversations item {i}"
        if not isinstance(item, dict):
            raise DataError(f"{at} must be an object with 'from' and 'value', not {_kind(item)}")
        item = {k: v for k, v in item.items() if v is not None}
        unknown = sorted(set(item) - {"from", "value"})
        if unknown:
            raise DataError(
                f"{at}: unknown keys {', '.join(map(repr, unknown))} (takes from, value)"
            )
        speaker = item.get("from")
        if speaker not in SHAREGPT_ROLES:
            raise DataError(f"{at}: 'from' {speaker!r} is not one of {', '.join(SHAREGPT_ROLES)}")
        role = SHAREGPT_ROLES[speaker]
        out.append({"role": role, "content": _content(item.get("value"), role, at)})
    return out


def _alpaca(record: dict[str, Any], where: str) -> Conversation:
    prompt = _string(record["instruction"], "instruction", where)
    extra = record.get("input")
    if extra is not None and _string(extra, "input", where, allow_empty=True).strip():
        prompt = prompt + ALPACA_JOIN + extra
    answer = _string(record["output"], "output", where)
    return _with_system(record, where, prompt, answer)


def _with_system(record: dict[str, Any], where: str, prompt: str, answer: str) -> Conversation:
    out: Conversation = []
    system = record.get("system")
    if system is not None and _string(system, "system", where, allow_empty=True).strip():
        out.append({"role": "system", "content": system})
    return [*out, {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def check_order(messages: Conversation, where: str) -> None:
    """Roles in an order a chat template renders: an optional system first, then user and
    assistant turns alternating (tool results after an assistant turn), ending with an answer."""
    follows = {
        "user": ("assistant",),
        "assistant": ("user", "tool"),
        "tool": ("tool", "assistant"),
        "system": ("user",),
    }
    for i, m in enumerate(messages):
        role = m["role"]
        if i == 0:
            if role not in ("system", "user"):
                raise DataError(f"{where}: roles out of order: starts with {role}, not user")
            continue
        prev = messages[i - 1]["role"]
        if role not in follows[prev]:
            raise DataError(
                f"{where}: roles out of order: {role} after {prev} (message {i + 1}); expected "
                f"{' or '.join(follows[prev])}"
            )
    if messages[-1]["role"] != "assistant":
        raise DataError(
            f"{where}: missing assistant turn: the conversation must end with an answer"
        )


def to_example(record: Any, fmt: DataFormat, where: str) -> Example:
    """A record (a dict from JSON, CSV or parquet) as text or a checked conversation."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, not {_kind(record)}")
    if fmt == "text":
        value = record.get("text")
        if not isinstance(value, str):
            raise DataError(f"{where}: expected an object with a string 'text' field")
        return value
    if fmt == "messages":
        messages = _messages(_list(record["messages"], "messages", where), where)
    elif fmt == "sharegpt":
        messages = _sharegpt(record, where)
    elif fmt == "alpaca":
        messages = _alpaca(record, where)
    else:
        prompt = _string(record["prompt"], "prompt", where)
        messages = _with_system(
            record, where, prompt, _string(record["completion"], "completion", where)
        )
    check_order(messages, where)
    return messages


def example_bytes(example: Example) -> int:
    """Decoded UTF-8 bytes an example keeps (what the text budget counts)."""
    if isinstance(example, str):
        return utf8_size(example)
    return sum(utf8_size(m["role"]) + utf8_size(m["content"]) for m in example)


def is_instruction(fmt: str) -> bool:
    return fmt in INSTRUCTION_FORMATS
