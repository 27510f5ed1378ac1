"""Generation with per-token entropy: one token at a time through the key/value cache, each with
the statistics of the distribution it came from.

Each generated token carries what scoring reports for a token (`entropy`, `surprisal`, `prob`,
`rank`, `top`), taken from the model's own next-token distribution, so they equal what
`entrodrop.score` would give for the same prompt and continuation; `sampled_entropy` is the
entropy of the distribution the token was actually drawn from, after temperature and top-p (0 when
greedy). Temperature 0 is greedy; otherwise sampling uses its own CPU generator seeded by `seed`,
so the same seed, model and prompt give the same tokens. Two checkpoints compared side by side are
two calls with the same prompt and seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from entrodrop.kvcache import cache_kwargs, new_cache, supports_cache
from entrodrop.models import LoadedModel, context_length
from entrodrop.scoring import DEFAULT_CHUNK_TOKENS, hidden_and_head, prediction_stats
from entrodrop.threads import cpu_threads

StopReason = Literal["eos", "max_new_tokens", "context"]
# Below this a temperature divides logits into infinities: use 0 (greedy) instead.
MIN_TEMPERATURE = 1e-3


class GenerationError(ValueError):
    """A prompt that cannot be generated from: empty, too long, or chat without a template."""


@dataclass
class GeneratedToken:
    """One generated token and the distribution it came from (nats)."""

    index: int  # position among the generated tokens, from 0
    id: int
    text: str  # its piece of the generated text: the pieces join to the whole text
    entropy: float  # of the model's next-token distribution (temperature 1), as scoring reports
    surprisal: float
    rank: int
    top: list[dict[str, Any]]
    sampled_entropy: float  # of the distribution it was drawn from (temperature, top-p); 0 greedy

    @property
    def prob(self) -> float:
        return math.exp(-self.surprisal)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "text": self.text,
            "entropy": _finite(self.entropy),
            "surprisal": _finite(self.surprisal),
            "prob": _finite(self.prob),
            "rank": self.rank,
            "top": self.top,
            "sampled_entropy": _finite(self.sampled_entropy),
        }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # a broken checkpoint's NaN: JSON has none


def prompt_ids(loaded: LoadedModel, prompt: str, chat: bool = False) -> list[int]:
    """The prompt's token ids: plain text as the tokenizer encodes it, or one user message through
    the tokenizer's chat template with the assistant's turn opened."""
    tok = loaded.tokenizer
    if chat:
        if not getattr(tok, "chat_template", None):
            raise GenerationError(
                f"{loaded.name} has no chat template: generate from a plain prompt instead"
            )
        messages = [{"role": "user", "content": prompt}]
        out = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = out["input_ids"] if hasattr(out, "keys") else out  # a BatchEncoding in newer versions
    else:
        ids = tok(prompt)["input_ids"]
    ids = [int(i) for i in ids]
    if not ids and tok.bos_token_id is not None:
        ids = [int(tok.bos_token_id)]
    if not ids:
        raise GenerationError("the prompt is empty: there is nothing to continue")
    return ids


def eos_ids(loaded: LoadedModel) -> set[int]:
    """Token ids that end a generation: the tokenizer's and the generation config's end tokens."""
    found: set[int] = set()
    candidates = [loaded.tokenizer.eos_token_id]
    gen_config = getattr(loaded.model, "generation_config", None)
    candidates.append(getattr(gen_config, "eos_token_id", None))
    for c in candidates:
        if isinstance(c, int):
            found.add(c)
        elif isinstance(c, list | tuple):
            found.update(int(x) for x in c)
    return found


def sampling_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution a token is drawn from: logits (V,) -> probabilities (V,) after
    temperature and top-p (transformers' own warpers); temperature 0 is greedy (one-hot)."""
    logits = logits.float()
    if temperature <= 0:
        return torch.nn.functional.one_hot(logits.argmax(), logits.shape[-1]).float()
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    no_ids = torch.LongTensor([[]])  # (1, 0): these warpers look only at the scores
    scores = warpers(no_ids, logits[None])  # (1, V)
    return torch.softmax(scores[0], dim=-1)


@dataclass
class _Detokenizer:
    """Each token's piece of the text, so that the pieces join to the decoded whole: a piece
    that ends inside a multi-byte character waits for the token that completes it."""

    tokenizer: Any
    ids: list[int] = field(default_factory=list)
    emitted: str = ""

    def piece(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""
        new, self.emitted = text[len(self.emitted) :], text
        return new


class _Stepper:
    """The model, one call at a time: ids in, the next-token logits (V,) out, cache kept."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.parts = hidden_and_head(loaded.model)
        self.forward = self.parts[0] if self.parts else loaded.model
        cache = new_cache(loaded.model) if supports_cache(loaded.model) else None
        self.kv = cache_kwargs(self.forward, cache)
        self.seen: list[int] = []  # every id so far: re-read in full when there is no cache

    def __call__(self, ids: list[int]) -> torch.Tensor:
        self.seen += ids
        step = ids if self.kv["use_cache"] else self.seen
        x = torch.tensor([step], device=self.loaded.device)  # (1, C)
        lm = self.loaded
        with torch.inference_mode(), lm.autocast(), cpu_threads(lm.device):
            out = self.forward(input_ids=x, **self.kv)
            if self.parts:
                return self.parts[1](out.last_hidden_state[0, -1:])[0].float()  # (V,)
            return out.logits[0, -1].float()  # (V,)


@dataclass
class Generation:
    """An iterator of GeneratedToken; once it ends, `stop_reason` says why."""

    loaded: LoadedModel
    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    top_k: int
    chunk_tokens: int
    prefill_progress: Callable[[int, int], None] | None
    stop_reason: StopReason | None = None

    def __iter__(self) -> Iterator[GeneratedToken]:
        step = _Stepper(self.loaded)
        logits = self._prefill(step)
        room = context_length(self.loaded.model) - len(self.prompt_ids)
        ends, text = eos_ids(self.loaded), _Detokenizer(self.loaded.tokenizer)
        generator = torch.Generator().manual_seed(self.seed)
        for index in range(min(self.max_new_tokens, room)):
            token = self._draw(logits, generator, index, text)
            yield token
            if token.id in ends:
                self.stop_reason = "eos"
                return
            if index + 1 < min(self.max_new_tokens, room):
                logits = step([token.id])
        self.stop_reason = "max_new_tokens" if self.max_new_tokens <= room else "context"

    def _prefill(self, step: _Stepper) -> torch.Tensor:
        """The prompt through the model a chunk at a time (progress and cancel between chunks)."""
        ids, total = self.prompt_ids, len(self.prompt_ids)
        if self.prefill_progress is not None:
            self.prefill_progress(0, total)
        chunk = self.chunk_tokens if step.kv["use_cache"] else total
        for c0 in range(0, total, chunk):
            logits = step(ids[c0 : c0 + chunk])
            if self.prefill_progress is not None:
                self.prefill_progress(min(total, c0 + chunk), total)
        return logits

    def _draw(
        self, logits: torch.Tensor, generator: torch.Generator, index: int, text: _Detokenizer
    ) -> GeneratedToken:
        probs = sampling_probs(logits, self.temperature, self.top_p).cpu()  # (V,)
        if not bool(torch.isfinite(probs).all()):
            raise GenerationError(
                f"{self.loaded.name} gave a next-token distribution that is not finite "
                "(a broken checkpoint?)"
            )
        token_id = (
            int(torch.multinomial(probs, 1, generator=generator))
            if self.temperature > 0
            else int(probs.argmax())
        )
        st = prediction_stats(
            logits[None], torch.tensor([token_id], device=logits.device), self.top_k
        )
        p = probs[probs > 0]
        tok = self.loaded.tokenizer
        top = [
            {"id": int(i), "text": tok.decode([int(i)]), "prob": _finite(float(q))}
            for i, q in zip(st.top_ids[0].tolist(), st.top_probs[0].tolist(), strict=True)
        ]
        return GeneratedToken(
            index=index,
            id=token_id,
            text=text.piece(token_id),
            entropy=float(st.entropy[0]),
            surprisal=float(st.surprisal[0]),
            rank=int(st.rank[0]),
            top=top,
            sampled_entropy=max(0.0, float(-(p * p.log()).sum())),
        )


def generate(
    loaded: LoadedModel,
    prompt: str,
    chat: bool = False,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    top_k: int = 5,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    prefill_progress: Callable[[int, int], None] | None = None,
) -> Generation:
    """Continue `prompt` (or answer it as a chat message, `chat=True`) token by token.

    Iterate the result for GeneratedToken objects as they are made; it stops at an end-of-text
    token, after `max_new_tokens`, or at the model's context length (`stop_reason`). Temperature 0
    is greedy; `top_p` < 1 samples from the smallest set of tokens holding that much probability.
    ``prefill_progress(done, total)`` follows the prompt's pass (it may raise to stop there); the
    caller may stop between tokens by no longer iterating.
    """
    if max_new_tokens < 1:
        raise GenerationError("max_new_tokens must be at least 1")
    if not math.isfinite(temperature) or not (temperature == 0 or temperature >= MIN_TEMPERATURE):
        raise GenerationError(
            f"temperature must be 0 (greedy) or a finite number >= {MIN_TEMPERATURE}"
        )
    if not 0 < top_p <= 1:
        raise GenerationError("top_p must be in (0, 1]")
    ids = prompt_ids(loaded, prompt, chat)
    if len(ids) >= context_length(loaded.model):
        raise GenerationError(
            f"the prompt has {len(ids)} tokens: no room left in the model's context of "
            f"{context_length(loaded.model)}"
        )
    return Generation(
        loaded, ids, max_new_tokens, temperature, top_p, seed, top_k, chunk_tokens, prefill_progress
    )
