"""The key/value cache across transformers versions: a new cache, and the keyword that takes it."""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any


def supports_cache(model: Any) -> bool:
    """Whether a causal LM takes a key/value cache (nearly every one in transformers does)."""
    config = model.config
    return bool(getattr(config, "use_cache", False)) and not getattr(
        config, "is_encoder_decoder", False
    )


def new_cache(model: Any) -> Any:
    """An empty DynamicCache for `model` (sliding-window layers as its config says, where the
    installed transformers knows them)."""
    from transformers import DynamicCache  # transformers loads lazily: not at import

    try:
        return DynamicCache(config=model.config)
    except TypeError:  # transformers < 4.56 builds it without the config
        return DynamicCache()


@cache
def _keyword(forward: Any) -> str:
    # transformers 5.x renamed `past_key_values` to `cache` (the old name warns, then goes).
    params = inspect.signature(forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(module: Any, kv_cache: Any) -> dict[str, Any]:
    """The keyword arguments that hand `kv_cache` to `module`'s forward (none for None)."""
    if kv_cache is None:
        return {"use_cache": False}
    return {_keyword(type(module).forward): kv_cache, "use_cache": True}
