"""`entrodrop tokens`: a folder or a run id, the summary, --csv and --step, readable errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from records import make_record
from typer.testing import CliRunner

from entrodrop.cli import app
from entrodrop.runfolder import RunFolder


def test_summary_json_csv_and_step_by_folder_or_id(entrodrop_home: Path) -> None:
    run_dir = entrodrop_home / "runs" / "r1"
    RunFolder(run_dir).write_tokens(
        make_record([[4.0, 4.0, 0.05], [1.0, 1.0, 0.05], [1.1, 3.0, 0.05]])
    )
    runner = CliRunner()
    out = runner.invoke(app, ["tokens", "r1"])  # a run id of this home
    assert out.exit_code == 0, out.output
    assert "3 tokens, 3 evaluations (steps 0..20)" in out.output
    assert "learned then forgotten" in out.output and "'t1'" in out.output  # t1 rose by 2.0
    view = json.loads(runner.invoke(app, ["tokens", str(run_dir), "--json", "--step", "10"]).output)
    assert view["run_id"] == "r1" and view["steps"] == [10] and view["all_steps"] == [0, 10, 20]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["tokens", "r1", "--csv"]).output)))
    assert [r["class"] for r in rows] == ["learned", "forgotten", "known"]
    assert rows[1]["loss_20"] == "3.0"


def test_missing_folders_and_records_are_errors_not_tracebacks(entrodrop_home: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["tokens", "r-none"])
    assert out.exit_code == 2 and "no run folder r-none" in out.output
    (entrodrop_home / "runs" / "r2").mkdir(parents=True)
    out = runner.invoke(app, ["tokens", "r2"])
    assert out.exit_code == 2 and "no token record" in out.output and "Traceback" not in out.output
    RunFolder(entrodrop_home / "runs" / "r2").write_tokens(make_record([[1.0]]))
    out = runner.invoke(app, ["tokens", "r2", "--step", "5"])
    assert out.exit_code == 2 and "no evaluation at step 5" in out.output
