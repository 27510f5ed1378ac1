"""Instruction data through a chat template: trained tokens, truncation, batches, drops, training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from data_files import CONVERSATION, INSTRUCTION, RECORDS, variant, write
from tiny_model import CHAT_TEMPLATE_GENERATION
from typer.testing import CliRunner

from entrodrop.cli import app
from entrodrop.config import EntroDropConfig, RunConfig
from entrodrop.data import (
    ChatTemplateMissing,
    DataError,
    TokenRows,
    read_data_file,
    render_conversation,
    tokenize_conversations,
)
from entrodrop.policy import IGNORE_INDEX, select_drops, select_random_drops
from entrodrop.training.collator import BlockDataset, EntroDropCollator
from entrodrop.training.drops import DropPolicy

TWO_TURNS = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What does len do?"},
    {"role": "assistant", "content": "Counts items."},
    {"role": "user", "content": "And abs?"},
    {"role": "assistant", "content": "The absolute value."},
]


def trained_text(tokenizer: Any, ids: list[int], trained: list[bool]) -> str:
    return "".join(tokenizer.decode([i]) for i, t in zip(ids, trained, strict=True) if t)


def test_only_answers_and_their_end_of_turn_are_trained(tiny_chat_loaded: Any) -> None:
    tok = tiny_chat_loaded.tokenizer
    r = render_conversation(tok, TWO_TURNS, with_roles=True)
    # Prompt and template tokens never carry loss: exactly the answers and their end markers.
    assert (
        trained_text(tok, r.ids, r.trained)
        == "Counts items.<|im_end|>\nThe absolute value.<|im_end|>\n"
    )
    assert not r.trained[0]
    assert r.roles is not None and r.segments is not None
    for t, flag in enumerate(r.trained):
        if flag:
            assert r.roles[t] == "assistant"
        if r.roles[t] in ("system", "user"):
            assert not flag
    content = "".join(
        tok.decode([i]) for i, s, role in zip(r.ids, r.segments, r.roles, strict=True)
        if s == "content" and role == "user"
    )  # fmt: skip
    assert content == "What does len do?And abs?"
    everything = render_conversation(tok, TWO_TURNS, train_on="all")
    assert everything.ids == r.ids and everything.trained == [t > 0 for t in range(len(r.ids))]


def test_the_generation_mask_and_prefix_rendering_agree(tiny_chat_loaded: Any) -> None:
    tok = tiny_chat_loaded.tokenizer
    by_prefix = render_conversation(tok, TWO_TURNS)
    by_mask = render_conversation(tok, TWO_TURNS, template=CHAT_TEMPLATE_GENERATION)
    assert by_mask.ids == by_prefix.ids and by_mask.trained == by_prefix.trained


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_the_same_conversation_in_every_format_gives_the_same_tokens_and_mask(
    tiny_chat_loaded: Any, tmp_path: Path, suffix: str
) -> None:
    tok = tiny_chat_loaded.tokenizer
    results = []
    for fmt in INSTRUCTION:
        path = write(tmp_path / f"{fmt}{suffix}", [variant(fmt, i) for i in range(3)])
        examples = tokenize_conversations(read_data_file(path).conversations(), tok, 256)
        results.append((examples.ids, examples.trained))
    assert all(r == results[0] for r in results)
    assert 0 < sum(map(sum, results[0][1])) < sum(map(len, results[0][0]))


def test_a_model_without_a_chat_template_gets_a_clear_error(tiny_loaded: Any) -> None:
    with pytest.raises(ChatTemplateMissing) as err:
        render_conversation(tiny_loaded.tokenizer, CONVERSATION, model_name="tiny-llama")
    message = str(err.value)
    assert "the model tiny-llama has no chat template" in message
    assert "plain text" in message and "chat_template.jinja" in message


def test_truncation_is_counted_and_drop_leaves_examples_out(tiny_chat_loaded: Any) -> None:
    tok = tiny_chat_loaded.tokenizer
    long_answer = [*CONVERSATION[:2], {"role": "assistant", "content": "word " * 200}]
    convs = [CONVERSATION, long_answer, CONVERSATION]
    n_short = len(render_conversation(tok, CONVERSATION).ids)
    cut = tokenize_conversations(convs, tok, n_short + 5)
    assert (cut.truncated, cut.dropped, len(cut.ids)) == (1, 0, 3)
    assert max(len(i) for i in cut.ids) == n_short + 5
    left_out = tokenize_conversations(convs, tok, n_short + 5, truncation="drop")
    assert (left_out.truncated, left_out.dropped, left_out.source) == (1, 1, [0, 2])
    # An answer that starts past seq_len leaves nothing trained: that example is left out too.
    prompt_only = tokenize_conversations([long_answer], tok, 10)
    assert (prompt_only.truncated, prompt_only.dropped, prompt_only.ids) == (1, 1, [])


# ---------------------------------------------------------------- batches and drops


@pytest.fixture
def rows(tiny_chat_loaded: Any) -> TokenRows:
    convs = [variant("messages", i)["messages"] for i in range(3)] + [TWO_TURNS]
    examples = tokenize_conversations(convs, tiny_chat_loaded.tokenizer, 256)
    return TokenRows.from_examples(examples, tiny_chat_loaded.tokenizer.pad_token_id)


def test_a_padded_batch_has_the_loss_of_its_examples_alone(
    tiny_chat_loaded: Any, rows: TokenRows
) -> None:
    model = tiny_chat_loaded.model
    assert rows.padded
    dataset = BlockDataset.from_rows(rows)
    features = [dataset[i] for i in range(len(dataset))]
    batch = EntroDropCollator(pad_token_id=tiny_chat_loaded.tokenizer.pad_token_id)(features)
    assert set(batch) == {"input_ids", "labels", "attention_mask", "example_index"}
    with torch.no_grad():
        alone = [
            model(input_ids=f["input_ids"][None], labels=f["labels"][None]).loss for f in features
        ]
        counts = [int((f["labels"][1:] != IGNORE_INDEX).sum()) for f in features]
        expected = sum(a * n for a, n in zip(alone, counts, strict=True)) / sum(counts)
        inputs = {k: v for k, v in batch.items() if k != "example_index"}
        padded = model(**inputs).loss
    # The batch's loss is the token-weighted mean of each example's own loss: no example sees
    # another, padding changes nothing and only answer tokens count.
    assert float(padded) == pytest.approx(float(expected), abs=1e-5)


def test_candidates_are_answer_tokens_only(rows: TokenRows) -> None:
    torch.manual_seed(0)
    entropies = torch.rand(rows.ids.shape) * 5  # (N, T)
    entropies[:, 0] = float("nan")
    entropies[rows.attention_mask == 0] = float("nan")
    cfg = EntroDropConfig(rate_max=1.0, schedule="constant", quantile=0.9)
    drops = select_drops(entropies, cfg, 1.0, trained=rows.trained)
    assert drops.any() and not (drops & ~rows.trained).any()
    random = select_random_drops(entropies, cfg, 1.0, trained=rows.trained)
    assert random.any() and not (random & ~rows.trained).any()
    everywhere = EntroDropConfig(rate_max=1.0, schedule="constant", quantile=0.9, drop_scope="all")
    assert (select_drops(entropies, everywhere, 1.0, trained=rows.trained) & ~rows.trained).any()


def test_random_matches_the_count_within_the_scope(rows: TokenRows) -> None:
    entropies = torch.rand(rows.ids.shape) * 5
    entropies[rows.attention_mask == 0] = float("nan")
    cfg = EntroDropConfig(rate_max=1.0, schedule="constant", quantile=0.3)
    ent_counts, rnd_counts = [], []
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        ent_counts.append(int(select_drops(entropies, cfg, 1.0, g, trained=rows.trained).sum()))
        g = torch.Generator().manual_seed(seed)
        rnd_counts.append(
            int(select_random_drops(entropies, cfg, 1.0, g, trained=rows.trained).sum())
        )
    mean_ent, mean_rnd = sum(ent_counts) / 200, sum(rnd_counts) / 200
    assert mean_rnd == pytest.approx(mean_ent, rel=0.1)


def test_the_collator_drops_only_trained_tokens(rows: TokenRows) -> None:
    entropies = torch.rand(rows.ids.shape) * 5
    dataset = BlockDataset.from_rows(rows, entropies)
    cfg = EntroDropConfig(rate_max=1.0, schedule="constant", drop_mode="loss", quantile=0.9)
    collator = EntroDropCollator(policy=DropPolicy(cfg, tau=4.5), pad_token_id=1)
    batch = collator([dataset[i] for i in range(len(dataset))])
    trained = torch.zeros_like(batch["labels"], dtype=torch.bool)
    trained[:, : rows.trained.shape[1]] = rows.trained
    dropped = (batch["labels"] == IGNORE_INDEX) & trained
    assert dropped.any()
    assert (batch["labels"][~trained] == IGNORE_INDEX).all()  # prompts and padding: no loss


# ---------------------------------------------------------------- preview == collator


def test_the_first_batch_preview_is_what_the_collator_does(
    tiny_chat_loaded: Any, tmp_path: Path
) -> None:
    from entrodrop.scoring import score_ids
    from entrodrop.training.preview import PROGRESS_POINTS, first_batch
    from entrodrop.training.run import load_run_data

    path = write(
        tmp_path / "chat.jsonl",
        [variant("messages", i) for i in range(12)] + [{"messages": TWO_TURNS}],
    )
    cfg = RunConfig(
        model="tiny", dataset=str(path), seq_len=256, batch_size=3, method="entrodrop",
        entrodrop={"rate_max": 1.0, "quantile": 0.6},
    )  # fmt: skip
    preview = first_batch(tiny_chat_loaded, cfg)
    # The training side, independently: the run's rows, scored, batched by the collator.
    run_rows = load_run_data(cfg, tiny_chat_loaded.tokenizer, "tiny").train
    first = run_rows.select(torch.arange(3))
    ids = [first.ids[b, : int(first.lengths[b])].tolist() for b in range(3)]
    assert [[t["id"] for t in row] for row in preview["rows"]] == ids
    assert [[t["trained"] for t in row] for row in preview["rows"]] == [
        first.trained[b, : len(ids[b])].tolist() for b in range(3)
    ]
    entropies = torch.full(first.ids.shape, float("nan"))
    for b, arr in enumerate(score_ids(tiny_chat_loaded, ids, top_k=0)):
        entropies[b, : len(ids[b])] = arr.entropy
    dataset = BlockDataset.from_rows(first, entropies)
    batch = EntroDropCollator()([dataset[i] for i in range(3)])
    for k, s in enumerate(PROGRESS_POINTS):
        collator = EntroDropCollator(policy=DropPolicy(cfg.entrodrop, tau=preview["tau"]))
        drops, _ = collator.select(dict(batch), s)
        shown = [[t["dropped"][k] for t in row] for row in preview["rows"]]
        assert shown == [drops[b, : len(ids[b])].tolist() for b in range(3)]
        assert all(t["trained"] for row in preview["rows"] for t in row if t["dropped"][k])
    assert preview["points"][-1]["n_dropped"] > 0 and preview["instruction"]


# ---------------------------------------------------------------- training on instruction data


@pytest.mark.parametrize(
    "entrodrop",
    [
        {"entropy_source": "online", "drop_mode": "loss"},
        {"entropy_source": "online", "drop_mode": "input"},
        {"entropy_source": "reference", "drop_mode": "both"},
    ],
)
def test_training_on_messages_logs_the_data_and_drops_within_the_answers(
    tiny_chat_model_dir: Path, tmp_path: Path, entrodrop: dict[str, Any]
) -> None:
    from entrodrop.training.run import train

    path = write(tmp_path / "chat.jsonl", [variant("messages", i) for i in range(20)])
    cfg = RunConfig(
        model=str(tiny_chat_model_dir), dataset=str(path), seq_len=256, batch_size=4,
        max_steps=4, eval_every=2, save_model=False, save_checkpoints=False,
        entrodrop={**entrodrop, "rate_max": 1.0, "midpoint": 0.0},
    )  # fmt: skip
    summary = train(cfg, tmp_path / "run")
    assert summary["status"] == "succeeded"
    report = summary["data"]
    assert report["format"] == "messages" and report["examples"] == 20
    assert 0 < report["trained_tokens"] < report["tokens"] and report["truncated"] == 0
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "data: messages format, 20 examples" in log
    assert "training data: 16 examples, 0 longer than seq_len 256 (truncate)" in log
    assert summary["final"]["eval/loss"] > 0
    if entrodrop["entropy_source"] == "reference" or entrodrop["drop_mode"] == "loss":
        assert 0.0 < summary["final"]["drop/fraction_realised"] <= 0.6  # of answer tokens
    result = CliRunner().invoke(
        app, ["data", str(path), "--model", str(tiny_chat_model_dir), "--seq-len", "256", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == report  # entrodrop data == summary.json's "data"


def test_held_out_loss_counts_answer_tokens_only(tiny_chat_loaded: Any, rows: TokenRows) -> None:
    from entrodrop.training.diagnostics import Diagnostics

    low = torch.zeros_like(rows.trained)
    diagnostics = Diagnostics(rows, low, None)
    loss, valid = diagnostics.token_losses(tiny_chat_loaded.model, rows)
    assert loss.shape == rows.ids.shape and torch.equal(valid, rows.trained)
    metrics = diagnostics.evaluate(tiny_chat_loaded.model)
    assert metrics["eval/loss"] == pytest.approx(float(loss[rows.trained].mean()), rel=1e-5)


def test_entrodrop_data_reports_each_format_alike(
    tiny_chat_model_dir: Path, tmp_path: Path
) -> None:
    reports = []
    for fmt in ("messages", "alpaca", "sharegpt"):
        path = write(tmp_path / f"{fmt}.jsonl", [variant(fmt, i) for i in range(4)])
        args = [
            "data",
            str(path),
            "--model",
            str(tiny_chat_model_dir),
            "--seq-len",
            "256",
            "--json",
        ]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["format"] == fmt
        reports.append({k: v for k, v in report.items() if k != "format"})
    assert reports[0] == reports[1] == reports[2]
    assert 0 < reports[0]["trained_tokens"] < reports[0]["tokens"]


def test_entrodrop_data_and_train_refuse_bad_data_before_any_folder(
    tiny_chat_model_dir: Path, tiny_model_dir: Path, tmp_path: Path, entrodrop_home: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS["messages"]) + "\n" + json.dumps(RECORDS["alpaca"]) + "\n")
    result = CliRunner().invoke(app, ["data", str(bad), "--model", str(tiny_chat_model_dir)])
    assert result.exit_code == 2 and "bad.jsonl line 2: mixed formats" in result.output
    good = write(tmp_path / "good.jsonl", [variant("messages", i) for i in range(5)])
    for dataset, model, needle in (
        (bad, tiny_chat_model_dir, "bad.jsonl line 2: mixed formats"),
        (good, tiny_model_dir, "has no chat template"),
        (good, tiny_chat_model_dir, "no example has a trained token within seq_len 8"),
    ):
        run_dir = tmp_path / "run"
        args = [
            "train",
            "--model",
            str(model),
            "--dataset",
            str(dataset),
            "--run-dir",
            str(run_dir),
        ]
        result = CliRunner().invoke(
            app, [*args, "--seq-len", "8" if "seq_len 8" in needle else "256"]
        )
        assert result.exit_code == 2 and needle in result.output, result.output
        assert not run_dir.exists() and not (entrodrop_home / "runs").exists()
    with pytest.raises(DataError, match="mixed formats"):
        read_data_file(bad)


def test_example_tokens_give_the_pages_three_layers(tiny_chat_loaded: Any) -> None:
    from entrodrop.data import example_tokens

    shown = example_tokens([TWO_TURNS, CONVERSATION], tiny_chat_loaded.tokenizer, seq_len=12)
    assert [e["index"] for e in shown] == [0, 1] and all(e["truncated"] for e in shown)
    tokens = shown[0]["tokens"]
    assert len(tokens) == 12 and set(tokens[0]) == {
        "index",
        "id",
        "text",
        "trained",
        "role",
        "segment",
    }
    full = example_tokens([TWO_TURNS], tiny_chat_loaded.tokenizer, seq_len=4096)[0]
    assert (
        "".join(t["text"] for t in full["tokens"])
        == render_conversation(tiny_chat_loaded.tokenizer, TWO_TURNS).text
    )
    assert "".join(t["text"] for t in tokens) == "".join(t["text"] for t in full["tokens"][:12])


def test_chat_runs_draw_batches_grouped_by_length(
    tiny_chat_loaded: Any, rows: TokenRows, tmp_path: Path
) -> None:
    from transformers import TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from entrodrop.training.run import group_by_length
    from entrodrop.training.trainer import EntroDropTrainer

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    group_by_length(args)
    trainer = EntroDropTrainer(
        model=tiny_chat_loaded.model,
        args=args,
        train_dataset=BlockDataset.from_rows(rows),
        processing_class=tiny_chat_loaded.tokenizer,
    )
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.lengths == rows.lengths.tolist()  # each example's own length, not the padding
