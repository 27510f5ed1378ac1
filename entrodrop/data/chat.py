"""A conversation through the model's own chat template: its tokens, and which ones are trained.

The trained (answer) tokens come from the template itself: its assistant mask where the template
marks answers with ``{% generation %}`` (transformers' ``return_assistant_tokens_mask``), else by
rendering the prefix of each turn: the answer is what the template adds between the conversation
up to the turn with the generation prompt and the conversation up to and including the answer
(so the end-of-turn token is trained, the assistant header is not).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from entrodrop.config import TrainOn
from entrodrop.data.errors import DataError
from entrodrop.data.formats import Conversation

_GENERATION = re.compile(r"{%-?\s*generation\s*-?%}")


class ChatTemplateMissing(DataError):
    """Instruction data for a model whose tokenizer has no chat template."""


@dataclass
class Rendered:
    """One conversation rendered and tokenized; every list is token-aligned."""

    text: str
    ids: list[int]
    trained: list[bool]  # token t carries loss (never t = 0: nothing predicts it)
    offsets: list[tuple[int, int]] | None  # each token's characters in `text`
    roles: list[str | None] | None = None  # the message each token belongs to (with_roles)
    segments: list[str] | None = None  # "content" (the message's own text) or "template"


def chat_template(tokenizer: Any, model_name: str, template: str | None = None) -> str:
    """The template to render with: `template`, else the tokenizer's, else a clear error."""
    try:
        found: str = tokenizer.get_chat_template(template)
    except ValueError:
        raise ChatTemplateMissing(
            f"the model {model_name} has no chat template, so instruction data cannot be "
            "rendered for it: use plain text (a .txt file or a 'text' field), or add a "
            "chat_template.jinja file (a Jinja chat template) to the model's folder"
        ) from None
    return found


def _render(tokenizer: Any, messages: Conversation, template: str, prompt: bool = False) -> str:
    if not messages:
        return ""
    text: str = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=prompt
    )
    return text


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _encode(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
    """Tokens of the rendered text as apply_chat_template makes them (no special tokens added)."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError):  # a slow tokenizer: no offsets
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]), None


class _Spans:
    """Character spans of the text to token indices: by offsets, else by tokenizing prefixes."""

    def __init__(self, tokenizer: Any, text: str, offsets: list[tuple[int, int]] | None) -> None:
        self.tokenizer, self.text, self.offsets = tokenizer, text, offsets

    def tokens(self, start: int, end: int, n: int) -> range | list[int]:
        """Indices of the tokens that overlap characters [start, end)."""
        if self.offsets is not None:
            return [t for t, (a, b) in enumerate(self.offsets) if a < end and b > start]
        first = len(_encode(self.tokenizer, self.text[:start])[0])
        last = len(_encode(self.tokenizer, self.text[:end])[0])
        return range(first, min(last, n))


def _prefix_error(model_name: str) -> DataError:
    return DataError(
        f"the chat template of {model_name} renders earlier turns differently once later turns "
        "follow, so the answer tokens cannot be found by rendering prefixes: use a template "
        "that marks answers with {% generation %} (a chat_template.jinja in the model's folder)"
    )


def _answer_spans(
    tokenizer: Any, messages: Conversation, template: str, text: str, model_name: str
) -> list[tuple[int, int]]:
    """Characters of each assistant turn that carry loss: its content and end-of-turn marker."""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        upto = _render(tokenizer, messages[: i + 1], template)
        if not text.startswith(upto):
            raise _prefix_error(model_name)
        start = _common_prefix(_render(tokenizer, messages[:i], template, prompt=True), upto)
        spans.append((start, len(upto)))
    return spans


def _roles(
    tokenizer: Any, messages: Conversation, template: str, rendered: Rendered
) -> tuple[list[str | None], list[str]]:
    """Each token's message role and whether it is the message's own text or the template's."""
    n = len(rendered.ids)
    roles: list[str | None] = [None] * n
    segments = ["template"] * n
    spans = _Spans(tokenizer, rendered.text, rendered.offsets)
    before = ""
    for k, message in enumerate(messages):
        upto = _render(tokenizer, messages[: k + 1], template)
        if not (rendered.text.startswith(upto) and upto.startswith(before)):
            return roles, segments  # not prefix-stable: the trained mask says what matters
        for t in spans.tokens(len(before), len(upto), n):
            roles[t] = message["role"]
        at = upto.find(message["content"], len(before))
        if at >= 0:
            for t in spans.tokens(at, at + len(message["content"]), n):
                segments[t] = "content"
        before = upto
    return roles, segments


def render_conversation(
    tokenizer: Any,
    messages: Conversation,
    train_on: TrainOn = "answers",
    model_name: str = "the model",
    template: str | None = None,
    with_roles: bool = False,
) -> Rendered:
    """Render a conversation with the chat template (`template` or the tokenizer's) and mark the
    tokens that carry loss: the assistant turns ('answers') or every token after the first
    ('all'). `with_roles` also says which message each token came from (for previews)."""
    jinja = chat_template(tokenizer, model_name, template)
    text = _render(tokenizer, messages, jinja)
    ids, offsets = _encode(tokenizer, text)
    if train_on == "all":
        trained = [t > 0 for t in range(len(ids))]
    elif _GENERATION.search(jinja):
        enc = tokenizer.apply_chat_template(
            messages, chat_template=jinja, return_dict=True, return_assistant_tokens_mask=True
        )
        if list(enc["input_ids"]) != ids:
            raise DataError(f"the chat template of {model_name} tokenizes inconsistently")
        trained = [bool(m) and t > 0 for t, m in enumerate(enc["assistant_masks"])]
    else:
        trained = [False] * len(ids)
        spans = _Spans(tokenizer, text, offsets)
        for start, end in _answer_spans(tokenizer, messages, jinja, text, model_name):
            for t in spans.tokens(start, end, len(ids)):
                trained[t] = t > 0
    rendered = Rendered(text, ids, trained, offsets)
    if with_roles:
        rendered.roles, rendered.segments = _roles(tokenizer, messages, jinja, rendered)
    return rendered
