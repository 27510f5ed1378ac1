"""Per-token entropy, surprisal, rank and top-k alternatives for any causal LM, batched and chunked.

The causal shift is written down once, here: the logits at position t-1 score token t, so every
per-token quantity is *token-aligned* (index t describes token t) and token 0 has none (NaN/None).
Logits are never materialised for a whole sequence: hidden states go through the LM head a chunk
of positions at a time, so at most one chunk of vocabulary-wide float32 values exists at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import torch

from entrodrop.config import TrainOn
from entrodrop.kvcache import cache_kwargs, new_cache, supports_cache
from entrodrop.models import LoadedModel, context_length
from entrodrop.threads import cpu_threads

# Positions per LM-head chunk: CHUNK_ELEMENTS / vocab, i.e. ~64 MB of float32 logits at a time.
# Measured on an idle AVX2 machine (docs/benchmarks.md): 251 tok/s with 64 MB chunks vs 204 with
# 8 MB (fewer, larger head matmuls win), at a bounded peak memory.
CHUNK_ELEMENTS = 1 << 24
DEFAULT_MAX_WINDOW = 1024  # window for texts too long for one pass; attention grows with it
# A text up to this many tokens (and the model's context) is scored in one pass: cheaper than
# 1,024-token windows overlapping by a quarter up to ~4,000 tokens on the default model (bench/).
SINGLE_PASS_TOKENS = 4096
DEFAULT_BATCH_TOKENS = 4096
# Positions per forward call (summed over a batch's rows): a text goes through the model this
# many tokens at a time with the key/value cache, so progress moves and a cancel is honoured
# between chunks. bench/bench_chunking.py on the default model (2-core CPU, docs/benchmarks.md):
# 128-token chunks cost ~1.1x one pass and took 0.8-2 s each under heavy load (a few times less
# idle); 64 cost ~1.8-2x; 256 and more leave a cancel waiting several seconds there.
DEFAULT_CHUNK_TOKENS = 128


def predicted_tokens(token_aligned: torch.Tensor) -> torch.Tensor:
    """The tokens that have a prediction, i.e. all but the first: (..., T) -> (..., T-1)."""
    return token_aligned[..., 1:]


def causal_shift(outputs: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """THE causal shift: the output at position t-1 predicts token t.

    outputs (..., T, D) (logits, or hidden states before the LM head), tokens (..., T) ->
    predictions (..., T-1, D) and the tokens they predict (..., T-1), row j predicting token j+1.
    """
    return outputs[..., :-1, :], predicted_tokens(tokens)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) over the last dim, computed in float32. (..., V) -> (...)."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def token_entropies(logits: torch.Tensor) -> torch.Tensor:
    """Token-aligned entropies from full logits (B, T, V) -> (B, T); column 0 is NaN.

    Chunked over positions so only one chunk is upcast to float32 at a time.
    """
    b, t, v = logits.shape
    out = torch.full((b, t), math.nan, dtype=torch.float32, device=logits.device)
    predictions, _ = causal_shift(logits.detach(), out)  # (B, T-1, V)
    targets = predicted_tokens(out)  # (B, T-1) view: token t gets the entropy of prediction t-1
    step = max(1, CHUNK_ELEMENTS // max(1, v * b))
    with torch.no_grad():
        for start in range(0, t - 1, step):
            stop = min(t - 1, start + step)
            targets[:, start:stop] = entropy_from_logits(predictions[:, start:stop])
    return out


@dataclass
class PredictionStats:
    """Per-target statistics for one chunk of positions."""

    entropy: torch.Tensor  # (N,)
    surprisal: torch.Tensor  # (N,)
    rank: torch.Tensor  # (N,)
    top_ids: torch.Tensor  # (N, k)
    top_probs: torch.Tensor  # (N, k)


def prediction_stats(logits: torch.Tensor, targets: torch.Tensor, top_k: int) -> PredictionStats:
    """Stats of N predictive distributions from their logits (N, V), in float32.

    Written to touch the (N, V) block as few times as possible (it dominates the cost after the
    model itself): one shifted copy, one exp, and a batched dot product for sum(p * logit).
    """
    y = logits.float()  # (N, V)
    y = y - y.amax(dim=-1, keepdim=True)  # shift for stability; the max logit becomes 0
    e = y.exp()  # (N, V) unnormalised probabilities
    z = e.sum(dim=-1)  # (N,)
    log_z = z.log()
    # H = log Z - sum_v p_v y_v  with p = e / Z  (y is shifted, so no large-number cancellation)
    entropy = log_z - torch.bmm(e.unsqueeze(1), y.unsqueeze(2)).view(-1) / z
    target_y = y.gather(-1, targets[:, None]).squeeze(-1)  # (N,)
    surprisal = log_z - target_y
    rank = torch.gt(y, target_y[:, None]).sum(dim=-1, dtype=torch.int32) + 1
    k = min(top_k, y.shape[-1])
    top_y, top_ids = y.topk(k, dim=-1) if k > 0 else (y[:, :0], targets[:, None][:, :0])
    top_probs = (top_y - log_z[:, None]).exp()
    return PredictionStats(entropy, surprisal, rank.long(), top_ids, top_probs)


def hidden_and_head(model: Any) -> tuple[Any, Any] | None:
    """The decoder stack and LM head, so logits can be computed a chunk at a time."""
    if getattr(model.config, "final_logit_softcapping", None):
        return None  # the head is not a plain linear map: use full logits
    get_decoder = getattr(model, "get_decoder", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    decoder = get_decoder() if callable(get_decoder) else None
    if decoder is None or head is None or decoder is model:
        return None
    return decoder, head


@dataclass
class _Window:
    text_index: int
    start: int  # first token of the window in the text
    ids: list[int]
    first_target: int  # first token (text index) this window is responsible for


def _windows(texts_ids: Sequence[list[int]], window: int, single_pass: int) -> list[_Window]:
    """Cut texts into windows: a text of at most `single_pass` tokens is one window; a longer one
    is cut into `window`-token windows, each re-reading the last quarter of the one before as
    context, so every token after the first is scored with >= window/4 tokens of context (or all
    of them) while the extra work stays at 4/3 of a single pass."""
    overlap = max(1, window // 4)
    out: list[_Window] = []
    for i, ids in enumerate(texts_ids):
        if len(ids) <= max(window, single_pass):
            out.append(_Window(i, 0, ids, 1))
            continue
        start, scored_upto = 0, 1
        while True:
            end = min(start + window, len(ids))
            out.append(_Window(i, start, ids[start:end], scored_upto))
            scored_upto = end
            if end == len(ids):
                break
            start = end - overlap
    return out


def _batches(windows: list[_Window], batch_tokens: int) -> Iterator[list[_Window]]:
    order = sorted(windows, key=lambda w: len(w.ids))
    batch: list[_Window] = []
    for w in order:
        if batch and (len(batch) + 1) * len(w.ids) > batch_tokens:
            yield batch
            batch = []
        batch.append(w)
    if batch:
        yield batch


@dataclass
class TokenArrays:
    """Token-aligned arrays for one text (NaN / -1 where a token has no prediction)."""

    ids: list[int]
    entropy: torch.Tensor  # (T,)
    surprisal: torch.Tensor  # (T,)
    rank: torch.Tensor  # (T,)
    top_ids: torch.Tensor  # (T, k)
    top_probs: torch.Tensor  # (T, k)

    @classmethod
    def empty(cls, ids: Sequence[int], top_k: int) -> TokenArrays:
        n = len(ids)
        return cls(
            ids=list(ids),
            entropy=torch.full((n,), math.nan),
            surprisal=torch.full((n,), math.nan),
            rank=torch.full((n,), -1, dtype=torch.long),
            top_ids=torch.full((n, top_k), -1, dtype=torch.long),
            top_probs=torch.zeros((n, top_k)),
        )

    def scatter(self, first_token: int, stats: PredictionStats) -> None:
        """Write the stats of N predictions to tokens [first_token, first_token + N)."""
        a, b = first_token, first_token + stats.entropy.shape[0]
        self.entropy[a:b] = stats.entropy.cpu()
        self.surprisal[a:b] = stats.surprisal.cpu()
        self.rank[a:b] = stats.rank.cpu()
        k = stats.top_ids.shape[1]
        self.top_ids[a:b, :k] = stats.top_ids.cpu()
        self.top_probs[a:b, :k] = stats.top_probs.cpu()


class _Forward:
    """The forward step: a batch of windows -> per-position outputs a chunk of positions at a
    time (reusing the key/value cache), and outputs -> stats."""

    def __init__(self, loaded: LoadedModel, top_k: int, chunk_tokens: int | None) -> None:
        self.model, self.device, self.top_k = loaded.model, loaded.device, top_k
        self.parts = hidden_and_head(loaded.model)
        vocab = int(loaded.model.get_output_embeddings().weight.shape[0]) if self.parts else 1
        self.chunk = max(1, CHUNK_ELEMENTS // vocab)  # predictions per LM-head chunk
        self.pad = loaded.tokenizer.pad_token_id or 0
        self.chunk_tokens = chunk_tokens if supports_cache(loaded.model) else None

    def _inputs(self, batch: list[_Window]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids (B, W) and their attention mask (B, W), on the model's device."""
        width = max(len(w.ids) for w in batch)
        ids = torch.full((len(batch), width), self.pad, dtype=torch.long)  # (B, W)
        mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, W)
        for row, w in enumerate(batch):
            ids[row, : len(w.ids)] = torch.tensor(w.ids)
            mask[row, : len(w.ids)] = 1
        return ids.to(self.device), mask.to(self.device)

    def run(self, batch: list[_Window]) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """(first position, ids (B, W), outputs (B, C, D)) for each chunk of C positions.

        Outputs are hidden states before the LM head, or full logits where the head cannot be
        applied a chunk at a time. Later chunks attend to the earlier ones through the key/value
        cache, so the outputs equal one pass's; right padding never reaches a real token (it
        comes after them, and attention is causal).
        """
        ids, mask = self._inputs(batch)
        width = ids.shape[1]
        step = width if self.chunk_tokens is None else max(1, self.chunk_tokens // len(batch))
        forward = self.parts[0] if self.parts else self.model
        kv = cache_kwargs(forward, new_cache(self.model) if step < width else None)
        for c0 in range(0, width, step):
            c1 = min(width, c0 + step)
            # The mask covers the cached positions and this chunk's.
            out = forward(input_ids=ids[:, c0:c1], attention_mask=mask[:, :c1], **kv)
            yield c0, ids, out.last_hidden_state if self.parts else out.logits

    def stats(
        self, outputs: torch.Tensor, ids: torch.Tensor, first: int, lo: int, hi: int
    ) -> Iterator[tuple[int, PredictionStats]]:
        """Stats of the window tokens in [lo, hi) that one row's outputs predict, a chunk at a time.

        outputs (C, D) are the row's positions [first, first + C), ids (W,) its whole window.
        THE causal shift again (see causal_shift): the output at position p predicts token p+1,
        so a chunk's last output predicts the next chunk's first token. Yields (first window
        token described, stats).
        """
        p0, p1 = max(first, lo - 1), min(first + outputs.shape[0], hi - 1)
        for c0 in range(p0, p1, self.chunk):
            c1 = min(p1, c0 + self.chunk)
            logits = outputs[c0 - first : c1 - first]  # positions [c0, c1)
            if self.parts:
                logits = self.parts[1](logits)  # (N, V)
            yield c0 + 1, prediction_stats(logits, ids[c0 + 1 : c1 + 1], self.top_k)


def score_ids(
    loaded: LoadedModel,
    texts_ids: Sequence[list[int]],
    top_k: int = 5,
    max_window: int | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    progress: Callable[[int, int], None] | None = None,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
) -> list[TokenArrays]:
    """Score token-id sequences; the workhorse behind :func:`score` and the run preview.

    A text that fits one pass (SINGLE_PASS_TOKENS and the model's context) is one window; longer
    ones are cut into overlapping windows. ``max_window`` caps both. Each batch of windows goes
    through the model ``chunk_tokens`` positions at a time with the key/value cache, which gives
    the same result as one pass (None: one pass). ``progress(done, total)`` (tokens scored) is
    called before the first chunk and after each one; it may raise to stop scoring there (the
    dashboard's cancel), so a stop waits at most one chunk.
    """
    context = context_length(loaded.model)
    window = min(context, max_window or DEFAULT_MAX_WINDOW)
    single_pass = min(context, max_window or SINGLE_PASS_TOKENS)
    results = [TokenArrays.empty(ids, top_k) for ids in texts_ids]
    step = _Forward(loaded, top_k, chunk_tokens)
    windows = [w for w in _windows(texts_ids, window, single_pass) if len(w.ids) > 1]
    done, total = 0, sum(len(w.ids) - (w.first_target - w.start) for w in windows)
    if progress is not None:
        progress(done, total)
    with torch.inference_mode(), loaded.autocast(), cpu_threads(loaded.device):
        for batch in _batches(windows, batch_tokens):
            for first, ids, outputs in step.run(batch):  # (B, W), (B, C, D)
                for row, w in enumerate(batch):
                    lo = w.first_target - w.start  # window tokens [lo, len) are this window's
                    for token, st in step.stats(outputs[row], ids[row], first, lo, len(w.ids)):
                        results[w.text_index].scatter(w.start + token, st)
                        done += st.entropy.shape[0]
                if progress is not None:
                    progress(done, total)
    return results


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


def token_texts(
    tokenizer: Any, text: str, ids: list[int], offsets: list[tuple[int, int]] | None
) -> list[str]:
    """Each token's piece of the original text, so that joining them gives the text back."""
    if offsets is None:
        return [tokenizer.decode([i]) for i in ids]
    pieces, cursor = [], 0
    for i, (start, end) in zip(ids, offsets, strict=True):
        if start == end == 0 and cursor > 0 or end <= cursor and end > 0:
            pieces.append("")  # a byte-fallback token sharing a character with its neighbour
            continue
        if start == end:
            pieces.append(tokenizer.decode([i]) if cursor == 0 and start == 0 else "")
            continue
        pieces.append(text[max(start, cursor) : end])
        cursor = max(cursor, end)
    # Text between the last token and the end (e.g. trailing spaces dropped by a tokenizer).
    if pieces and cursor < len(text):
        pieces[-1] += text[cursor:]
    return pieces


def entropy_tensor(entropies: Sequence[float | None]) -> torch.Tensor:
    """Token-aligned entropies as the policy takes them: float32, shape (1, T), NaN for none."""
    return torch.tensor([[math.nan if e is None else e for e in entropies]], dtype=torch.float32)


@dataclass
class ScoreResult:
    """Scores of one text; ``to_dict()`` is the token JSON of DESIGN.md section 6."""

    model: str
    ids: list[int]
    texts: list[str]
    entropy: list[float | None]
    surprisal: list[float | None]
    rank: list[int | None]
    top: list[list[dict[str, Any]]] = field(default_factory=list)
    # A conversation rendered with the chat template (score_conversation): per token, whether it
    # carries loss in training, its message's role and whether it is the message's own text.
    trained: list[bool] | None = None
    roles: list[str | None] | None = None
    segments: list[str] | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    def entropy_tensor(self) -> torch.Tensor:
        """This text's entropies for `select_drops`: shape (1, T), NaN for the first token."""
        return entropy_tensor(self.entropy)

    def summary(self) -> dict[str, float | None]:
        ent = [e for e in self.entropy if e is not None]
        sur = [s for s in self.surprisal if s is not None]
        mean_s = sum(sur) / len(sur) if sur else None
        return {
            "mean_entropy": sum(ent) / len(ent) if ent else None,
            "mean_surprisal": mean_s,
            "perplexity": math.exp(mean_s) if mean_s is not None and mean_s < 700 else None,
        }

    def to_dict(self) -> dict[str, Any]:
        tokens = []
        for i, tid in enumerate(self.ids):
            s = self.surprisal[i]
            token: dict[str, Any] = {
                "index": i,
                "id": tid,
                "text": self.texts[i],
                "entropy": self.entropy[i],
                "surprisal": s,
                "prob": None if s is None else math.exp(-s),
                "rank": self.rank[i],
                "top": self.top[i] if i < len(self.top) else [],
            }
            if self.trained is not None:
                token["trained"] = self.trained[i]
                token["role"] = None if self.roles is None else self.roles[i]
                token["segment"] = "template" if self.segments is None else self.segments[i]
            tokens.append(token)
        return {
            "model": self.model,
            "n_tokens": self.n_tokens,
            "tokens": tokens,
            "summary": self.summary(),
        }


def encode(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
    """The tokenizer's standard encoding of a text, with character offsets where it has them."""
    try:
        enc = tokenizer(text, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError):
        return list(tokenizer(text)["input_ids"]), None


def _result(
    loaded: LoadedModel, text: str, ids: list[int], offsets: Any, arr: TokenArrays
) -> ScoreResult:
    tok = loaded.tokenizer
    top: list[list[dict[str, Any]]] = []
    vocab_pieces: dict[int, str] = {}
    for row_ids, row_p in zip(arr.top_ids.tolist(), arr.top_probs.tolist(), strict=True):
        alts = []
        for tid, p in zip(row_ids, row_p, strict=True):
            if tid < 0:
                continue
            if tid not in vocab_pieces:
                vocab_pieces[tid] = tok.decode([tid])
            alts.append({"id": tid, "text": vocab_pieces[tid], "prob": p})
        top.append(alts)
    ranks = arr.rank.tolist()
    return ScoreResult(
        model=loaded.name,
        ids=ids,
        texts=token_texts(tok, text, ids, offsets),
        entropy=[_none_if_nan(x) for x in arr.entropy.tolist()],
        surprisal=[_none_if_nan(x) for x in arr.surprisal.tolist()],
        rank=[None if r < 0 else int(r) for r in ranks],
        top=top,
    )


@overload
def score(loaded: LoadedModel, text_or_texts: str, top_k: int = 5, **kw: Any) -> ScoreResult: ...
@overload
def score(
    loaded: LoadedModel, text_or_texts: Sequence[str], top_k: int = 5, **kw: Any
) -> list[ScoreResult]: ...


def score(
    loaded: LoadedModel, text_or_texts: str | Sequence[str], top_k: int = 5, **kw: Any
) -> ScoreResult | list[ScoreResult]:
    """Score one text (-> ScoreResult) or several (-> list), per token, as DESIGN.md section 6."""
    single = isinstance(text_or_texts, str)
    texts: list[str] = [text_or_texts] if isinstance(text_or_texts, str) else list(text_or_texts)
    if top_k < 0:
        raise ValueError("top_k must be >= 0")
    encoded = [encode(loaded.tokenizer, t) for t in texts]
    arrays = score_ids(loaded, [ids for ids, _ in encoded], top_k=top_k, **kw)
    results = [
        _result(loaded, text, ids, offs, arr)
        for text, (ids, offs), arr in zip(texts, encoded, arrays, strict=True)
    ]
    return results[0] if single else results


def score_conversation(
    loaded: LoadedModel,
    messages: Sequence[dict[str, str]],
    top_k: int = 5,
    train_on: TrainOn = "answers",
    **kw: Any,
) -> ScoreResult:
    """Score a conversation rendered with the model's chat template (as training renders it):
    the token JSON plus, per token, ``trained``, ``role`` and ``segment``."""
    from entrodrop.data.chat import render_conversation

    if top_k < 0:
        raise ValueError("top_k must be >= 0")
    rendered = render_conversation(
        loaded.tokenizer, list(messages), train_on, loaded.name, with_roles=True
    )
    arrays = score_ids(loaded, [rendered.ids], top_k=top_k, **kw)
    result = _result(loaded, rendered.text, rendered.ids, rendered.offsets, arrays[0])
    result.trained, result.roles, result.segments = (
        rendered.trained,
        rendered.roles,
        rendered.segments,
    )
    return result
