"""Conversations to training examples: rendered, cut to seq_len (or left out), and counted.

The counts are the `data` object that `entrodrop data --json` prints and a run's summary.json
holds: {"format", "examples", "tokens", "trained_tokens", "truncated", ...}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from entrodrop.config import TrainOn, Truncation
from entrodrop.data.blocks import tokenize_texts
from entrodrop.data.chat import Rendered, render_conversation
from entrodrop.data.errors import DataError
from entrodrop.data.files import UserData
from entrodrop.data.formats import Conversation


@dataclass
class TokenizedExamples:
    """Examples as token ids with their trained mask, at most seq_len tokens each."""

    ids: list[list[int]] = field(default_factory=list)
    trained: list[list[bool]] = field(default_factory=list)
    source: list[int] = field(default_factory=list)  # the conversation each example came from
    n_examples: int = 0  # conversations in (kept or not)
    truncated: int = 0  # longer than seq_len: cut (truncate) or left out (drop)
    dropped: int = 0  # left out: too long under 'drop', or no trained token left after the cut
    rendered: list[Rendered] = field(default_factory=list)  # kept examples, with_roles only

    @property
    def tokens(self) -> int:
        return sum(len(i) for i in self.ids)

    @property
    def trained_tokens(self) -> int:
        return sum(sum(m) for m in self.trained)


def cut(rendered: Rendered, seq_len: int) -> Rendered:
    """The first seq_len tokens of a rendered conversation."""
    if len(rendered.ids) <= seq_len:
        return rendered
    offsets = rendered.offsets
    return Rendered(
        rendered.text if offsets is None else rendered.text[: offsets[seq_len - 1][1]],
        rendered.ids[:seq_len],
        rendered.trained[:seq_len],
        None if offsets is None else offsets[:seq_len],
        None if rendered.roles is None else rendered.roles[:seq_len],
        None if rendered.segments is None else rendered.segments[:seq_len],
    )


def tokenize_conversations(
    conversations: Sequence[Conversation],
    tokenizer: Any,
    seq_len: int,
    train_on: TrainOn = "answers",
    truncation: Truncation = "truncate",
    model_name: str = "the model",
    with_roles: bool = False,
) -> TokenizedExamples:
    """Render every conversation; keep those with a trained token within seq_len tokens.

    `with_roles`: also keep each kept example's rendering, with its tokens' roles (previews)."""
    out = TokenizedExamples(n_examples=len(conversations))
    for i, messages in enumerate(conversations):
        rendered = render_conversation(tokenizer, messages, train_on, model_name, None, with_roles)
        if len(rendered.ids) > seq_len:
            out.truncated += 1
            if truncation == "drop":
                out.dropped += 1
                continue
            rendered = cut(rendered, seq_len)
        if not any(rendered.trained):
            out.dropped += 1  # the answer starts past seq_len: nothing of it would be trained
            continue
        out.ids.append(rendered.ids)
        out.trained.append(rendered.trained)
        out.source.append(i)
        if with_roles:
            out.rendered.append(rendered)
    return out


def check_trainable(examples: TokenizedExamples, name: str, seq_len: int) -> None:
    """A DataError when no example keeps a trained token (the run would train on nothing)."""
    if examples.ids:
        return
    raise DataError(
        f"{name}: no example has a trained token within seq_len {seq_len} ({examples.truncated} "
        f"of {examples.n_examples} examples are longer than that); raise seq_len"
    )


def data_report(
    data: UserData,
    tokenizer: Any,
    seq_len: int,
    train_on: TrainOn = "answers",
    truncation: Truncation = "truncate",
    model_name: str = "the model",
) -> dict[str, Any]:
    """What a data file gives a model: format, examples, tokens after the template, trained tokens,
    examples truncated (or dropped). Plain text: every token trains, nothing is truncated."""
    report: dict[str, Any] = {"format": data.format, "examples": len(data.examples)}
    if not data.is_instruction:
        tokens = len(tokenize_texts(data.texts(), tokenizer))
        return report | {
            "tokens": tokens,
            "trained_tokens": tokens,
            "truncated": 0,
            "dropped": 0,
            "seq_len": seq_len,
            "train_on": "all",
        }
    examples = tokenize_conversations(
        data.conversations(), tokenizer, seq_len, train_on, truncation, model_name
    )
    check_trainable(examples, data.name, seq_len)
    return report | {
        "tokens": examples.tokens,
        "trained_tokens": examples.trained_tokens,
        "truncated": examples.truncated,
        "dropped": examples.dropped,
        "seq_len": seq_len,
        "train_on": train_on,
    }


def example_tokens(
    conversations: Sequence[Conversation],
    tokenizer: Any,
    seq_len: int,
    train_on: TrainOn = "answers",
    model_name: str = "the model",
) -> list[dict[str, Any]]:
    """The first conversations as the pages draw them: per token its id, text, whether it is
    trained, its message's role and segment ('content' or 'template'), cut at seq_len."""
    out = []
    for i, messages in enumerate(conversations):
        full = render_conversation(tokenizer, messages, train_on, model_name, with_roles=True)
        rendered = cut(full, seq_len)
        out.append(
            {
                "index": i,
                "messages": messages,
                "n_tokens": len(full.ids),
                "truncated": len(full.ids) > seq_len,
                "tokens": token_rows(tokenizer, rendered),
            }
        )
    return out


def token_rows(tokenizer: Any, rendered: Rendered) -> list[dict[str, Any]]:
    """One dict per token: index, id, text (its piece of the rendered text), trained, role, segment."""
    from entrodrop.scoring import token_texts

    texts = token_texts(tokenizer, rendered.text, rendered.ids, rendered.offsets)
    n = len(rendered.ids)
    roles = rendered.roles or [None] * n
    segments = rendered.segments or ["template"] * n
    return [
        {
            "index": t,
            "id": rendered.ids[t],
            "text": texts[t],
            "trained": rendered.trained[t],
            "role": roles[t],
            "segment": segments[t],
        }
        for t in range(n)
    ]
