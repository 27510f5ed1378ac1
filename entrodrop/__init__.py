"""EntroDrop: entropy-guided token dropout for fine-tuning causal language models."""

from entrodrop.config import EntroDropConfig, RunConfig
from entrodrop.generation import GeneratedToken, Generation, generate
from entrodrop.models import LoadedModel, ModelLoadError, load
from entrodrop.policy import apply_drops, drop_rate, select_drops, select_random_drops
from entrodrop.scoring import ScoreResult, score, score_conversation

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
