"""Request and response models of the Inspect page's JSON twins (they also document /docs)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.health import HealthPublic
from entrodrop.config import MAX_TOP_K, DataFormatChoice, EntroDropConfig, TrainOn
from entrodrop.data import DataError
from entrodrop.data.formats import check_order

MAX_MESSAGES = 200  # turns in one conversation sent to Inspect

# Text whose characters are more than this share of control characters (other than whitespace)
# is a binary file pasted or sent as text, not something a language model should score.
MAX_CONTROL_SHARE = 0.1


class _Request(BaseModel):
    # A misspelt key is more likely a mistake than an extension: say so with a 422.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())


def _looks_binary(text: str) -> bool:
    """NUL bytes, or many control / replacement characters: a binary file decoded as text."""
    if "\x00" in text:
        return True
    odd = sum(1 for c in text if (c < " " and c not in "\t\n\r\f\v") or c == "\ufffd")
    return odd > MAX_CONTROL_SHARE * len(text)


def _not_empty(text: str | None) -> str | None:
    if text is None:
        return None
    if text == "":
        raise ValueError("text is empty: paste, upload or pick some text to score")
    if not text.strip():
        raise ValueError("text is only whitespace: there is nothing to score")
    try:  # JSON may carry a lone surrogate ("\ud800"): not text, and tokenizers choke on it
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text is not valid Unicode: character {exc.start} is a lone surrogate"
        ) from exc
    if _looks_binary(text):
        raise ValueError(
            "text looks like binary data (NUL bytes or control characters), not text: "
            "upload a UTF-8 text file"
        )
    return text


class MessageIn(_Request):
    """One turn of a conversation, as in a chat `messages` file."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(min_length=1)

    check_content = field_validator("content")(_not_empty)


class ExampleRef(_Request):
    """An example of a dataset by its index: a built-in name, an upload or an allowed file."""

    dataset: str = Field(min_length=1, max_length=1000)
    index: int = Field(0, ge=0, description="0-based, in file order.")
    data_format: DataFormatChoice = "auto"


def _conversation(messages: list[MessageIn] | None) -> list[MessageIn] | None:
    if messages is None:
        return None
    if not messages:
        raise ValueError("messages is empty: send at least a user and an assistant turn")
    try:
        check_order([m.model_dump() for m in messages], "messages")
    except DataError as exc:
        raise ValueError(str(exc)) from None
    return messages


class _Source(_Request):
    """Where the tokens come from: a text, a conversation, or a dataset's example."""

    text: str | None = Field(None, description="A text, scored as it is.")
    messages: list[MessageIn] | None = Field(
        None,
        max_length=MAX_MESSAGES,
        description="A conversation, rendered with the model's chat template; tokens then say "
        "which are trained (answers), their role and segment.",
    )
    example: ExampleRef | None = Field(
        None, description="An example of a dataset (an uploaded file, by index)."
    )
    train_on: TrainOn = Field(
        "answers", description="For a conversation: which tokens are trained."
    )

    check_text = field_validator("text")(_not_empty)
    check_messages = field_validator("messages")(_conversation)

    def _sources(self) -> int:
        return sum(x is not None for x in (self.text, self.messages, self.example))


class ScoreRequest(_Source):
    """Body of POST /api/score: one of `text`, `messages` or `example`."""

    model: str | None = Field(
        None, max_length=1000, description="Model spec; default: the server's model."
    )
    top_k: int = Field(5, ge=0, le=MAX_TOP_K, description="Alternatives reported per token.")

    @model_validator(mode="after")
    def _one_source(self) -> ScoreRequest:
        if self._sources() != 1:
            raise ValueError("send one of `text`, `messages` (a conversation) or `example`")
        return self


class CompareRequest(_Request):
    """Body of POST /api/compare: the same text under two checkpoints."""

    text: str
    model_a: str | None = Field(None, max_length=1000, description="Default: the server's model.")
    model_b: str = Field(min_length=1, max_length=1000, description="The checkpoint to compare.")
    top_k: int = Field(5, ge=0, le=MAX_TOP_K)

    check_text = field_validator("text")(_not_empty)


class PreviewRequest(_Source):
    """Body of POST /api/preview: a text, conversation or example (scored now), or the entropies
    of an earlier score (with `trained`, for a conversation's)."""

    entropies: list[float | None] | None = Field(
        None,
        description="Token-aligned entropies of a previous /api/score (null for the first token).",
    )
    trained: list[bool] | None = Field(
        None,
        description="With `entropies`: which tokens carry loss (a conversation's score); the "
        "policy's drop_scope decides whether only those can drop.",
    )
    model: str | None = Field(None, max_length=1000, description="Model spec, when scoring now.")
    top_k: int = Field(0, ge=0, le=MAX_TOP_K)
    policy: EntroDropConfig = Field(default_factory=EntroDropConfig)
    progress: float = Field(1.0, ge=0.0, le=1.0, description="Training progress s in [0, 1].")

    @field_validator("entropies")
    @classmethod
    def _valid_entropies(cls, values: list[float | None] | None) -> list[float | None] | None:
        if values is None:
            return None
        if not values:
            raise ValueError("entropies is empty: send at least one token")
        for i, v in enumerate(values):
            if v is not None and (not math.isfinite(v) or v < 0):
                raise ValueError(f"entropies[{i}] = {v}: entropies are finite and >= 0 (or null)")
        return values

    @model_validator(mode="after")
    def _one_source(self) -> PreviewRequest:
        if self._sources() + (self.entropies is not None) != 1:
            raise ValueError(
                "send one of `text`, `messages`, `example` or `entropies` (the token entropies "
                "of a score)"
            )
        if self.trained is not None and (
            self.entropies is None or len(self.trained) != len(self.entropies)
        ):
            raise ValueError("`trained` goes with `entropies`, one flag per token")
        return self


class GenerateRequest(_Request):
    """Body of POST /api/generate: continue a prompt (or answer it as a chat message)."""

    prompt: str = Field(description="The text to continue, or the user's message with `chat`.")
    model: str | None = Field(
        None, max_length=1000, description="Model spec; default: the server's model."
    )
    chat: bool = Field(
        False,
        description="Send the prompt as one user message through the model's chat template "
        "(the model's info says whether it has one).",
    )
    max_new_tokens: int = Field(
        64,
        ge=1,
        le=100_000,
        title="max new tokens",
        description="Tokens to generate at most (the server's cap: ENTRODROP_MAX_NEW_TOKENS).",
    )
    temperature: float = Field(
        0.0, ge=0.0, le=100.0, description="0: greedy (always the most likely token)."
    )
    top_p: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        title="top-p",
        description="Sample from the smallest set of tokens holding this much probability.",
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**63 - 1,
        description="Sampling seed: the same seed, model and prompt give the same tokens.",
    )
    top_k: int = Field(5, ge=0, le=MAX_TOP_K, description="Alternatives reported per token.")

    check_prompt = field_validator("prompt")(_not_empty)


# ---------------------------------------------------------------- responses


ELAPSED = "Seconds of scoring (the forward passes), without the queue wait or a model load."
WAITED = "Seconds the request waited in the queue behind others before the worker took it."


class _Public(BaseModel):
    # The answer is exactly the documented model: a key it does not name is a bug.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TopAlternative(_Public):
    id: int
    text: str
    prob: float | None


class TokenOut(_Public):
    index: int
    id: int
    text: str
    entropy: float | None = Field(description="Nats; null for the first token.")
    surprisal: float | None
    prob: float | None
    rank: int | None
    top: list[TopAlternative]
    trained: bool | None = Field(
        None, description="A conversation's token: carries loss in training (an answer's)."
    )
    role: str | None = Field(None, description="A conversation's token: its message's role.")
    segment: str | None = Field(
        None, description="A conversation's token: 'content' (the message) or 'template'."
    )


class ConversationOut(_Public):
    """The conversation that was rendered, and which example it is when it came from a file."""

    messages: list[dict[str, str]]
    train_on: str
    n_trained: int = Field(description="Tokens that carry loss.")
    dataset: str | None = None
    index: int | None = None
    n_examples: int | None = Field(None, description="Examples in the dataset (to page).")
    format: str | None = None


class GeneratedTokenOut(TokenOut):
    """A generated token: the scoring fields from the model's own distribution, plus the
    entropy of the distribution it was drawn from."""

    sampled_entropy: float | None = Field(
        description="Nats, after temperature and top-p (0 when greedy)."
    )


class ScoreSummary(_Public):
    mean_entropy: float | None
    mean_surprisal: float | None
    perplexity: float | None


class ScoreOut(_Public):
    """The token JSON (as `entrodrop score --json` prints it), plus the spec it was scored with."""

    model: str
    spec: str
    n_tokens: int
    tokens: list[TokenOut]
    summary: ScoreSummary
    elapsed_s: float = Field(description=ELAPSED)
    waited_s: float | None = Field(description=WAITED)
    conversation: ConversationOut | None = Field(
        None, description="Set when a conversation (or a dataset's example) was scored."
    )


class GenerateOut(_Public):
    """A generation: the tokens with their entropies, the text, and why it stopped."""

    model: str
    spec: str
    chat: bool
    prompt_tokens: int = Field(description="Tokens of the prompt (after the chat template).")
    n_tokens: int
    tokens: list[GeneratedTokenOut]
    text: str = Field(description="The generated text: the tokens' pieces joined.")
    stop_reason: Literal["eos", "max_new_tokens", "context"]
    summary: ScoreSummary
    temperature: float
    top_p: float
    seed: int
    max_new_tokens: int
    elapsed_s: float = Field(description="Seconds generating, without the queue wait or a load.")
    waited_s: float | None = Field(description=WAITED)


class PreviewToken(_Public):
    index: int
    id: int | None = None
    text: str | None = None
    entropy: float | None
    trained: bool | None = Field(None, description="Carries loss (a conversation's token).")
    role: str | None = None
    segment: str | None = None
    candidate: bool
    dropped: bool


class PreviewOut(_Public):
    model: str | None
    n_tokens: int
    progress: float
    policy: EntroDropConfig
    tau: float | None = Field(description="The low-entropy cut in nats (null: no entropies).")
    rate: float = Field(description="Scheduled drop probability r(s).")
    n_scored: int
    n_candidates: int
    n_dropped: int
    n_trained: int | None = Field(None, description="Tokens that carry loss (a conversation).")
    tokens: list[PreviewToken]
    conversation: ConversationOut | None = None
    elapsed_s: float | None = Field(None, description=ELAPSED + " Null for given entropies.")
    waited_s: float | None = Field(None, description=WAITED)


class CompareOut(_Public):
    a: ScoreOut
    b: ScoreOut
    same_tokens: bool
    note: str | None
    delta: list[float | None] | None = Field(description="entropy(b) - entropy(a) per token.")
    delta_summary: dict[str, float | None] | None
    elapsed_s: float = Field(description="Seconds scoring A and B, without the queue wait.")
    waited_s: float | None = Field(description=WAITED)


class DrawsOut(_Public):
    seed: int
    n: int
    u: list[float] = Field(description="torch.rand((1, n)) from a CPU generator seeded `seed`.")


class Checkpoint(_Public):
    """A model of a run Inspect can load: its final model, best checkpoint or a checkpoint."""

    spec: str = Field(description="run:<id> (the final model), run:<id>:best or run:<id>:<step>")
    label: str
    name: str = Field(description="what the page calls these weights: the run's name, and which")
    run_id: str
    which: Literal["final", "best", "step"] = Field(
        description="the final model, the best checkpoint, or the checkpoint of a step"
    )
    run_label: str = Field(description="the run as the picker's group names it")
    option: str = Field(description="the weights as the picker names them within their run")
    step: int | None = Field(description="the checkpoint's step; null for the final model")


class QueuePublic(_Public):
    pending: int
    limit: int


class ModelPublic(_Public):
    """The server's model: its state and, once loaded, its description."""

    spec: str
    state: str
    model_loaded: bool
    model: str | None
    error: str | None
    cached: list[str]
    queue: QueuePublic
    info: dict[str, Any] | None


class SamplePublic(_Public):
    id: str
    title: str
    text: str


class EstimateRequest(_Request):
    """Body of POST /api/estimate: how long scoring this text would take here."""

    text: str
    model: str | None = Field(None, max_length=1000, description="Default: the server's model.")

    check_text = field_validator("text")(_not_empty)


class EstimateOut(_Public):
    spec: str
    n_tokens: int | None = Field(description="Null until the model is in memory.")
    limit: int = Field(description="Tokens per text at most.")
    tokens_per_s: float | None = Field(
        description="Measured here by the last scoring; null before."
    )
    eta_s: float | None


class TextFileOut(_Public):
    """A text file's text, read as the server reads a dataset upload."""

    name: str = Field(description="The file's name as sent.")
    text: str
    n_chars: int


class LimitsPublic(_Public):
    max_score_tokens: int
    max_new_tokens: int = Field(description="Tokens one generation may ask for at most.")
    max_upload_bytes: int
    max_top_k: int
    url_text_chars: int = Field(description="Longest text a shareable link carries.")


class GenerateField(_Public):
    """A number the Generate panel asks for: its label, help, default and bounds."""

    name: str
    label: str
    help: str
    default: int | float
    minimum: int | float | None
    exclusive_minimum: bool = Field(description="The minimum itself is not allowed (top-p > 0).")
    maximum: int | float | None
    integer: bool


class ColourMode(_Public):
    id: str
    label: str
    unit: str
    fixed_max: float | None = Field(description="Top of the fixed scale (null: categorical/0..1).")


class PolicyChoice(_Public):
    """A policy field the page offers as a list (app.inspect.facts): its options, label and help."""

    name: str
    label: str
    help: str
    options: list[str]


class InspectPage(_Public):
    """The Inspect page's starting data: model state, checkpoints, samples, defaults, limits."""

    model: HealthPublic
    checkpoints: list[Checkpoint]
    samples: list[SamplePublic]
    policy_defaults: EntroDropConfig
    choices: dict[str, PolicyChoice] = Field(
        description="The policy's choices (selection, schedule, drop_mode), by field name."
    )
    limits: LimitsPublic
    generate_defaults: dict[str, Any] = Field(
        description="POST /api/generate's defaults (temperature, top_p, seed, ...)."
    )
    generate_fields: dict[str, GenerateField] = Field(
        description="The Generate panel's inputs (max_new_tokens, temperature, top_p, seed) with "
        "their bounds; max_new_tokens' maximum is this server's cap."
    )
    upload_suffixes: list[str] = Field(description="File types an instruction file may have.")
    colour_modes: list[ColourMode]
    rank_buckets: list[int] = Field(description="GLTR's rank buckets: top-10, top-100, top-1000.")
