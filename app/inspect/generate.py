"""Generation in the model worker (POST /api/generate's job): each token goes to the stream as it
is made, and a cancel (Stop, or the client leaving) ends the job at the next token."""

from __future__ import annotations

import math
import time
from typing import Any

import entrodrop
from app.errors import TooManyTokens
from app.inspect.schemas import GenerateRequest
from app.model_service import ModelService
from app.score_job import ScoreJob


def defaults() -> dict[str, Any]:
    """The request's defaults (the page's starting values come from here, not from JS)."""
    fields = GenerateRequest.model_fields
    return {k: f.default for k, f in fields.items() if not f.is_required() and k != "model"}


# The numeric fields the page offers as inputs; their bounds come from GenerateRequest's schema.
INPUT_FIELDS = ("max_new_tokens", "temperature", "top_p", "seed")


def fields(max_new_tokens: int) -> dict[str, dict[str, Any]]:
    """Each input's label, help, default and bounds (JSON schema's), max_new_tokens capped at the
    server's limit: the page draws its inputs from these and never retypes a bound."""
    props = GenerateRequest.model_json_schema()["properties"]
    out: dict[str, dict[str, Any]] = {}
    for name in INPUT_FIELDS:
        p = props[name]
        out[name] = {
            "name": name,
            "label": p.get("title", name).lower().replace("_", " "),
            "help": p.get("description", ""),
            "default": p["default"],
            "minimum": p.get("minimum", p.get("exclusiveMinimum")),
            "exclusive_minimum": "exclusiveMinimum" in p,
            "maximum": p.get("maximum"),
            "integer": p.get("type") == "integer",
        }
    cap = out["max_new_tokens"]
    cap["maximum"] = max_new_tokens
    cap["default"] = min(cap["default"], max_new_tokens)  # a low cap: the page starts valid
    return out


def summary(tokens: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean entropy and surprisal of the generated tokens, and the perplexity."""
    ent = [t["entropy"] for t in tokens if t["entropy"] is not None]
    sur = [t["surprisal"] for t in tokens if t["surprisal"] is not None]
    mean_s = sum(sur) / len(sur) if sur else None
    return {
        "mean_entropy": sum(ent) / len(ent) if ent else None,
        "mean_surprisal": mean_s,
        "perplexity": None if mean_s is None or mean_s >= 700 else math.exp(mean_s),
    }


def generate_job(
    service: ModelService, spec: str, body: GenerateRequest, job: ScoreJob | None = None
) -> dict[str, Any]:
    """Generate from `body.prompt` with the model `spec`; `token` events stream as tokens come."""
    loaded = service.get(spec)
    settings = service.settings
    generation = entrodrop.generate(
        loaded,
        body.prompt,
        chat=body.chat,
        max_new_tokens=body.max_new_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        top_k=body.top_k,
        chunk_tokens=settings.score_chunk_tokens,
        prefill_progress=job.progress if job else None,
    )
    n_prompt = len(generation.prompt_ids)
    if n_prompt > settings.max_score_tokens:
        raise TooManyTokens(
            f"the prompt has {n_prompt} tokens; the limit is {settings.max_score_tokens} "
            "(ENTRODROP_MAX_SCORE_TOKENS)"
        )
    if job is not None:
        job.begin("prompt")
    start = time.perf_counter()
    tokens: list[dict[str, Any]] = []
    for token in generation:
        tokens.append(token.to_dict())
        if job is not None:
            elapsed = round(time.perf_counter() - start, 3)
            job.emit({"event": "token", "token": tokens[-1], "elapsed_s": elapsed})
            job.check()  # Stop, or the client left: end here, between tokens
    assert generation.stop_reason is not None  # set once the iteration ends
    return {
        "model": loaded.name,
        "spec": spec,
        "chat": body.chat,
        "prompt_tokens": n_prompt,
        "n_tokens": len(tokens),
        "tokens": tokens,
        "text": "".join(t["text"] for t in tokens),
        "stop_reason": generation.stop_reason,
        "summary": summary(tokens),
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
        "max_new_tokens": body.max_new_tokens,
        "elapsed_s": round(time.perf_counter() - start, 4),
        "waited_s": job.waited_s if job else None,
    }
