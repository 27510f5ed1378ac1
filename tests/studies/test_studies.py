"""Studies: config validation and expansion, outcomes, Student-t statistics, readings, the CSV."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pytest
from pydantic import ValidationError

from entrodrop.studies.config import Comparison, StudyConfig
from entrodrop.studies.outcomes import run_outcomes
from entrodrop.studies.reading import reading, stat_text, tables, verdict_text, with_readings
from entrodrop.studies.results import results_csv, study_results
from entrodrop.studies.stats import mean_ci, paired_row, summary, t975


def study(**kw: Any) -> StudyConfig:
    raw: dict[str, Any] = {"name": "s", "variants": ["none", "random"], "seeds": [0, 1]}
    raw.update(kw)
    return StudyConfig.model_validate(raw)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"extra": 1}, "Extra inputs are not permitted"),
        ({"seeds": [0, 0]}, "seeds must be unique"),
        ({"seeds": list(range(11))}, "at most 10"),
        ({"seeds": []}, "at least 1"),
        ({"seeds": [-1]}, "between 0"),
        ({"variants": []}, "at least 1"),
        ({"variants": ["magic"]}, "unknown method 'magic'"),
        ({"variants": [{"method": "magic"}]}, "unknown method 'magic'"),
        ({"variants": ["none", {"method": "none", "model": "x"}]}, "'model' is shared"),
        ({"variants": [{"method": "none", "seed": 3}]}, "'seed' is shared"),
        ({"variants": [{"method": "none", "colour": 3}]}, "'colour' is not a run setting"),
        ({"variants": ["none", "none"]}, "label 'none' is used twice"),
        (
            {"variants": [{"label": "q2", "entrodrop": {"quantile": 2}}]},
            "variant 0 ('q2'): entrodrop.quantile: Input should be less than 1",
        ),
        ({"variants": [{"learning_rate": -1}]}, "learning_rate: Input should be greater than 0"),
        ({"base": {"method": "nope"}}, "base.method"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_study_configs_say_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        study(**changes)
    assert message in str(info.value)


def test_expand_runs_every_variant_with_every_seed_on_the_same_settings() -> None:
    cfg = study(
        base={"epochs": 2, "max_train_tokens": 512, "entrodrop": {"rate_max": 0.3}},
        variants=[
            "none",
            {"label": "ed", "method": "entrodrop", "entrodrop": {"drop_mode": "loss"}},
            {"method": "label_smoothing", "baseline_strength": 0.2},
        ],
        seeds=[3, 7],
    )
    runs = cfg.expand()
    assert [(r.variant, r.seed) for r in runs] == [
        ("none", 3),
        ("ed", 3),
        ("label_smoothing", 3),
        ("none", 7),
        ("ed", 7),
        ("label_smoothing", 7),
    ]
    for run in runs:
        c = run.config
        assert c.seed == run.seed and c.entrodrop.seed == run.seed
        assert (c.epochs, c.max_train_tokens) == (2, 512)
        assert c.entrodrop.rate_max == 0.3  # base.entrodrop is merged, not replaced
        assert not c.save_checkpoints and not c.save_model  # metrics only by default
    ed = runs[1].config
    assert ed.method == "entrodrop" and ed.entrodrop.drop_mode == "loss"
    assert runs[2].config.baseline_strength == 0.2 and runs[0].config.baseline_strength is None
    kept = study(keep_checkpoints=True).expand()[0].config
    assert kept.save_checkpoints and kept.save_model


def test_default_labels_and_comparisons_follow_the_documented_rule() -> None:
    cfg = study(
        variants=[
            "label_smoothing",
            {"method": "random", "entrodrop": {"drop_mode": "loss"}},
            {"method": "random", "entrodrop": {"drop_mode": "input", "entropy_source": "online"}},
            {
                "label": "random-ref-in",
                "method": "random",
                "entrodrop": {"drop_mode": "input", "entropy_source": "reference"},
            },
            {"method": "entrodrop", "entrodrop": {"entropy_source": "reference"}},
            {"method": "entrodrop", "entrodrop": {"drop_mode": "both"}},
            "none",
        ]
    )
    labels = [label for label, _ in cfg.variant_configs()]
    assert labels == [
        "label_smoothing",
        "random-loss",
        "random-input",
        "random-ref-in",
        "entrodrop-reference-input",
        "entrodrop-online-both",
        "none",
    ]
    assert cfg.comparisons() == [
        Comparison("label_smoothing", "none", "none"),
        Comparison("random-loss", "none", "none"),
        Comparison("random-input", "none", "none"),
        Comparison("random-ref-in", "none", "none"),
        Comparison("entrodrop-reference-input", "none", "none"),
        # same drop mode and the same entropy source wins over the first listed
        Comparison("entrodrop-reference-input", "random", "random-ref-in"),
        Comparison("entrodrop-online-both", "none", "none"),  # no random 'both': none only
    ]


# ---------------------------------------------------------------- outcomes


def rows(name: str, by_step: dict[int, float]) -> list[dict[str, Any]]:
    return [{"step": s, "name": name, "value": v, "epoch": s / 2} for s, v in by_step.items()]


def test_run_outcomes_from_metric_rows() -> None:
    metrics = (
        rows("eval/loss", {4: 2.8, 0: 3.0, 2: 2.5})  # file order need not be step order
        + rows("eval/loss_high_entropy", {0: 4.0, 2: 3.5, 4: 3.9})
        + rows("general/loss", {0: 2.0, 2: 2.1, 4: 2.2})
        + rows("train/loss", {2: 1.0, 4: 0.5})
    )
    out = run_outcomes(metrics)
    assert out["final_heldout"] == 2.8 and out["best_heldout"] == 2.5
    assert out["high_entropy_rebound"] == pytest.approx(0.4)
    assert out["final_general"] == 2.2
    # best includes step 0: a run that only got worse has its starting model as best
    worse = run_outcomes(rows("eval/loss", {0: 3.0, 2: 3.2}))
    assert worse["best_heldout"] == 3.0
    assert worse["high_entropy_rebound"] is None and worse["final_general"] is None
    # Still falling at the last evaluation: too short to rebound, so no rebound (not a 0).
    falling = run_outcomes(rows("eval/loss_high_entropy", {0: 4.0, 2: 3.5, 4: 3.2}))
    assert falling["high_entropy_rebound"] is None and falling["too_short_to_rebound"] == 1.0
    assert out["too_short_to_rebound"] == 0.0 and worse["too_short_to_rebound"] == 0.0
    assert run_outcomes([]) == {
        **dict.fromkeys(("final_heldout", "best_heldout", "high_entropy_rebound", "final_general")),
        "too_short_to_rebound": 0.0,
    }


# ---------------------------------------------------------------- statistics


def test_t_quantiles_match_the_tables() -> None:
    assert t975(1) == 12.706 and t975(2) == 4.303 and t975(9) == 2.262 and t975(30) == 2.042
    assert t975(40) == pytest.approx(2.0211, abs=2e-4)  # beyond the table: the expansion
    assert t975(120) == pytest.approx(1.9799, abs=2e-4)
    with pytest.raises(ValueError):
        t975(0)


def test_mean_ci_by_hand() -> None:
    # mean 2, s = 1, n = 3: 4.303 * 1 / sqrt(3)
    assert mean_ci([1.0, 2.0, 3.0]) == {"mean": 2.0, "ci95": pytest.approx(2.48434, 1e-5), "n": 3}
    # n = 2: t(1) = 12.706, s = sqrt(2) * 0.5 -> 12.706 * 0.5
    assert mean_ci([1.0, 2.0])["ci95"] == pytest.approx(6.353)
    assert mean_ci([5.0]) == {"mean": 5.0, "ci95": None, "n": 1}  # n < 2: no interval
    assert mean_ci([]) == {"mean": None, "ci95": None, "n": 0}


def outcomes_table(values: dict[tuple[str, int], float]) -> dict[tuple[str, int], Any]:
    return {
        key: {
            "final_heldout": v,
            "best_heldout": v - 0.5,
            "high_entropy_rebound": 0.1,
            "final_general": None,
        }
        for key, v in values.items()
    }


def test_summary_and_paired_differences_by_hand() -> None:
    outcomes = outcomes_table(
        {
            ("none", 0): 3.0,
            ("none", 1): 3.2,
            ("none", 2): 3.1,
            ("a", 0): 2.9,
            ("a", 1): 3.0,
            ("a", 2): 3.0,
            ("b", 0): 2.8,
            ("b", 1): 2.95,
            ("b", 2): 2.8,
            ("c", 0): 2.0,  # one seed only
        }
    )
    comparisons = [Comparison(v, "none", "none") for v in ("a", "b", "c")]
    result = summary(outcomes, ["none", "a", "b", "c"], comparisons)
    first = result["summary"][0]
    assert first["variant"] == "none" and first["n"] == 3
    assert first["final_heldout"]["mean"] == pytest.approx(3.1)
    assert first["final_heldout"]["ci95"] == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert first["best_heldout"]["mean"] == pytest.approx(2.6)
    assert first["high_entropy_rebound"] == {
        "mean": pytest.approx(0.1),
        "ci95": pytest.approx(0),
        "n": 3,
    }
    assert first["final_general"] == {"mean": None, "ci95": None, "n": 0}
    a, b, c = result["paired"]
    # a - none per seed: -0.1, -0.2, -0.1 -> mean -0.1333, s = 0.057735
    assert a["final_heldout_diff"]["mean"] == pytest.approx(-0.13333, abs=1e-5)
    assert a["final_heldout_diff"]["ci95"] == pytest.approx(0.14343, abs=1e-5)
    assert a["seeds"] == [0, 1, 2] and not a["excludes_zero"]
    # b - none: -0.2, -0.25, -0.3 -> mean -0.25, s = 0.05, ci 4.303 * 0.05 / sqrt(3)
    assert b["final_heldout_diff"]["ci95"] == pytest.approx(0.12422, abs=1e-5)
    assert b["excludes_zero"] and b["vs"] == "none" and b["vs_label"] == "none"
    assert c["final_heldout_diff"] == {"mean": pytest.approx(-1.0), "ci95": None, "n": 1}
    assert c["excludes_zero"] is None  # no interval, no claim either way


def test_a_rebound_not_measured_says_why_and_no_interval_claims_nothing() -> None:
    outcomes = outcomes_table({("none", 0): 3.0, ("none", 1): 3.2, ("random-input", 0): 2.0})
    for key in outcomes:
        outcomes[key]["high_entropy_rebound"] = None  # every run ended still improving
        outcomes[key]["too_short_to_rebound"] = 1.0
    result = study_results(study(), outcomes)
    rebound = result["summary"][0]["high_entropy_rebound"]
    assert rebound["mean"] is None and rebound["n"] == 0
    assert rebound["why"].startswith("not measured in 2 of 2: fewer than 1 evaluation after")
    assert stat_text(rebound) == f"- ({rebound['why']})"
    assert "0.000 ± 0.000" not in tables(result)
    assert "why" not in result["summary"][0]["final_general"]  # never logged: no reason to give
    empty = paired_row({}, Comparison("random-input", "none", "none"))
    assert empty["final_heldout_diff"]["n"] == 0 and empty["excludes_zero"] is None
    assert verdict_text(empty["excludes_zero"]) == "n < 2: no interval"
    assert verdict_text(True) == "yes" and verdict_text(False) == "no"


def test_paired_uses_only_seeds_both_variants_have() -> None:
    outcomes = outcomes_table({("x", 0): 1.0, ("x", 1): 2.0, ("none", 1): 1.5, ("none", 2): 9.0})
    row = paired_row(outcomes, Comparison("x", "none", "none"))
    assert row["seeds"] == [1] and row["final_heldout_diff"]["mean"] == pytest.approx(0.5)


# ---------------------------------------------------------------- readings, tables, CSV


def paired(mean: float | None, ci: float | None, n: int, excludes: bool) -> dict[str, Any]:
    return {
        "variant": "entrodrop-online-input",
        "vs": "random",
        "vs_label": "random-input",
        "final_heldout_diff": {"mean": mean, "ci95": ci, "n": n},
        "excludes_zero": excludes,
    }


def test_readings_say_what_the_numbers_allow() -> None:
    head = "entrodrop-online-input vs random-input: "
    assert reading(paired(-0.0123, 0.031, 3, False)) == (
        head + "\u22120.01 ± 0.03 nats, not distinguishable at n=3"
    )
    assert reading(paired(-0.25, 0.124, 3, True)) == (
        head + "\u22120.25 ± 0.12 nats, lower held-out loss beyond seed noise at n=3"
    )
    assert reading(paired(0.25, 0.004, 5, True)) == (
        head + "+0.250 ± 0.004 nats, higher held-out loss beyond seed noise at n=5"
    )
    assert reading(paired(-0.05, None, 1, False)) == (
        head + "\u22120.05 nats at n=1, no interval (n < 2)"
    )
    assert reading(paired(None, None, 0, False)) == head + "no seed with both runs finished yet"


def test_results_tables_and_csv() -> None:
    cfg = study(variants=["none", "random"], seeds=[0, 1])
    outcomes = outcomes_table(
        {("none", 0): 3.0, ("none", 1): 3.2, ("random-input", 0): 2.9, ("random-input", 1): 3.0}
    )
    result = study_results(cfg, outcomes)
    assert [r["variant"] for r in result["summary"]] == ["none", "random-input"]
    (row,) = result["paired"]
    assert row["reading"].startswith("random-input vs none: \u22120.15 ± ")
    text = tables(result)
    assert "| none | 2 | 3.100 ± 1.271 |" in text  # 12.706 * 0.1
    assert "n < 2: no interval" not in text and "| random-input | none | \u22120.150 ±" in text
    parsed = list(csv.DictReader(io.StringIO(results_csv(result))))
    assert len(parsed) == 2 * 4 + 1
    final = next(r for r in parsed if r["variant"] == "none" and r["metric"] == "final_heldout")
    assert float(final["mean"]) == pytest.approx(3.1) and final["n"] == "2"
    diff = parsed[-1]
    assert (diff["table"], diff["vs"], diff["excludes_zero"]) == ("paired", "none", "False")
    empty = with_readings({"summary": [], "paired": []})
    assert (empty["summary"], empty["paired"]) == ([], [])
    assert "no early_stop variant" in empty["verdict"]


def test_the_documented_example_and_bench_configs_are_valid() -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    doc = (repo / "docs" / "studies.md").read_text(encoding="utf-8")
    example = doc.split("```json", 1)[1].split("```", 1)[0]
    labels = [label for label, _ in StudyConfig.model_validate_json(example).variant_configs()]
    assert labels == ["none", "label_smoothing", "entrodrop-reference-input", "random input"]
    for path in sorted((repo / "bench" / "studies").glob("*.json")):
        cfg = StudyConfig.model_validate_json(path.read_text(encoding="utf-8"))
        # Checkpoints only where benchmarks score the best one (.gitignore keeps them out).
        assert not cfg.keep_checkpoints or cfg.base.eval_tasks, path.name
        assert len(cfg.seeds) >= 2, path.name
    reproduction = StudyConfig.model_validate_json(
        (repo / "bench" / "studies" / "reproduction.json").read_text(encoding="utf-8")
    )
    assert reproduction.base.max_train_tokens >= 8192 and len(reproduction.seeds) == 3
    assert len(reproduction.expand()) == 16 * 3  # 13 first, then early_stop and the 2 deletes
    labels = [name for name, _ in reproduction.variant_configs()]
    assert labels[-3:] == ["early_stop", "entrodrop-online-delete", "random-delete"]
    vs_random = {c.variant: c.vs_label for c in reproduction.comparisons() if c.vs == "random"}
    assert vs_random == {
        f"entrodrop-{source}-{mode}": f"random-{mode}"
        for source in ("online", "reference")
        for mode in ("input", "loss", "both")
    } | {"entrodrop-online-delete": "random-delete"}
