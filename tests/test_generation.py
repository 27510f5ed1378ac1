"""Generation: greedy and seeded sampling, per-token statistics equal to scoring's, stops, chat."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

import entrodrop
from entrodrop import generation, scoring

PROMPT = "def add(a, b):\n    return"


def ids_of(gen: generation.Generation) -> list[int]:
    return [t.id for t in gen]


def test_greedy_picks_the_most_likely_token_every_time(tiny_loaded) -> None:
    tokens = list(entrodrop.generate(tiny_loaded, PROMPT, max_new_tokens=12))
    assert len(tokens) == 12 and [t.index for t in tokens] == list(range(12))
    assert all(t.rank == 1 and t.sampled_entropy == 0.0 for t in tokens)
    assert all(t.top[0]["id"] == t.id for t in tokens)


def test_the_same_seed_gives_the_same_tokens(tiny_loaded) -> None:
    def run(seed: int) -> list[int]:
        kw = {"max_new_tokens": 40, "temperature": 1.0, "top_p": 0.95, "seed": seed}
        return ids_of(entrodrop.generate(tiny_loaded, PROMPT, **kw))

    first = run(7)
    assert run(7) == first
    assert run(8) != first  # a random 384-token model: 40 draws never coincide by chance
    assert any(t.rank > 1 for t in entrodrop.generate(tiny_loaded, PROMPT, temperature=1.0))


def test_a_tiny_top_p_is_greedy(tiny_loaded) -> None:
    greedy = ids_of(entrodrop.generate(tiny_loaded, PROMPT, max_new_tokens=10))
    narrow = entrodrop.generate(
        tiny_loaded, PROMPT, max_new_tokens=10, temperature=1.0, top_p=1e-9, seed=3
    )
    assert ids_of(narrow) == greedy


def test_token_statistics_equal_scoring_the_continuation(tiny_loaded) -> None:
    gen = entrodrop.generate(tiny_loaded, PROMPT, max_new_tokens=16, temperature=0.8, seed=1)
    tokens = list(gen)
    ids = gen.prompt_ids + [t.id for t in tokens]
    scored = scoring.score_ids(tiny_loaded, [ids], top_k=5)[0]
    n = len(gen.prompt_ids)
    for t in tokens:
        assert t.entropy == pytest.approx(float(scored.entropy[n + t.index]), abs=1e-4)
        assert t.surprisal == pytest.approx(float(scored.surprisal[n + t.index]), abs=1e-4)
        assert t.rank == int(scored.rank[n + t.index])
        assert [a["id"] for a in t.top] == scored.top_ids[n + t.index].tolist()
        d = t.to_dict()
        assert d["prob"] == pytest.approx(math.exp(-t.surprisal))
        assert 0 <= d["sampled_entropy"] <= math.log(len(tiny_loaded.tokenizer)) + 1e-4
    decoded = tiny_loaded.tokenizer.decode([t.id for t in tokens])
    assert "".join(t.text for t in tokens) == decoded  # the pieces join to the text


def test_it_stops_at_an_end_token_and_at_the_context(tiny_loaded) -> None:
    first = next(iter(entrodrop.generate(tiny_loaded, PROMPT))).id
    model = copy.copy(tiny_loaded.model)
    model.generation_config = copy.deepcopy(tiny_loaded.model.generation_config)
    model.generation_config.eos_token_id = [first]  # the greedy first token ends the text
    ends = dataclasses.replace(tiny_loaded, model=model)
    gen = entrodrop.generate(ends, PROMPT, max_new_tokens=10)
    assert ids_of(gen) == [first] and gen.stop_reason == "eos"

    many = tiny_loaded.tokenizer(PROMPT * 200)["input_ids"][:450]
    long_prompt = tiny_loaded.tokenizer.decode(many)  # close to the tiny model's 512 tokens
    gen = entrodrop.generate(tiny_loaded, long_prompt, max_new_tokens=1000, chunk_tokens=64)
    n = len(gen.prompt_ids)
    assert len(list(gen)) == 512 - n and gen.stop_reason == "context"
    gen = entrodrop.generate(tiny_loaded, PROMPT, max_new_tokens=3)
    assert len(list(gen)) == 3 and gen.stop_reason == "max_new_tokens"


def test_prompt_progress_is_chunked_and_can_stop(tiny_loaded) -> None:
    prompt = PROMPT * 8
    calls: list[tuple[int, int]] = []
    gen = entrodrop.generate(tiny_loaded, prompt, max_new_tokens=2, chunk_tokens=16)
    gen.prefill_progress = lambda d, t: calls.append((d, t))
    list(gen)
    n = len(gen.prompt_ids)
    assert calls[0] == (0, n) and calls[-1] == (n, n) and len(calls) == 1 + math.ceil(n / 16)
    # Chunked or not, the prompt's pass gives the same first distribution.
    one = next(iter(entrodrop.generate(tiny_loaded, prompt, chunk_tokens=10_000)))
    chunked = next(iter(entrodrop.generate(tiny_loaded, prompt, chunk_tokens=16)))
    assert chunked.id == one.id and chunked.entropy == pytest.approx(one.entropy, abs=1e-5)


def test_chat_prompts_go_through_the_chat_template(tiny_loaded) -> None:
    with pytest.raises(generation.GenerationError, match="no chat template"):
        entrodrop.generate(tiny_loaded, "hi", chat=True)
    tok = copy.deepcopy(tiny_loaded.tokenizer)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    chat = dataclasses.replace(tiny_loaded, tokenizer=tok)
    gen = entrodrop.generate(chat, "hi", chat=True, max_new_tokens=2)
    assert gen.prompt_ids == tok("<user>hi<assistant>")["input_ids"]
    assert len(list(gen)) == 2


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": 1e-300}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
def test_bad_settings_are_refused(tiny_loaded, kw: dict, needle: str) -> None:
    with pytest.raises(generation.GenerationError, match=needle):
        entrodrop.generate(tiny_loaded, PROMPT, **kw)


def test_sampling_probs_follow_temperature_and_top_p() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    assert torch.equal(generation.sampling_probs(logits, 0.0, 1.0), torch.tensor([1.0, 0, 0, 0]))
    assert torch.allclose(generation.sampling_probs(logits, 1.0, 1.0), logits.softmax(-1))
    assert torch.allclose(generation.sampling_probs(logits, 2.0, 1.0), (logits / 2).softmax(-1))
    p = generation.sampling_probs(logits, 1.0, 0.7)  # the top two hold 0.64 + 0.24 >= 0.7
    assert (p[2:] == 0).all() and p[:2].sum() == pytest.approx(1.0)
