"""Benchmarks in studies: a column per task (its headline metric, mean ± CI over seeds) and paired
differences, each run judged as its variant is (early_stop at its best checkpoint)."""

from __future__ import annotations

from typing import Any

import pytest

from entrodrop.metrics import benchmark_name
from entrodrop.studies.config import StudyConfig
from entrodrop.studies.reading import tables
from entrodrop.studies.results import results_csv, study_outcomes, study_results

ACC = benchmark_name("python_docs_mc", "acc")
BPB = benchmark_name("python_reference_ppl", "bits_per_byte")


def rows(final_acc: float, best_acc: float, heldout: list[float]) -> list[dict[str, Any]]:
    """A run of 3 evaluations (steps 0, 2, 4), benchmarked at its best (2) and final (4) step."""
    out = [{"step": 2 * i, "name": "eval/loss", "value": v} for i, v in enumerate(heldout)]
    out += [
        {"step": 2 * i, "name": "eval/loss_high_entropy", "value": v} for i, v in enumerate(heldout)
    ]
    out += [
        {"step": 2, "name": ACC, "value": best_acc},
        {"step": 4, "name": ACC, "value": final_acc},
        {"step": 4, "name": f"{ACC}_stderr", "value": 0.05},
        {"step": 4, "name": BPB, "value": 1.0 + final_acc},
    ]
    return out


def test_a_study_table_gets_a_column_per_task_and_paired_differences() -> None:
    study = StudyConfig.model_validate(
        {"name": "b", "variants": ["none", "early_stop"], "seeds": [0, 1]}
    )
    runs = {
        ("none", 0): rows(0.30, 0.40, [3.0, 2.8, 3.2]),
        ("none", 1): rows(0.32, 0.42, [3.0, 2.7, 3.3]),
        ("early_stop", 0): rows(0.30, 0.40, [3.0, 2.8, 3.2]),
        ("early_stop", 1): rows(0.32, 0.42, [3.0, 2.7, 3.3]),
    }
    outcomes = study_outcomes(study, runs)
    # `none` is judged at its end, `early_stop` at its best evaluation (step 2)
    assert outcomes[("none", 0)]["bench:python_docs_mc:acc"] == pytest.approx(0.30)
    assert outcomes[("early_stop", 0)]["bench:python_docs_mc:acc"] == pytest.approx(0.40)
    assert "bench:python_reference_ppl:bits_per_byte" in outcomes[("none", 0)]
    result = study_results(study, outcomes)
    names = [o["name"] for o in result["outcomes"]]
    assert names[-2:] == ["bench:python_docs_mc:acc", "bench:python_reference_ppl:bits_per_byte"]
    none = next(r for r in result["summary"] if r["variant"] == "none")
    assert none["bench:python_docs_mc:acc"]["mean"] == pytest.approx(0.31)
    (pair,) = result["paired"]  # none vs early_stop
    diff = pair["bench:python_docs_mc:acc_diff"]
    assert diff["mean"] == pytest.approx(-0.10) and diff["n"] == 2 and diff["excludes_zero"]
    text = tables(result)
    assert "python_docs_mc acc" in text and "python_docs_mc acc difference" in text
    csv_text = results_csv(result)
    assert "bench:python_docs_mc:acc_diff" in csv_text and "bench:python_docs_mc:acc," in csv_text
