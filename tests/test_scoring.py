"""Scoring: the entropy function, token alignment, windows, chunking and the token JSON."""

from __future__ import annotations

import math

import pytest
import torch

import entrodrop
from entrodrop import scoring


def test_entropy_matches_float64_reference() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn((64, 1000), generator=g) * 4
    ref = -(logits.double().softmax(-1) * logits.double().log_softmax(-1)).sum(-1)
    ours = scoring.entropy_from_logits(logits)
    assert torch.allclose(ours.double(), ref, rtol=1e-3, atol=0)
    # bf16 logits are upcast before the softmax
    ours_bf16 = scoring.entropy_from_logits(logits.bfloat16())
    ref_bf16 = -(
        logits.bfloat16().double().softmax(-1) * logits.bfloat16().double().log_softmax(-1)
    ).sum(-1)
    assert torch.allclose(ours_bf16.double(), ref_bf16, rtol=1e-3)
    assert (ours >= 0).all() and (ours <= math.log(1000) + 1e-4).all()


def test_token_entropies_are_token_aligned_and_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    logits = torch.randn((2, 9, 50))
    monkeypatch.setattr(scoring, "CHUNK_ELEMENTS", 3 * 50 * 2)  # force several chunks
    ent = scoring.token_entropies(logits)
    assert ent.shape == (2, 9)
    assert torch.isnan(ent[:, 0]).all()
    assert torch.allclose(ent[:, 1:], scoring.entropy_from_logits(logits[:, :-1]))


def test_causal_shift_pairs_each_output_with_the_next_token() -> None:
    outputs = torch.arange(2 * 5 * 3).view(2, 5, 3)  # (B, T, D)
    tokens = torch.arange(10).view(2, 5)  # (B, T)
    predictions, targets = scoring.causal_shift(outputs, tokens)
    assert predictions.shape == (2, 4, 3) and targets.shape == (2, 4)
    assert torch.equal(predictions[:, 0], outputs[:, 0]) and torch.equal(
        targets[:, 0], tokens[:, 1]
    )
    assert torch.equal(scoring.predicted_tokens(tokens), tokens[:, 1:])


def test_texts_that_fit_are_one_pass_and_longer_ones_windows() -> None:
    ids = list(range(300))
    one = scoring._windows([ids], window=64, single_pass=512)
    assert [(w.start, len(w.ids), w.first_target) for w in one] == [(0, 300, 1)]
    several = scoring._windows([ids], window=64, single_pass=64)
    assert len(several) > 1 and several[-1].start + len(several[-1].ids) == 300
    # each later window starts a quarter window before the tokens it is responsible for
    assert all(w.first_target - w.start == 16 for w in several[1:])


def _reference(loaded, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        lp = loaded.model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
    ent = -(lp.exp() * lp).sum(-1)[:-1]
    sur = -lp[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
    return ent, sur


def test_score_matches_plain_forward(tiny_loaded) -> None:
    text = "def add(a, b):\n    return a + b\n\nclass Point:\n    pass\n"
    res = entrodrop.score(tiny_loaded, text, top_k=3)
    ent, sur = _reference(tiny_loaded, res.ids)
    assert res.entropy[0] is None and res.surprisal[0] is None and res.rank[0] is None
    assert torch.allclose(torch.tensor(res.entropy[1:], dtype=torch.float64), ent, atol=1e-4)
    assert torch.allclose(torch.tensor(res.surprisal[1:], dtype=torch.float64), sur, atol=1e-4)
    # rank 1 means the true token was the top alternative
    for i in range(1, res.n_tokens):
        top = res.top[i]
        assert len(top) == 3 and top[0]["prob"] >= top[1]["prob"] >= top[2]["prob"]
        assert (res.rank[i] == 1) == (top[0]["id"] == res.ids[i])
    assert "".join(res.texts) == text


def test_long_text_windows_give_every_token_context(tiny_loaded) -> None:
    text = " ".join(f"x{i} = {i} * 2" for i in range(120))
    full = entrodrop.score(tiny_loaded, text, top_k=0)
    windowed = entrodrop.score(tiny_loaded, text, top_k=0, max_window=64)
    assert full.n_tokens > 200
    assert all(e is not None for e in windowed.entropy[1:])
    # Windowed tokens saw >= 16 tokens of context: close to the full-context values on this model.
    diff = torch.tensor(windowed.entropy[1:]) - torch.tensor(full.entropy[1:])
    assert torch.isfinite(diff).all()
    # The first window is identical to the full pass.
    assert torch.allclose(diff[:60], torch.zeros(60), atol=1e-4)


def test_batch_of_texts_equals_one_by_one(tiny_loaded) -> None:
    texts = ["a = 1", "for i in range(10):\n    print(i)", "x"]
    batch = entrodrop.score(tiny_loaded, texts)
    for text, res in zip(texts, batch, strict=True):
        one = entrodrop.score(tiny_loaded, text)
        assert res.ids == one.ids
        for a, b in zip(res.entropy, one.entropy, strict=True):
            assert (a is None and b is None) or abs(a - b) < 1e-4


def test_token_json_shape(tiny_loaded) -> None:
    d = entrodrop.score(tiny_loaded, "import os\nprint(os.getcwd())", top_k=2).to_dict()
    assert set(d) == {"model", "n_tokens", "tokens", "summary"}
    assert d["n_tokens"] == len(d["tokens"])
    first, second = d["tokens"][0], d["tokens"][1]
    assert first == {
        **first,
        "index": 0,
        "entropy": None,
        "surprisal": None,
        "prob": None,
        "rank": None,
        "top": [],
    }
    assert set(second) == {"index", "id", "text", "entropy", "surprisal", "prob", "rank", "top"}
    assert second["prob"] == pytest.approx(math.exp(-second["surprisal"]))
    assert set(second["top"][0]) == {"id", "text", "prob"}
    s = d["summary"]
    assert s["perplexity"] == pytest.approx(math.exp(s["mean_surprisal"]))


@pytest.mark.slow
def test_default_checkpoint_is_realistic(default_loaded) -> None:
    res = entrodrop.score(default_loaded, "The cat sat on the mat and looked out of the window.")
    ppl = res.summary()["perplexity"]
    assert ppl is not None and math.isfinite(ppl) and ppl < 100
    log_v = math.log(default_loaded.model.config.vocab_size)
    assert all(0 <= e <= log_v + 1e-3 for e in res.entropy[1:] if e is not None)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_default_entropies_agree_with_fp32(default_loaded, dtype: str | None) -> None:
    """This machine's default precision, and bf16 autocast, stay within 0.05 nats of fp32."""
    import dataclasses
    import pydoc_data.topics

    from entrodrop.precision import choose_precision

    loaded = dataclasses.replace(
        default_loaded, precision=choose_precision(default_loaded.device, dtype)
    )
    topics = pydoc_data.topics.topics
    # ~360 tokens: enough for a steady mean, and bf16 is emulated (slow) on many CPUs.
    text = "\n\n".join(topics[k] for k in ("assert", "pass"))
    res = entrodrop.score(loaded, text)
    assert res.n_tokens > 300
    ent, _ = _reference(default_loaded, res.ids)  # plain forward without autocast: fp32 weights
    ours = torch.tensor(res.entropy[1:], dtype=torch.float64)
    assert float((ours - ent).abs().mean()) < 0.05


def test_entropy_tensor_feeds_select_drops_as_the_readme_shows(tiny_loaded) -> None:  # type: ignore[no-untyped-def]
    import math

    import entrodrop

    res = entrodrop.score(tiny_loaded, "def add(a, b):\n    return a + b\n", top_k=5)
    ent = res.entropy_tensor()
    assert ent.shape == (1, res.n_tokens) and math.isnan(ent[0, 0].item())
    assert ent[0, 1:].tolist() == pytest.approx([e for e in res.entropy[1:]])
    cfg = entrodrop.EntroDropConfig(quantile=0.5, rate_max=1.0, schedule="constant")
    mask = entrodrop.select_drops(ent, cfg, progress=0.8)
    assert mask.shape == ent.shape and not bool(mask[0, 0])  # the first token is never dropped
    assert bool(mask.any())  # rate 1: every candidate below the median goes


# ---------------------------------------------------------------- chunks through the KV cache


def _assert_same(a: scoring.TokenArrays, b: scoring.TokenArrays, atol: float) -> None:
    """Two scorings of one text agree to float32 rounding: every statistic, top-k included."""
    assert a.ids == b.ids
    for name in ("entropy", "surprisal", "top_probs"):
        x, y = getattr(a, name), getattr(b, name)
        assert torch.allclose(x, y, atol=atol, rtol=0, equal_nan=True), name
    assert torch.equal(a.rank, b.rank)
    assert torch.equal(a.top_ids, b.top_ids)


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_scoring_equals_one_pass(tiny_loaded, chunk: int) -> None:
    # A batch of short and long texts, and one over the tiny model's 512-token context
    # (windows, each chunked in turn).
    texts = [
        "a = 1",
        "for i in range(10):\n    print(i)",
        " ".join(f"x{i} = {i} * 2" for i in range(40)),
        " ".join(f"y{i} = {i} + 1" for i in range(200)),
    ]
    ids = [scoring.encode(tiny_loaded.tokenizer, t)[0] for t in texts]
    assert len(ids[-1]) > 512
    one = scoring.score_ids(tiny_loaded, ids, top_k=5, chunk_tokens=None)
    chunked = scoring.score_ids(tiny_loaded, ids, top_k=5, chunk_tokens=chunk)
    for a, b in zip(one, chunked, strict=True):
        _assert_same(a, b, atol=1e-5)


def test_progress_comes_after_each_chunk_and_can_stop_scoring(tiny_loaded) -> None:
    ids = [scoring.encode(tiny_loaded.tokenizer, " ".join(f"x{i} = {i}" for i in range(40)))[0]]
    n = len(ids[0])
    calls: list[tuple[int, int]] = []
    scoring.score_ids(tiny_loaded, ids, chunk_tokens=32, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, n - 1) and calls[-1] == (n - 1, n - 1)
    assert len(calls) == 1 + math.ceil(n / 32)  # one before the first chunk, one after each
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    class Stop(Exception):
        pass

    seen: list[int] = []

    def stop_after_two(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        scoring.score_ids(tiny_loaded, ids, chunk_tokens=32, progress=stop_after_two)
    assert seen == [0, 32, 64]  # stopped after the second chunk, with the rest unscored


@pytest.mark.slow
def test_chunked_scoring_equals_one_pass_on_the_default_model(default_loaded) -> None:
    import dataclasses
    import pydoc_data.topics

    from entrodrop.precision import choose_precision

    # fp32 both ways: the comparison is of the cache, not of a precision this CPU may choose.
    fp32 = dataclasses.replace(
        default_loaded, precision=choose_precision(torch.device("cpu"), "float32")
    )
    text = "\n\n".join(pydoc_data.topics.topics[k] for k in ("assignment", "class", "for"))
    ids = [scoring.encode(fp32.tokenizer, text)[0][:700]]
    one = scoring.score_ids(fp32, ids, top_k=5, chunk_tokens=None)
    chunked = scoring.score_ids(fp32, ids, top_k=5, chunk_tokens=scoring.DEFAULT_CHUNK_TOKENS)
    _assert_same(one[0], chunked[0], atol=1e-4)
