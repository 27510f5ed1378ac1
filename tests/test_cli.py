"""The command line: score (table and JSON), errors, serve's safety checks, --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from entrodrop.cli import app
from entrodrop.network import is_loopback

runner = CliRunner()


@pytest.mark.parametrize("cmd", [[], ["serve"], ["score"], ["train"], ["prepare"]])
def test_help(cmd: list[str]) -> None:
    result = runner.invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_score_json(tiny_model_dir: Path) -> None:
    result = runner.invoke(
        app, ["score", "def f(x): return x", "--model", str(tiny_model_dir), "--json", "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_tokens"] == len(payload["tokens"]) > 3
    assert payload["tokens"][0]["entropy"] is None
    assert len(payload["tokens"][1]["top"]) == 2


def test_score_table_and_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("print('hello world')\n", encoding="utf-8")
    result = runner.invoke(app, ["score", "--file", str(f), "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "entropy" in result.output and "perplexity" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score"], "either TEXT or --file"),
        (["score", "   "], "empty"),
        (["score", "hi", "--model", "/no/such/folder"], "no model folder"),
        (["score", "--file", "/no/such/file.txt"], "no such file"),
    ],
)
def test_score_errors_are_messages(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_train_rejects_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"method": "magic", "learning_rate": -1}))
    result = runner.invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "method" in result.output and "learning_rate" in result.output
    cfg.write_text("{oops")
    assert "not valid JSON" in runner.invoke(app, ["train", "--config", str(cfg)]).output


def test_serve_refuses_public_bind_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENTRODROP_TOKEN", raising=False)
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "ENTRODROP_TOKEN" in result.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_serve_refuses_unwritable_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ENTRODROP_HOME", str(blocker / "home"))
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "not writable" in result.output


def test_train_end_to_end_on_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "run.json"
    cfg.write_text(
        json.dumps(
            {
                "model": str(tiny_model_dir),
                "method": "entrodrop",
                "max_steps": 2,
                "seq_len": 32,
                "batch_size": 2,
                "eval_every": 2,
                "max_eval_tokens": 256,
            }
        )
    )
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", "--config", str(cfg), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "run finished" in result.output
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert (run_dir / "metrics.jsonl").read_text().strip()
    scored = runner.invoke(app, ["score", "x = 1", "--model", str(run_dir / "model"), "--json"])
    assert scored.exit_code == 0 and json.loads(scored.stdout)["n_tokens"] > 1


def test_train_failure_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            str(tmp_path / "missing"),
            "--max-steps",
            "1",
            "--run-dir",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 2
    assert "no model folder" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


def test_readme_run_config_is_the_default_config() -> None:
    """The README's example run config is RunConfig's defaults, field for field (it went stale)."""
    import re

    from entrodrop.config import RunConfig

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"A run config \(.*?```json\n(.*?)```", readme, re.S)
    assert block is not None, "README lost its example run config"
    assert json.loads(block.group(1)) == RunConfig().model_dump(mode="json")
