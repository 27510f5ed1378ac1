"""A study's results in words: one plain-language reading per paired comparison, and text tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from entrodrop.studies.config import EARLY_STOP
from entrodrop.studies.outcomes import OUTCOMES

MINUS = "\u2212"  # a real minus sign reads better than a hyphen in prose
NO_INTERVAL = "n < 2: no interval"  # what a table says where a mean has no 95% interval


def _decimals(*values: float | None) -> int:
    """Two decimals, three when the numbers are smaller than a hundredth."""
    shown = [abs(v) for v in values if v is not None and v != 0]
    return 3 if shown and min(shown) < 0.01 else 2


def _num(value: float, decimals: int, signed: bool = False) -> str:
    text = f"{abs(value):.{decimals}f}"
    if value < 0 and float(text) != 0:
        return MINUS + text
    return ("+" + text) if signed and float(text) != 0 else text


def stat_text(stat: Mapping[str, Any], signed: bool = False) -> str:
    """'3.142 ± 0.021', '3.142 (n < 2: no interval)', or '-' without a value; with why some
    runs have none ("not measured in 2 of 3: ...") after it."""
    mean, ci = stat.get("mean"), stat.get("ci95")
    why = f" ({stat['why']})" if stat.get("why") else ""
    if mean is None:
        return "-" + why
    if ci is None:
        return f"{_num(mean, 3, signed)} ({NO_INTERVAL})" + why
    return f"{_num(mean, 3, signed)} ± {ci:.3f}" + why


def verdict_text(excludes: bool | None) -> str:
    """The "CI excludes 0" cell: yes, no, or no interval to tell (n < 2)."""
    return NO_INTERVAL if excludes is None else "yes" if excludes else "no"


def reading(row: Mapping[str, Any]) -> str:
    """E.g. 'entrodrop-online-input vs random-input: −0.01 ± 0.03 nats, not distinguishable at n=3'."""
    head = f"{row['variant']} vs {row['vs_label']}"
    stat = row["final_heldout_diff"]
    mean, ci, n = stat["mean"], stat["ci95"], stat["n"]
    if mean is None:
        return f"{head}: no seed with both runs finished yet"
    d = _decimals(mean, ci)
    if ci is None:
        return f"{head}: {_num(mean, d, True)} nats at n={n}, no interval (n < 2)"
    amount = f"{_num(mean, d, True)} ± {ci:.{d}f} nats"
    if not row["excludes_zero"]:
        return f"{head}: {amount}, not distinguishable at n={n}"
    verdict = "lower" if mean < 0 else "higher"
    return f"{head}: {amount}, {verdict} held-out loss beyond seed noise at n={n}"


def verdict(paired: Sequence[Mapping[str, Any]]) -> str:
    """Whether any variant beat plain fine-tuning stopped at its best evaluation (early_stop),
    in one plain sentence: the question every regulariser has to answer."""
    against = [r for r in paired if r["vs"] == EARLY_STOP]
    if not against:
        return (
            "This study has no early_stop variant, so it cannot say whether anything beats "
            "plain fine-tuning stopped at its best evaluation: add one."
        )
    baseline = against[0]["vs_label"]
    measured = [r for r in against if r["final_heldout_diff"]["mean"] is not None]
    if not measured:
        return f"No seed has both a variant and {baseline} finished yet."
    beat = [r for r in measured if r["excludes_zero"] and r["final_heldout_diff"]["mean"] < 0]
    if beat:
        names = ", ".join(
            f"{r['variant']} ({stat_text(r['final_heldout_diff'], True)})" for r in beat
        )
        return (
            f"Beat the best epoch of plain fine-tuning ({baseline}), beyond seed noise: {names} "
            "nats of held-out loss."
        )
    worse = sum(1 for r in measured if r["excludes_zero"] and r["final_heldout_diff"]["mean"] > 0)
    return (
        f"Nothing beat the best epoch of plain fine-tuning ({baseline}) beyond seed noise: of "
        f"{len(measured)} "
        f"variants compared with it, {worse} ended with a higher held-out loss beyond seed noise "
        "and the others are not distinguishable from it."
    )


def with_readings(result: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The summary with a "reading" added to each paired row, and the study's "verdict"."""
    paired = [{**row, "reading": reading(row)} for row in result["paired"]]
    return {**result, "paired": paired, "verdict": verdict(paired)}


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def outcome_list(result: Mapping[str, Any]) -> list[dict[str, str]]:
    """The result's outcomes in table order (a result from before benchmarks: the fixed ones)."""
    return result.get("outcomes") or [{"name": n, "label": t} for n, t in OUTCOMES.items()]


def tables(result: Mapping[str, Any]) -> str:
    """Markdown tables: mean ± 95% CI per variant, then the paired differences and readings."""
    outcomes = outcome_list(result)
    header = ["variant", "n", *(o["label"] for o in outcomes)]
    rows = [
        [r["variant"], str(r["n"]), *(stat_text(r[o["name"]]) for o in outcomes if o["name"] in r)]
        for r in result["summary"]
    ]
    parts = [_markdown(header, rows)]
    if result["paired"]:
        first = result["paired"][0]
        bench = [
            o for o in outcomes if o["name"].startswith("bench:") and f"{o['name']}_diff" in first
        ]
        paired = [
            [
                r["variant"],
                r["vs_label"],
                stat_text(r["final_heldout_diff"], signed=True),
                verdict_text(r["excludes_zero"]),
                *(stat_text(r[f"{o['name']}_diff"], signed=True) for o in bench),
            ]
            for r in result["paired"]
        ]
        columns = ["variant", "vs", "final held-out difference", "CI excludes 0"]
        columns += [f"{o['label']} difference" for o in bench]
        parts.append(_markdown(columns, paired))
        parts.append("\n".join(f"- {reading(r)}" for r in result["paired"]))
    if result.get("verdict"):
        parts.append(f"**{result['verdict']}**")
    return "\n\n".join(parts)
