"""EntroDrop: entropy-guided token dropout for fine-tuning causal language models."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from entrodrop.config import EntroDropConfig, RunConfig

if TYPE_CHECKING:
    from entrodrop.generation import GeneratedToken, Generation, generate
    from entrodrop.models import LoadedModel, ModelLoadError, load
    from entrodrop.policy import apply_drops, drop_rate, select_drops, select_random_drops
    from entrodrop.scoring import ScoreResult, score, score_conversation

# Where each public name lives. They load on first use (PEP 562): `import entrodrop` and the
# command line stay free of torch until a model is needed, so `entrodrop --help` answers at once
# and a start-up check (a full disk, a bad home) can speak before torch imports.
_LAZY = {
    "GeneratedToken": "entrodrop.generation",
    "Generation": "entrodrop.generation",
    "generate": "entrodrop.generation",
    "LoadedModel": "entrodrop.models",
    "ModelLoadError": "entrodrop.models",
    "load": "entrodrop.models",
    "apply_drops": "entrodrop.policy",
    "drop_rate": "entrodrop.policy",
    "select_drops": "entrodrop.policy",
    "select_random_drops": "entrodrop.policy",
    "ScoreResult": "entrodrop.scoring",
    "score": "entrodrop.scoring",
    "score_conversation": "entrodrop.scoring",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next look-up is a plain attribute
        return value
    raise AttributeError(f"module 'entrodrop' has no attribute {name!r}")


__all__ = [
    "EntroDropConfig",
    "GeneratedToken",
    "Generation",
    "LoadedModel",
    "ModelLoadError",
    "RunConfig",
    "ScoreResult",
    "apply_drops",
    "drop_rate",
    "generate",
    "load",
    "score",
    "score_conversation",
    "select_drops",
    "select_random_drops",
]
__version__ = "0.1.0"
