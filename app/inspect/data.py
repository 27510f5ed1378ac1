"""The Inspect page's data, one function per JSON twin: score, preview, compare, draws, checkpoints.

Functions named ``*_job`` run in the model service's worker thread (they touch models); the rest
are cheap and pure. The page renders exactly what these return.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import entrodrop
from app.errors import FieldError, RequestInvalid, TooManyTokens
from app.model_paths import check_model_folder
from app.model_service import ModelService
from app.runs.validate import check_dataset
from app.score_job import ScoreJob
from app.settings import Settings
from entrodrop import runfolder
from entrodrop.config import DataFormatChoice, EntroDropConfig, TrainOn
from entrodrop.data import Conversation, Example, all_examples, render_conversation
from entrodrop.models import ModelLoadError, check_local_checkpoint, resolve_spec
from entrodrop.paths import PathError, expand_user
from entrodrop.policy import candidate_mask, drop_rate, entropy_threshold, in_scope, select_drops
from entrodrop.scoring import entropy_tensor, score_conversation

# Longest text a shareable link carries (links over ~8 KB break in some browsers and servers).
URL_TEXT_CHARS = 2000
# What the page can colour tokens by; fixed scales are shared by every text, so texts compare.
COLOUR_MODES: list[dict[str, Any]] = [
    {"id": "entropy", "label": "entropy", "unit": "nats", "fixed_max": 8.0},
    {"id": "surprisal", "label": "surprisal", "unit": "nats", "fixed_max": 16.0},
    {"id": "prob", "label": "probability", "unit": "", "fixed_max": None},
    {"id": "rank", "label": "rank bucket (GLTR)", "unit": "", "fixed_max": None},
]
RANK_BUCKETS = [10, 100, 1000]  # GLTR: top-10, top-100, top-1000, beyond


def encode_json(payload: Any) -> bytes:
    """Compact JSON; done in the worker so large token tables never block the event loop."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _check_tokens(n: int, limit: int) -> None:
    if n > limit:
        raise TooManyTokens(
            f"the text has {n} tokens; the limit is {limit} tokens per text "
            "(ENTRODROP_MAX_SCORE_TOKENS)"
        )


def score_job(
    service: ModelService,
    spec: str,
    text: str,
    top_k: int,
    job: ScoreJob | None = None,
    stage: str = "",
) -> dict[str, Any]:
    """Score one text with the model `spec` (cached or loaded now): the token JSON of DESIGN §6.

    With a `job`, progress goes to its events and a cancel stops scoring between chunks.
    """
    loaded = service.get(spec)
    n = len(loaded.tokenizer(text)["input_ids"])
    _check_tokens(n, service.settings.max_score_tokens)
    if job is not None:
        job.rate = service.rate(spec)
        job.begin(stage)
    start = time.perf_counter()
    result = entrodrop.score(
        loaded,
        text,
        top_k=top_k,
        progress=job.progress if job else None,
        chunk_tokens=service.settings.score_chunk_tokens,
    )
    elapsed = time.perf_counter() - start
    service.record_rate(spec, n, elapsed)
    payload = _finite_probs(result.to_dict())
    payload["spec"] = spec
    payload["elapsed_s"] = round(elapsed, 4)  # the scoring alone: no queue wait, no model load
    payload["waited_s"] = job.waited_s if job else None
    return payload


def dataset_example(
    dataset: str, index: int, data_format: DataFormatChoice, settings: Settings
) -> tuple[Example, dict[str, Any]]:
    """Example `index` of a dataset (a built-in, an upload or an allowed file), and where it is
    (dataset, index, n_examples, format) so a page can page through the file."""
    try:
        path = check_dataset(dataset, settings)
    except ValueError as exc:
        raise RequestInvalid([FieldError(("example", "dataset"), str(exc))]) from exc
    data = all_examples(path, None, settings.text_budget, data_format)  # DataError: 422
    n = len(data.examples)
    if index >= n:
        raise RequestInvalid(
            [FieldError(("example", "index"), f"{data.name} has {n} examples (0 to {n - 1})")]
        )
    info = {"dataset": dataset, "index": index, "n_examples": n, "format": data.format}
    return data.examples[index], info


def conversation_job(
    service: ModelService,
    spec: str,
    messages: Conversation,
    top_k: int,
    train_on: TrainOn,
    info: dict[str, Any],
    job: ScoreJob | None = None,
) -> dict[str, Any]:
    """Score a conversation rendered with the model's chat template (as training renders it):
    the token JSON with each token's `trained`, `role` and `segment`, and the conversation."""
    loaded = service.get(spec)
    rendered = render_conversation(loaded.tokenizer, messages, train_on, loaded.name)
    _check_tokens(len(rendered.ids), service.settings.max_score_tokens)
    if job is not None:
        job.rate = service.rate(spec)
        job.begin("")
    start = time.perf_counter()
    progress = job.progress if job else None
    result = score_conversation(loaded, messages, top_k, train_on, progress=progress)
    elapsed = time.perf_counter() - start
    service.record_rate(spec, len(rendered.ids), elapsed)
    payload = _finite_probs(result.to_dict())
    payload["spec"] = spec
    payload["elapsed_s"] = round(elapsed, 4)  # the scoring alone: no queue wait, no model load
    payload["waited_s"] = job.waited_s if job else None
    payload["conversation"] = {
        "messages": messages,
        "train_on": train_on,
        "n_trained": sum(rendered.trained),
        **info,
    }
    return payload


def _finite_probs(payload: dict[str, Any]) -> dict[str, Any]:
    """A broken checkpoint can emit NaN probabilities; JSON has no NaN, so they become null."""
    for token in payload["tokens"]:
        for alt in token["top"]:
            alt["prob"] = _finite_or_none(alt["prob"])
        token["prob"] = _finite_or_none(token["prob"])
    return payload


def compare_job(
    service: ModelService,
    spec_a: str,
    spec_b: str,
    text: str,
    top_k: int,
    job: ScoreJob | None = None,
) -> dict[str, Any]:
    """The same text under two checkpoints, with the per-token entropy difference when defined."""
    # Both models load before either scores: a bad B fails at once, not after A's scoring.
    service.get(spec_a)
    service.get(spec_b)
    a = score_job(service, spec_a, text, top_k, job, stage="A")
    b = score_job(service, spec_b, text, top_k, job, stage="B")
    timing = {"elapsed_s": round(a["elapsed_s"] + b["elapsed_s"], 4), "waited_s": a["waited_s"]}
    return {"a": a, "b": b, **entropy_delta(a, b), **timing}


def check_spec(service: ModelService, spec: str) -> None:
    """Cheap checks of a model spec (no weights read), so a bad one fails before any queueing."""
    if spec in (service.spec, "default") or spec in service.status()["cached"]:
        return
    try:
        local = expand_user(spec)
        if local.is_absolute() or spec[:1] in ".~" or local.exists():
            spec = str(check_model_folder(local, service.settings))
        where, is_local = resolve_spec(spec, service.settings.runs_path)
        if is_local:
            check_local_checkpoint(Path(where))
    except (PathError, OSError) as exc:  # every string a user sends gets an answer, not a 500
        raise ModelLoadError(f"cannot use the model {spec!r}: {exc}") from exc


def estimate(service: ModelService, spec: str, text: str) -> dict[str, Any]:
    """Token count and expected scoring time from this machine's measured rate for `spec`.

    Counts only with a model already in memory (never loads one for an estimate).
    """
    loaded = service.cached(spec)
    n = len(loaded.tokenizer(text)["input_ids"]) if loaded is not None else None
    rate = service.rate(spec)
    return {
        "spec": spec,
        "n_tokens": n,
        "limit": service.settings.max_score_tokens,
        "tokens_per_s": None if rate is None else round(rate, 1),
        "eta_s": None if rate is None or n is None else round(n / rate, 2),
    }


def entropy_delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """entropy(b) - entropy(a) per token; only defined when both split the text into the same ids."""
    ids_a = [t["id"] for t in a["tokens"]]
    ids_b = [t["id"] for t in b["tokens"]]
    if ids_a != ids_b:
        note = (
            f"The two checkpoints tokenize the text differently ({len(ids_a)} vs {len(ids_b)} "
            "tokens), so there is no per-token difference: they are shown side by side."
        )
        return {"same_tokens": False, "note": note, "delta": None, "delta_summary": None}
    delta: list[float | None] = []
    for ta, tb in zip(a["tokens"], b["tokens"], strict=True):
        ea, eb = ta["entropy"], tb["entropy"]
        delta.append(None if ea is None or eb is None else eb - ea)
    finite = [d for d in delta if d is not None]
    summary = {
        "mean_delta": sum(finite) / len(finite) if finite else None,
        "mean_abs_delta": sum(abs(d) for d in finite) / len(finite) if finite else None,
        "fraction_lower_in_b": sum(d < 0 for d in finite) / len(finite) if finite else None,
    }
    return {"same_tokens": True, "note": None, "delta": delta, "delta_summary": summary}


def preview(
    entropies: list[float | None],
    policy: EntroDropConfig,
    progress: float,
    tokens: list[dict[str, Any]] | None = None,
    model: str | None = None,
    trained: list[bool] | None = None,
) -> dict[str, Any]:
    """Which tokens the policy drops at `progress`: exactly `select_drops` with a seeded generator,
    over the tokens in the drop scope when `trained` says which carry loss (a conversation)."""
    ent = entropy_tensor(entropies)  # (1, T)
    mask = None if trained is None else torch.tensor([trained], dtype=torch.bool)  # (1, T)
    tau = entropy_threshold(in_scope(ent, mask, policy), policy)
    candidates = candidate_mask(in_scope(ent, mask, policy), tau)[0]
    generator = torch.Generator().manual_seed(policy.seed)
    dropped = select_drops(ent, policy, progress, generator, tau, mask)[0]
    out_tokens = []
    for i, (c, d) in enumerate(zip(candidates.tolist(), dropped.tolist(), strict=True)):
        row: dict[str, Any] = {"index": i}
        if tokens is not None:
            row["id"], row["text"] = tokens[i]["id"], tokens[i]["text"]
            for key in ("role", "segment"):
                if key in tokens[i]:
                    row[key] = tokens[i][key]
        if trained is not None:
            row["trained"] = trained[i]
        row.update(entropy=entropies[i], candidate=c, dropped=d)
        out_tokens.append(row)
    return {
        "model": model,
        "n_tokens": len(entropies),
        "progress": progress,
        "policy": policy.model_dump(),
        "tau": tau if math.isfinite(tau) else None,
        "rate": drop_rate(progress, policy),
        "n_scored": sum(e is not None for e in entropies),
        "n_candidates": int(candidates.sum()),
        "n_dropped": int(dropped.sum()),
        "n_trained": None if trained is None else sum(trained),
        "tokens": out_tokens,
    }


def preview_job(
    service: ModelService,
    spec: str,
    text: str,
    top_k: int,
    policy: EntroDropConfig,
    progress: float,
    job: ScoreJob | None = None,
) -> dict[str, Any]:
    """Score a text, then preview the policy on it."""
    scored = score_job(service, spec, text, top_k, job)
    entropies = [t["entropy"] for t in scored["tokens"]]
    out = preview(entropies, policy, progress, tokens=scored["tokens"], model=scored["model"])
    return {**out, "elapsed_s": scored["elapsed_s"], "waited_s": scored["waited_s"]}


def conversation_preview_job(
    service: ModelService,
    spec: str,
    messages: Conversation,
    top_k: int,
    train_on: TrainOn,
    info: dict[str, Any],
    policy: EntroDropConfig,
    progress: float,
    job: ScoreJob | None = None,
) -> dict[str, Any]:
    """Score a conversation, then preview the policy on its trained tokens (the collator's scope)."""
    scored = conversation_job(service, spec, messages, top_k, train_on, info, job)
    tokens = scored["tokens"]
    entropies = [t["entropy"] for t in tokens]
    trained = [bool(t["trained"]) for t in tokens]
    out = preview(entropies, policy, progress, tokens, scored["model"], trained)
    out["conversation"] = scored["conversation"]
    return out


def draws(n: int, seed: int) -> list[float]:
    """The uniform draws select_drops makes for n tokens: torch.rand((1, n)) seeded `seed`.

    The page compares them with r(s) itself, so the marks follow every slider without a
    round trip and agree bit for bit with the library (torch's RNG cannot run in JS).
    """
    generator = torch.Generator().manual_seed(seed)
    values: list[float] = torch.rand((1, n), generator=generator)[0].tolist()
    return values


def _run_label(run: Path, name: str) -> str:
    """'<name> (<method> on <model>)': the run's config says what it was; a missing or odd one
    only costs the label."""
    try:
        config = json.loads((run / runfolder.CONFIG).read_text())
        return f"{name} ({config.get('method', '?')} on {config.get('model', '?')})"
    except (OSError, ValueError, AttributeError):
        return name


def _best_model(run: Path, label: str) -> dict[str, Any] | None:
    """The run's best checkpoint (`run:<id>:best`) where it was kept, with its metric."""
    best = runfolder.best_checkpoint(run)
    if best is None:
        return None
    summary = runfolder.read_json(run / runfolder.SUMMARY) or {}
    step = runfolder.checkpoint_step(best)
    value = (summary.get(runfolder.BEST_METRICS) or {}).get(summary.get(runfolder.BEST_METRIC))
    shown = f", {summary[runfolder.BEST_METRIC]} {value:.4f}" if isinstance(value, float) else ""
    return {"spec": f"run:{run.name}:best", "label": f"{label}: best (step {step}{shown})"} | {
        "run_id": run.name,
        "which": runfolder.BEST_MODEL,
        "step": step,
    }


def run_models(run: Path, name: str | None = None) -> list[dict[str, Any]]:
    """What Inspect can load from one run: its final model (`run:<id>`), its best checkpoint
    (`run:<id>:best`), then each complete checkpoint from the last (`run:<id>:<step>`, the
    weights as they were after that step). `name`: the run's name in the runs table."""
    name = name or run.name
    label = _run_label(run, name)
    found: list[dict[str, Any]] = []
    if runfolder.has_final_model(run):
        found.append(
            {"spec": f"run:{run.name}", "label": f"{label}: final", "run_id": run.name}
            | {"which": runfolder.FINAL_MODEL, "step": None}
        )
    if (best := _best_model(run, label)) is not None:
        found.append(best)
    for checkpoint in reversed(runfolder.checkpoints(run)):
        step = runfolder.checkpoint_step(checkpoint)
        found.append(
            {"spec": f"run:{run.name}:{step}", "label": f"{label}: step {step}"}
            | {"run_id": run.name, "which": "step", "step": step}
        )
    # The picker groups a run's weights under its label and names each within the group; the
    # page calls the weights by the run's name (and which, when not the final model).
    return [_named(m, name, label) for m in found]


def _named(model: dict[str, Any], name: str, label: str) -> dict[str, Any]:
    option = _option(model)
    shown = name if model["which"] == runfolder.FINAL_MODEL else f"{name} · {option}"
    return {**model, "run_label": label, "option": option, "name": shown}


def _option(model: dict[str, Any]) -> str:
    """'final model', 'best (step 8, eval/loss 2.8851)' or 'step 4'."""
    if model["which"] == runfolder.FINAL_MODEL:
        return "final model"
    if model["which"] == runfolder.BEST_MODEL:
        return str(model["label"]).rsplit(": ", 1)[-1]
    return f"step {model['step']}"


def list_checkpoints(
    runs_path: Path, names: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every run's final model, best checkpoint and complete checkpoints (run_models), newest
    run first. `names`: run id -> the name the runs table gives it (a study's runs are named
    after it)."""
    if not runs_path.is_dir():
        return []
    found: list[tuple[float, list[dict[str, Any]]]] = []
    for run in runs_path.iterdir():
        if not runfolder.is_run_id(run.name):
            continue
        if not (models := run_models(run, (names or {}).get(run.name))):
            continue
        newest = run / runfolder.MODEL
        if models[0]["which"] != runfolder.FINAL_MODEL:
            newest = runfolder.checkpoint_dir(run, models[0]["step"])
        try:
            when = newest.stat().st_mtime
        except OSError:  # rotated away by a running trainer meanwhile: list it last
            when = 0.0
        found.append((when, models))
    return [m for _, models in sorted(found, key=lambda x: x[0], reverse=True) for m in models]
