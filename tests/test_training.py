"""Training: every method runs end to end on a tiny model, drops follow the policy, runs stop/resume."""

from __future__ import annotations

import json
import math
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from entrodrop.config import EntroDropConfig, RunConfig
from entrodrop.policy import IGNORE_INDEX, drop_rate
from entrodrop.runfolder import RunFolder
from entrodrop.training import (
    BlockDataset,
    DropPolicy,
    DropStats,
    EntroDropCollator,
    EntroDropTrainer,
    EntropyMemory,
    ScheduleCallback,
    StatusCallback,
    apply_hidden_dropout,
)
from entrodrop.training.callbacks import stage_text
from entrodrop.training.run import TrainingFailed, main, train
from entrodrop.training.trainer import causal_lm_loss

EVAL_NAMES = {"eval/loss", "eval/loss_low_entropy", "eval/loss_high_entropy", "general/loss"}
DROP_NAMES = {
    "drop/rate_scheduled",
    "drop/fraction_realised",
    "drop/entropy_dropped",
    "drop/entropy_kept",
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one torch thread


@pytest.fixture
def fresh_tiny(tiny_model_dir: Path) -> Any:
    """A private copy of the tiny model, for tests that change or train it."""
    import entrodrop

    return entrodrop.load(str(tiny_model_dir), device="cpu", dtype="float32")


def config(model: Path, data: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = {
        "model": str(model),
        "dataset": str(data),
        "max_steps": 3,
        "seq_len": 32,
        "batch_size": 4,
        "eval_every": 2,
        "max_train_tokens": 2048,
        "max_eval_tokens": 256,
        "learning_rate": 1e-3,
    }
    base.update(kw)
    return RunConfig(**base)


def names_by_step(run_dir: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for row in RunFolder(run_dir).read_metrics():
        out.setdefault(row["step"], []).append(row["name"])
    return out


def values(run_dir: Path, name: str) -> list[float]:
    return [r["value"] for r in RunFolder(run_dir).read_metrics() if r["name"] == name]


# ---------------------------------------------------------------- every method, end to end


@pytest.mark.parametrize(
    "method,entrodrop",
    [
        ("none", {}),
        ("entrodrop", {"entropy_source": "online", "drop_mode": "loss"}),
        ("entrodrop", {"entropy_source": "reference", "drop_mode": "both"}),
        ("random", {"entropy_source": "reference", "drop_mode": "input"}),
        ("weight_decay", {}),
        ("hidden_dropout", {}),
        ("label_smoothing", {}),
        ("neftune", {}),
    ],
)
def test_each_method_runs_and_writes_the_run_folder(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, method: str, entrodrop: dict[str, Any]
) -> None:
    run_dir = tmp_path / "run"
    summary = train(
        config(tiny_model_dir, small_corpus, method=method, entrodrop=entrodrop), run_dir
    )
    assert summary["status"] == "succeeded" and summary["steps"] == 3
    status = RunFolder(run_dir).read_status()
    assert status["status"] == "succeeded" and status["progress"] == 1.0 and status["error"] is None
    by_step = names_by_step(run_dir)
    # The starting model, the first step's training loss, eval_every=2 and the last step.
    assert sorted(by_step) == [0, 1, 2, 3]
    assert set(by_step.pop(0)) == EVAL_NAMES  # step 0: the starting model's evaluation only
    first = set(by_step.pop(1))  # step 1: the training loss (and drops), no evaluation
    assert "train/loss" in first and not first & EVAL_NAMES
    assert (first >= DROP_NAMES) == (method in ("entrodrop", "random"))
    for step_names in by_step.values():
        assert len(step_names) == len(set(step_names))  # each metric once per step
        assert {"train/loss", "train/learning_rate"} | EVAL_NAMES <= set(step_names)
        assert (DROP_NAMES & set(step_names) != set()) == (method in ("entrodrop", "random"))
    model_files = {p.name for p in (run_dir / "model").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= model_files
    assert not [f for f in model_files if f.endswith((".bin", ".pt", ".pth"))]
    assert (run_dir / "checkpoint-3" / "model.safetensors").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["final_eval_loss"] > 0
    assert "succeeded" in (run_dir / "log.txt").read_text()


def test_named_heldout_and_general_files_are_what_is_evaluated(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    import pydoc_data.topics

    from entrodrop.data import read_user_file

    other = tmp_path / "other.txt"  # topics the small corpus does not hold
    texts = [t for _, t in sorted(pydoc_data.topics.topics.items())][40:44]
    other.write_text("\n\n\n".join(t.strip() for t in texts), encoding="utf-8")
    run_dir = tmp_path / "run"
    cfg = config(
        tiny_model_dir, small_corpus, max_steps=1, heldout_dataset=str(other),
        general_dataset=str(other), save_checkpoints=False, save_model=False,
    )  # fmt: skip
    assert train(cfg, run_dir)["status"] == "succeeded"
    # The same file as held-out and general text: the same blocks, so the same loss.
    assert values(run_dir, "eval/loss") == pytest.approx(values(run_dir, "general/loss"))
    log = (run_dir / "log.txt").read_text()
    n_train, n_other = len(read_user_file(small_corpus)), len(read_user_file(other))
    assert f"all {n_train} documents train; held out: other.txt ({n_other} documents)" in log
    assert f"general text: {other} ({n_other} documents)" in log


def test_saved_model_loads_back(tiny_model_dir: Path, small_corpus: Path, tmp_path: Path) -> None:
    import entrodrop

    run_dir = tmp_path / "run"
    train(config(tiny_model_dir, small_corpus, method="hidden_dropout", max_steps=2), run_dir)
    loaded = entrodrop.load(str(run_dir / "model"), device="cpu", dtype="float32")
    assert loaded.model.config.attention_dropout == 0.0  # the baseline's dropout is not saved


# ---------------------------------------------------------------- the drops


def test_online_loss_drops_follow_the_schedule(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    ed = {"entropy_source": "online", "drop_mode": "loss", "schedule": "constant", "rate_max": 0.6}
    run_dir = tmp_path / "run"
    train(
        config(tiny_model_dir, small_corpus, entrodrop=ed, batch_size=8, max_steps=4, eval_every=4),
        run_dir,
    )
    # Logged at step 1 (the first step) and step 4 (steps 2-4, 24 blocks).
    assert values(run_dir, "drop/rate_scheduled") == pytest.approx([0.6, 0.6])
    step1, fraction = values(run_dir, "drop/fraction_realised")
    # Candidates are the batch's lower half (quantile 0.5), each dropped with probability 0.6.
    assert fraction == pytest.approx(0.6 * 0.5, abs=0.06)
    assert step1 == pytest.approx(0.6 * 0.5, abs=0.15)  # one batch of 8 blocks: more spread
    assert values(run_dir, "drop/entropy_dropped")[-1] < values(run_dir, "drop/entropy_kept")[-1]


def test_sigmoid_schedule_is_exact_per_step(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """The reference-source drop happens at the step that trains on the batch: r(s) exactly."""
    ed = {"entropy_source": "reference", "drop_mode": "input"}
    run_dir = tmp_path / "run"
    train(config(tiny_model_dir, small_corpus, entrodrop=ed, max_steps=4, eval_every=2), run_dir)
    cfg = EntroDropConfig(**ed)
    expected = [  # logged at step 1 (the first step alone), step 2, and step 4 (steps 3-4)
        drop_rate(0 / 4, cfg),
        drop_rate(1 / 4, cfg),
        (drop_rate(2 / 4, cfg) + drop_rate(3 / 4, cfg)) / 2,
    ]
    assert values(run_dir, "drop/rate_scheduled") == pytest.approx(expected)


def test_online_loss_mode_excludes_low_entropy_targets(fresh_tiny: Any, tmp_path: Path) -> None:
    """One forward: with rate 1, the loss is the mean over targets above the batch's median entropy."""
    from transformers import TrainingArguments

    from entrodrop.scoring import token_entropies

    model = fresh_tiny.model
    blocks = torch.randint(3, model.config.vocab_size, (4, 16))  # (B, T)
    cfg = EntroDropConfig(
        entropy_source="online", drop_mode="loss", schedule="constant", rate_max=1.0
    )
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, max_steps=1)
    trainer = EntroDropTrainer(
        model=model, args=args, train_dataset=BlockDataset(blocks), entrodrop=cfg
    )
    model.train()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    loss = trainer.compute_loss(model, batch)
    with torch.no_grad():
        logits = model(input_ids=blocks).logits  # (B, T, V)
    ent = token_entropies(logits)
    tau = float(
        torch.kthvalue(ent[:, 1:].flatten(), int(0.5 * (ent[:, 1:].numel() - 1)) + 1).values
    )
    labels = blocks.masked_fill(ent <= tau, IGNORE_INDEX)
    assert float(loss.detach()) == pytest.approx(float(causal_lm_loss(logits, labels)), rel=1e-4)
    assert 0.4 < float((labels[:, 1:] == IGNORE_INDEX).float().mean()) < 0.6
    model.eval()


def _policy(mode: str) -> DropPolicy:
    cfg = EntroDropConfig(
        selection="threshold", threshold=1.0, schedule="constant", rate_max=1.0, drop_mode=mode
    )
    return DropPolicy(cfg)


def _features() -> list[dict[str, Any]]:
    ids = torch.arange(10, 18).view(2, 4)  # (B, T)
    ent = torch.tensor([[math.nan, 0.5, 2.0, 0.1], [math.nan, 3.0, 0.2, 0.9]])  # (B, T)
    return [{"input_ids": ids[i], "entropies": ent[i], "example_index": i} for i in range(2)]


LOW = torch.tensor([[False, True, False, True], [False, False, True, True]])  # entropy <= 1.0


def test_input_mode_replaces_ids_with_the_drop_token_and_keeps_labels() -> None:
    batch = EntroDropCollator(policy=_policy("input"), drop_token_id=0)(_features())
    ids = torch.arange(10, 18).view(2, 4)
    assert torch.equal(batch["input_ids"], ids.masked_fill(LOW, 0))
    assert torch.equal(batch["labels"], ids)  # the dropped token's own target is kept
    assert "entropies" not in batch


def test_loss_mode_sets_labels_to_ignore_index() -> None:
    batch = EntroDropCollator(policy=_policy("loss"))(_features())
    ids = torch.arange(10, 18).view(2, 4)
    assert torch.equal(batch["input_ids"], ids)
    assert torch.equal(batch["labels"], ids.masked_fill(LOW, IGNORE_INDEX))
    both = EntroDropCollator(policy=_policy("both"), drop_token_id=1)(_features())
    assert torch.equal(both["input_ids"], ids.masked_fill(LOW, 1))
    assert torch.equal(both["labels"], ids.masked_fill(LOW, IGNORE_INDEX))


def test_deferred_collator_drops_only_when_asked() -> None:
    stats = DropStats()
    collator = EntroDropCollator(policy=_policy("input"), stats=stats, deferred=True)
    batch = collator(_features())
    assert torch.equal(batch["input_ids"], torch.arange(10, 18).view(2, 4))
    assert "entropies" in batch and float(stats.sums.sum()) == 0
    dropped = collator.drop(batch, progress=0.5)
    assert int((dropped["input_ids"] == 0).sum()) == int(LOW.sum())
    metrics = DropStats.metrics(stats.sums)
    assert metrics["drop/fraction_realised"] == pytest.approx(4 / 6)
    assert metrics["drop/entropy_dropped"] == pytest.approx((0.5 + 0.1 + 0.2 + 0.9) / 4)
    assert metrics["drop/entropy_kept"] == pytest.approx((2.0 + 3.0) / 2)


def test_entropy_memory_never_drops_unseen_tokens() -> None:
    memory = EntropyMemory(n_examples=2, seq_len=4)
    collator = EntroDropCollator(policy=_policy("input"), memory=memory)
    first = collator(_features())
    assert torch.equal(first["input_ids"], torch.arange(10, 18).view(2, 4))  # nothing seen yet
    memory.update(torch.tensor([0, 1]), torch.stack([f["entropies"] for f in _features()]))
    second = collator(_features())
    assert torch.equal(second["input_ids"] == 0, LOW)


def test_online_input_mode_drops_once_tokens_were_seen(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """8 blocks, 4 per step: steps 1-2 see every block once (no drops), steps 3-4 drop."""
    ed = {"entropy_source": "online", "drop_mode": "input", "schedule": "constant", "rate_max": 1.0}
    run_dir = tmp_path / "run"
    cfg = config(tiny_model_dir, small_corpus, entrodrop=ed, max_train_tokens=256, max_steps=4)
    train(cfg, run_dir)
    # Logged at step 1 (the first step), step 2 and step 4 (steps 3-4).
    step1, step2, later = values(run_dir, "drop/fraction_realised")
    assert step1 == step2 == 0.0 and 0.3 < later < 0.7


def test_plain_trainer_with_the_collator(fresh_tiny: Any, tmp_path: Path) -> None:
    """The documented plug-in for a user's own Trainer: collator + ScheduleCallback."""
    from transformers import Trainer, TrainingArguments

    from entrodrop.policy import entropy_threshold

    blocks = torch.randint(3, fresh_tiny.model.config.vocab_size, (8, 16))  # (N, T)
    ent = torch.rand(8, 16) * 4  # stand-in reference entropies
    ent[:, 0] = math.nan
    cfg = EntroDropConfig(entropy_source="reference", drop_mode="input", schedule="constant")
    collator = EntroDropCollator(
        policy=DropPolicy(cfg, tau=entropy_threshold(ent, cfg)), drop_token_id=0
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        report_to=[],
        use_cpu=True,
        max_steps=2,
        per_device_train_batch_size=4,
        remove_unused_columns=False,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=fresh_tiny.model,
        args=args,
        train_dataset=BlockDataset(blocks, ent),
        data_collator=collator,
        callbacks=[ScheduleCallback(collator.clock)],
    )
    out = trainer.train()
    assert out.global_step == 2 and math.isfinite(out.training_loss)
    assert collator.clock.progress == pytest.approx(1 / 2)


def test_hidden_dropout_hooks_llama_and_undo_restores(fresh_tiny: Any) -> None:
    model = fresh_tiny.model
    patch = apply_hidden_dropout(model, 0.5)
    assert (
        model.config.attention_dropout == 0.5
        and len(patch.hooks) == 2 * model.config.num_hidden_layers
    )
    x = torch.randint(3, 50, (1, 8))
    model.train()
    with torch.no_grad():
        a, b = model(input_ids=x).logits, model(input_ids=x).logits
    assert not torch.allclose(a, b)  # dropout is active in train mode
    patch.undo(model)
    model.eval()
    assert model.config.attention_dropout == 0.0
    assert all(
        m.attention_dropout == 0.0 for m in model.modules() if hasattr(m, "attention_dropout")
    )


# ---------------------------------------------------------------- caches and reproducibility


def test_reference_cache_is_reused(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, entrodrop_home: Path
) -> None:
    ed = {"entropy_source": "reference", "drop_mode": "loss"}
    cfg = config(tiny_model_dir, small_corpus, entrodrop=ed, max_steps=2)
    train(cfg, tmp_path / "a")
    cache = sorted((entrodrop_home / "cache" / "reference").glob("*.safetensors"))
    assert len(cache) == 2  # the training blocks and the held-out blocks
    mtimes = [p.stat().st_mtime_ns for p in cache]
    train(cfg, tmp_path / "b")
    assert sorted((entrodrop_home / "cache" / "reference").glob("*.safetensors")) == cache
    assert [p.stat().st_mtime_ns for p in cache] == mtimes
    log_b = (tmp_path / "b" / "log.txt").read_text()
    assert "(training, 64 blocks): cached" in log_b and "scoring with" not in log_b
    # A different sequence length is different data: scored afresh.
    train(cfg.model_copy(update={"seq_len": 16}), tmp_path / "c")
    assert len(list((entrodrop_home / "cache" / "reference").glob("*.safetensors"))) == 4


def test_same_seed_reproduces_the_losses(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    ed = {"entropy_source": "online", "drop_mode": "loss", "schedule": "constant", "rate_max": 0.5}
    cfg = config(
        tiny_model_dir,
        small_corpus,
        entrodrop=ed,
        max_steps=4,
        eval_every=1,
        dtype="float32",
        save_checkpoints=False,
    )
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    for name in ("train/loss", "drop/fraction_realised", "eval/loss"):
        assert values(tmp_path / "a", name) == values(tmp_path / "b", name)
    other = cfg.model_copy(update={"entrodrop": EntroDropConfig(**{**ed, "seed": 1})})
    train(other, tmp_path / "c")
    assert values(tmp_path / "c", "drop/fraction_realised") != values(
        tmp_path / "a", "drop/fraction_realised"
    )


# ---------------------------------------------------------------- stop, resume, failure


def test_stop_file_cancels_with_a_checkpoint_then_resume_succeeds(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    ed = {"entropy_source": "reference", "drop_mode": "input"}
    cfg = config(
        tiny_model_dir, small_corpus, max_steps=6, eval_every=1, method="random", entrodrop=ed
    )

    def stop_after_first_log(rows: list[dict[str, Any]]) -> None:
        (run_dir / "STOP").touch()

    summary = train(cfg, run_dir, subscribers=[stop_after_first_log])
    assert summary["status"] == "cancelled"
    status = RunFolder(run_dir).read_status()
    assert status["status"] == "cancelled" and 0 < status["step"] < 6
    assert (run_dir / f"checkpoint-{status['step']}" / "model.safetensors").is_file()
    assert (run_dir / f"checkpoint-{status['step']}" / "entrodrop_state_0.safetensors").is_file()
    assert not (run_dir / "model").exists()

    (run_dir / "STOP").unlink()
    summary = train(cfg, run_dir, resume=True)
    assert summary["status"] == "succeeded" and summary["steps"] == 6
    assert RunFolder(run_dir).read_status()["status"] == "succeeded"
    rows = RunFolder(run_dir).read_metrics()
    counts = Counter((r["step"], r["name"]) for r in rows)
    assert max(counts.values()) == 1  # nothing logged twice across the two attempts
    assert {r["step"] for r in rows if r["name"] == "eval/loss"} == set(range(0, 7))
    assert "resuming from checkpoint-" in (run_dir / "log.txt").read_text()


def test_sigterm_cancels_after_saving_a_checkpoint(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    before = signal.getsignal(signal.SIGTERM)

    sent: list[int] = []

    def sigterm(rows: list[dict[str, Any]]) -> None:
        if not sent:  # a second signal would mean "stop now, without a checkpoint"
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)

    summary = train(
        config(tiny_model_dir, small_corpus, max_steps=6, eval_every=2),
        run_dir,
        subscribers=[sigterm],
    )
    assert summary["status"] == "cancelled"
    step = RunFolder(run_dir).read_status()["step"]
    assert step < 6 and (run_dir / f"checkpoint-{step}").is_dir()
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is restored


def test_sigterm_during_the_reference_prepass_cancels_before_its_last_batch(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-pass asks for the stop flag between batches: a SIGTERM there ends the run."""
    run_dir = tmp_path / "run"
    batches: list[tuple[str, int, int]] = []
    original = StatusCallback.reference_progress

    def watch(self: StatusCallback, what: str, done: int, total: int) -> None:
        original(self, what, done, total)
        batches.append((what, done, total))
        on_disk = RunFolder(run_dir).read_status()
        # Once status.json says the pre-pass is under way and one batch is scored: SIGTERM.
        if on_disk.get("stage") == "reference" and done == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(StatusCallback, "reference_progress", watch)
    ed = {"entropy_source": "reference", "drop_mode": "loss"}
    summary = train(config(tiny_model_dir, small_corpus, entrodrop=ed), run_dir)
    assert summary["status"] == "cancelled"
    status = RunFolder(run_dir).read_status()
    assert status["status"] == "cancelled" and status["stage"] == "reference"
    assert [(what, done) for what, done, _ in batches] == [("training", 0), ("training", 1)]
    assert batches[-1][2] == 2  # 64 blocks of 32 tokens, 32 a batch: the second never ran
    assert not [r for r in RunFolder(run_dir).read_metrics() if r["name"] == "train/loss"]
    assert "cancelled before training" in (run_dir / "log.txt").read_text()


def test_the_online_source_names_no_reference_entropies() -> None:
    """An `online` run's pre-pass scores only a training sample and the held-out data, for the
    low/high-entropy split: its stages say that, not "reference entropies"."""
    texts = [stage_text("reference", 0, 3, what) for what in ("training sample", "held-out")]
    assert texts == [
        "scoring with the starting model (a sample of the training data: the entropy median for "
        "the low/high split) 0/3",
        "scoring with the starting model (held-out data: the low/high-entropy split) 0/3",
    ]
    assert not any("reference" in t for t in texts)


def test_status_names_each_stage_and_the_log_says_what_it_measures(
    tiny_model_dir: Path, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    written: list[dict[str, Any]] = []
    original = RunFolder.write_status

    def record(self: RunFolder, status: Any = None, **fields: Any) -> None:
        original(self, status, **fields)
        written.append(dict(self._status))

    monkeypatch.setattr(RunFolder, "write_status", record)
    ed = {"entropy_source": "reference", "drop_mode": "input"}
    cfg = config(tiny_model_dir, small_corpus, entrodrop=ed, max_steps=4, eval_every=2)
    assert train(cfg, run_dir)["status"] == "succeeded"
    stages = [w["stage"] for w in written if w["status"] == "running"]
    order = [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]]
    # The step-0 evaluation, then steps with an evaluation at step 2 and at the last, step 4.
    assert order == [
        "loading",
        "reference",
        "evaluating",
        "training",
        "evaluating",
        "training",
        "evaluating",
    ]
    texts = [w["stage_text"] for w in written if w["status"] == "running"]
    assert (
        "scoring with the starting model (training data: reference entropies for the drops) 0/2"
        in texts
    )
    assert (
        "scoring with the starting model (held-out data: the low/high-entropy split) 0/1" in texts
    )
    assert "training step 2/4" in texts  # back to training after the step-2 evaluation
    during = [w for w in written if w.get("stage") == "evaluating" and w["status"] == "running"]
    assert {w.get("step") for w in during} >= {2}  # an evaluation says which step it follows
    # Starting (no ETA: nothing measured yet) until the first step ends; the pre-pass counts
    # down its own remaining time instead.
    running = [w for w in written if w["status"] == "running"]
    first = next(i for i, w in enumerate(running) if w.get("step", 0) >= 1)
    assert all(w["starting"] and w["eta_s"] is None for w in running[:first])
    assert not any(w["starting"] for w in running[first:])
    log_text = (run_dir / "log.txt").read_text()
    assert "evaluating" in log_text and "measured on the corrupted inputs" in log_text


def test_eta_counts_the_remaining_evaluations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """remaining steps x mean step time + remaining evaluations x mean evaluation time."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    from entrodrop.training import callbacks

    now = [100.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: now[0])
    status = StatusCallback(RunFolder(tmp_path), min_interval_s=0.0)
    args: Any = SimpleNamespace(eval_steps=2, eval_strategy="steps")
    state = TrainerState(max_steps=10, global_step=0)
    control = TrainerControl()
    status.on_train_begin(args, state, control)
    for step in (1, 2):
        status.on_step_begin(args, state, control)
        now[0] += 1.0  # each step takes 1 s
        state.global_step = step
        control.should_evaluate = step == 2
        status.on_step_end(args, state, control)
    assert RunFolder(tmp_path).read_status()["stage"] == "evaluating"
    now[0] += 10.0  # the evaluation takes 10 s
    status.on_evaluate(args, state, control)
    st = RunFolder(tmp_path).read_status()
    assert st["stage"] == "training" and st["stage_text"] == "training step 2/10"
    # 8 steps x 1 s + 4 evaluations (steps 4, 6, 8, 10) x 10 s
    assert st["eta_s"] == pytest.approx(8 * 1.0 + 4 * 10.0)
    assert callbacks.remaining_evaluations(3, 10, 2) == 4
    assert callbacks.remaining_evaluations(10, 10, 2) == 0
    # A run still starting has no ETA; its pre-pass counts down its own time (stage_eta_s).
    starting = StatusCallback(RunFolder(tmp_path / "b"), min_interval_s=0.0)
    starting.reference_progress("training", 0, 4)
    now[0] += 2.0  # the first of 4 batches took 2 s
    starting.reference_progress("training", 1, 4)
    st = RunFolder(tmp_path / "b").read_status()
    assert st["starting"] and st["eta_s"] is None and st["stage_eta_s"] == pytest.approx(6.0)


def test_bad_model_path_fails_with_the_message_in_status(
    small_corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingFailed, match="no model folder"):
        train(
            RunConfig(model=str(tmp_path / "missing"), dataset=str(small_corpus), max_steps=2),
            run_dir,
        )
    status = RunFolder(run_dir).read_status()
    assert status["status"] == "failed" and "no model folder" in status["error"]
    assert "run failed" in (run_dir / "log.txt").read_text()


def test_main_reads_config_json_and_exits_non_zero_on_failure(
    small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = RunConfig(model=str(tmp_path / "missing"), dataset=str(small_corpus), max_steps=2)
    (run_dir / "config.json").write_text(cfg.model_dump_json())
    assert main(["--run-dir", str(run_dir)]) == 1
    assert "no model folder" in capsys.readouterr().err
    (run_dir / "config.json").write_text('{"model": "x", "nope": 1}')
    assert main(["--run-dir", str(run_dir)]) == 2
    assert RunFolder(run_dir).read_status()["status"] == "failed"


def test_bad_dataset_fails_with_a_clear_message(tiny_model_dir: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(TrainingFailed, match="too few for one block"):
        train(config(tiny_model_dir, short), tmp_path / "run")
