"""Shared fixtures: an isolated ENTRODROP_HOME per test and a tiny random Llama built offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The dequantised default checkpoint is cached once per checkout, not once per test.
MODEL_CACHE = REPO / ".entrodrop-home" / "models"


@pytest.fixture(autouse=True, scope="session")
def testclient_host() -> Iterator[None]:
    """TestClient sends Host: testserver; servers answer to it only in tests (module apps too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENTRODROP_ALLOWED_HOSTS", "testserver")
        mp.setenv("HF_HUB_OFFLINE", "1")  # no test reaches a model hub (app.hub probes nothing)
        yield


@pytest.fixture(autouse=True)
def entrodrop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own home folder; the default-model cache is shared."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ENTRODROP_HOME", str(home))
    monkeypatch.setenv("ENTRODROP_MODEL_CACHE", str(MODEL_CACHE))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return home


def build_tiny_model(out: Path, vocab_size: int = 384, layers: int = 2, hidden: int = 32) -> Path:
    """A randomly initialised Llama with a byte-level BPE tokenizer trained on Python docs."""
    import pydoc_data.topics

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = list(pydoc_data.topics.topics.values())[:20]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    fast.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random Llama checkpoint (safetensors + tokenizer), built once per session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """The tiny model loaded through entrodrop.load, in float32 on the CPU."""
    import entrodrop

    return entrodrop.load(str(tiny_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def default_loaded():  # type: ignore[no-untyped-def]
    """The real default checkpoint (SmolLM2-135M-Instruct); converted once into MODEL_CACHE."""
    import entrodrop

    # Session fixtures run before the per-test home fixture: point at the shared cache here.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENTRODROP_MODEL_CACHE", str(MODEL_CACHE))
        return entrodrop.load("default")
