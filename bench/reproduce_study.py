"""The reproduction as a study: run a study config through the library's own study code, then
write its table (mean ± 95% CI per variant, paired differences, readings) and plots.

    .venv/bin/python bench/reproduce_study.py bench/studies/reproduction.json --workers 2 \
        --update-doc docs/benchmarks.md
    .venv/bin/python bench/reproduce_study.py bench/studies/smoke.json

Runs go through `entrodrop.studies.local` (the code behind `entrodrop study`), one at a time or
in `--workers` one-thread lanes, their folders under bench/results/study-<name>/ (metrics only,
no weights: committed, so that a study too long for one sitting continues on another machine or
in a fresh clone). Running the same command again continues the same study: runs already
succeeded are kept. `--first` runs the named variants' seeds before the rest. Writes
bench/results/study_<name>.json (summary, curves, machine), study_<name>.md (the tables),
study_<name>_curves.png and study_<name>_rebound.png; `--update-doc FILE` also puts the tables in
FILE between its `<!-- study table: bench/results/study_<name>.md -->` and
`<!-- end of study table -->` markers (docs/benchmarks.md has them for the reproduction).
Set ENTRODROP_MODEL_CACHE to reuse the converted default model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, machine  # noqa: E402
from entrodrop.studies.config import StudyConfig  # noqa: E402
from entrodrop.studies.curves import study_curves  # noqa: E402
from entrodrop.studies.folder import StudyBusy, StudyFolder  # noqa: E402
from entrodrop.studies.local import (  # noqa: E402
    create_study,
    extend_study,
    extends,
    refresh_results,
    run_study,
)
from entrodrop.studies.reading import tables  # noqa: E402
from entrodrop.studies.results import finished_rows  # noqa: E402

CURVES = {
    "eval/loss": "held-out loss",
    "eval/loss_high_entropy": "held-out loss, high-entropy tokens",
    "eval/loss_low_entropy": "held-out loss, low-entropy tokens",
    "general/loss": "general-text loss",
}
REBOUND = "eval/loss_high_entropy"


def study_folder(config: StudyConfig, work: Path, create: bool = True) -> StudyFolder | None:
    """The study of this config under `work`: the existing one (to continue, extended by the
    runs of variants or seeds added at the end of the config) or a new one (None instead where `create`
    is false).

    Configs are compared after validation, so a field added to RunConfig since the study began
    (saved without it, read back with its default) does not orphan the runs already done.
    """
    wanted = config.model_dump(mode="json")
    for path in sorted((work / "studies").glob("*/study.json")):
        folder = StudyFolder(path.parent)
        record = folder.read()
        saved = StudyConfig.model_validate(record["config"])
        grown = extends(saved, config)  # variants or seeds added: train only theirs
        if saved.model_dump(mode="json") == wanted or grown:
            runs_dir = str((work / "runs").resolve())
            if record["runs_dir"] != runs_dir:  # a committed study in another clone or folder
                folder.write({**record, "runs_dir": runs_dir})
            if grown:
                added = extend_study(folder, config)
                print(f"{folder.path.name}: {len(added)} runs added for the new variants or seeds")
            return folder
    if not create:
        return None
    return create_study(config, runs_dir=work / "runs", home_studies=work / "studies")


def plot(curves: dict[str, Any], names: dict[str, str], path: Path) -> None:
    """One panel per metric: per variant the mean over seeds per epoch and its 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(2, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4.8 * rows), squeeze=False)
    tab20 = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]
    colours = [*tab20[0::2], *tab20[1::2]]  # ten distinct hues before their lighter twins
    for ax, (name, title) in zip(axes.flat, names.items(), strict=False):
        for i, (variant, by_name) in enumerate(curves.items()):
            c = by_name[name]
            if not c["step"]:
                continue
            style = (
                "-" if variant.startswith("entrodrop") else "-." if "random" in variant else "--"
            )
            n = max(c["n"])
            (line,) = ax.plot(
                c["epoch"], c["mean"], style, color=colours[i % 20], marker="o", ms=3,
                label=f"{variant} (n={n})",
            )  # fmt: skip
            ax.fill_between(c["epoch"], c["lo"], c["hi"], color=line.get_color(), alpha=0.12)
        ax.set(xlabel="epoch", ylabel=f"{title} (nats/token)", title=title)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def report(folder: StudyFolder, out_stem: Path) -> dict[str, Any]:
    """Tables, curves and plots from the study's finished runs."""
    result = refresh_results(folder)
    record = folder.read()
    labels = [label for label, _ in folder.config().variant_configs()]
    rows = finished_rows(record["runs"], Path(record["runs_dir"]))
    curves = study_curves(rows, labels, list(CURVES))
    text = tables(result)
    out_stem.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    payload = {
        "study": {k: record[k] for k in ("id", "name", "status", "config", "runs")},
        "machine": machine(),
        **result,
        "curves": curves,
    }
    out_stem.with_suffix(".json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    plot(curves, CURVES, out_stem.parent / f"{out_stem.name}_curves.png")
    plot(curves, {REBOUND: CURVES[REBOUND]}, out_stem.parent / f"{out_stem.name}_rebound.png")
    print(text)
    return payload


def update_doc(doc: Path, table: str, source: Path) -> bool:
    """Put the table between the doc's markers for this study's .md; False if it has none.

    Markers: ``<!-- study table: bench/results/study_<name>.md -->`` and
    ``<!-- end of study table -->``; what lies between them is replaced.
    """
    start = f"<!-- study table: {source.as_posix()} -->\n"
    end = "<!-- end of study table -->"
    text = doc.read_text(encoding="utf-8")
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i < 0 or j < 0:
        return False
    doc.write_text(text[: i + len(start)] + table.strip() + "\n" + text[j:], encoding="utf-8")
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", type=Path, help="a study config JSON (bench/studies/*.json)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (one: fastest)")
    p.add_argument("--workers", type=int, default=1, help="runs trained at once, one process each")
    p.add_argument("--first", nargs="*", default=[], help="variant labels to run (all seeds) first")
    p.add_argument("--work", type=Path, help="the study's folder (default: <results>/study-<name>)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the outputs go")
    p.add_argument("--report-only", action="store_true", help="no training: report what exists")
    p.add_argument(
        "--update-doc", type=Path, help="a Markdown file whose study-table block to fill"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    config = StudyConfig.model_validate_json(args.config.read_text(encoding="utf-8"))
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.name).strip("-") or "study"
    work = args.work or args.results / f"study-{slug}"
    folder = study_folder(config, work, create=not args.report_only)
    if folder is None:
        print(f"no study of this config under {work}: nothing to report", file=sys.stderr)
        return 2
    print(f"study folder: {folder.path}")
    unknown = set(args.first) - {label for label, _ in config.variant_configs()}
    if unknown:
        print(f"--first: no such variant: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if not args.report_only:
        try:
            run_study(
                folder, progress=True, workers=args.workers, threads=args.threads, first=args.first
            )
        except StudyBusy as exc:
            print(exc, file=sys.stderr)
            return 2
    args.results.mkdir(parents=True, exist_ok=True)
    report(folder, args.results / f"study_{slug}")
    if args.update_doc is not None:
        written = args.results / f"study_{slug}.md"
        source = written.resolve()
        if source.is_relative_to(Path.cwd()):
            source = source.relative_to(Path.cwd())
        if not update_doc(args.update_doc, written.read_text(encoding="utf-8"), source):
            print(f"{args.update_doc}: no '<!-- study table: {source} -->' block", file=sys.stderr)
            return 2
        print(f"updated {args.update_doc}")
    if args.report_only:  # a report of a study under way (or cut short) is still a report
        return 0
    return 0 if folder.read()["status"] in ("succeeded", "queued") else 1


if __name__ == "__main__":
    sys.exit(main())
