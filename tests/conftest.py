"""Shared fixtures: an isolated ENTRODROP_HOME per test and a tiny random Llama built offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_model import build_tiny_model

from entrodrop.paths import dev_model_cache

# The dequantised default checkpoint is converted once per user, not once per test or checkout.
MODEL_CACHE = dev_model_cache()


# Markers of the long tests (real model, browser, several training processes in a row).
LONG_MARKERS = ("slow", "browser", "processes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding long tests run first: `make test` hands whole files to two workers in
    collection order, and a long file started last would leave the other worker idle."""
    long_files = {i.path for i in items if any(i.get_closest_marker(m) for m in LONG_MARKERS)}
    items.sort(key=lambda item: item.path not in long_files)  # stable: a file keeps its order


@pytest.fixture(autouse=True, scope="session")
def testclient_host() -> Iterator[None]:
    """TestClient sends Host: testserver; servers answer to it only in tests (module apps too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENTRODROP_ALLOWED_HOSTS", "testserver")
        mp.setenv("HF_HUB_OFFLINE", "1")  # no test reaches a model hub (app.hub probes nothing)
        yield


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread for the test: on tiny models thread synchronisation costs more than
    the math (10x on a busy 2-core CPU). Modules that train tiny models use it for every test
    (`pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def entrodrop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own home folder; the default-model cache is shared."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ENTRODROP_HOME", str(home))
    monkeypatch.setenv("ENTRODROP_MODEL_CACHE", str(MODEL_CACHE))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random Llama checkpoint (safetensors + tokenizer), built once per session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama with ChatML special tokens and a small ChatML chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-chat") / "tiny-chat-llama", chat=True)


@pytest.fixture(scope="session")
def tiny_chat_loaded(tiny_chat_model_dir: Path):  # type: ignore[no-untyped-def]
    """The tiny chat model loaded through entrodrop.load, in float32 on the CPU."""
    import entrodrop

    return entrodrop.load(str(tiny_chat_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .txt of 15 Python-reference topics (documents split by blank lines): quick to tokenise."""
    import pydoc_data.topics

    texts = [t for _, t in sorted(pydoc_data.topics.topics.items())][:15]
    path = tmp_path_factory.mktemp("data") / "small.txt"
    path.write_text("\n\n\n".join(t.strip() for t in texts), encoding="utf-8")
    return path


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
