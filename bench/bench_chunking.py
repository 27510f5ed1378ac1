"""The cost of chunked scoring (key/value cache) against one forward pass, to pick the chunk size.

Scoring a text `chunk_tokens` positions at a time lets Inspect show progress and stop a cancelled
job between chunks; the key/value cache makes the result equal to one pass. This measures what
that costs on the default model: for a ~1,000- and a ~2,900-token text (the issue's long text),
one pass and chunks of 64 to 1,024 tokens, repetitions interleaved, medians. Printed side by
side: the median time, its ratio to one pass, and the seconds per chunk (how long a cancel waits
at most). Machine facts and the load average go with the results, in
bench/results/chunking-<machine class>.json.

Run: `.venv/bin/python bench/bench_chunking.py [--repeats 3] [--tokens 1000 2900]
[--chunks 64 128 256 512 1024]`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_scoring import bench_ids  # noqa: E402
from bench.common import interleaved, machine, median, print_table, write_result  # noqa: E402

CHUNKS = [64, 128, 256, 512, 1024]  # positions per forward call; one pass is always measured


def label(chunk: int | None) -> str:
    return "one pass" if chunk is None else f"chunks of {chunk}"


def measure(loaded: Any, n_tokens: int, repeats: int, chunks: list[int]) -> list[dict[str, Any]]:
    """Each chunk size on the same text: medians, ratio to one pass, seconds per chunk."""
    from entrodrop import scoring

    ids = bench_ids(loaded.tokenizer, n_tokens)
    sizes: list[int | None] = [None, *chunks]
    fns = {
        label(c): (lambda c=c: scoring.score_ids(loaded, [ids], top_k=5, chunk_tokens=c))
        for c in sizes
    }
    for fn in fns.values():  # warm-up
        fn()
    times = interleaved(fns, repeats)
    one = median(times[label(None)])
    rows = []
    for c in sizes:
        t = median(times[label(c)])
        chunks = 1 if c is None else math.ceil(len(ids) / c)
        rows.append(
            {
                "tokens": len(ids),
                "candidate": label(c),
                "chunk_tokens": c,
                "median_s": t,
                "vs_one_pass": t / one,
                "s_per_chunk": t / chunks,
                "seconds": times[label(c)],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1000, 2900])
    parser.add_argument("--chunks", type=int, nargs="+", default=CHUNKS)
    ns = parser.parse_args()
    import entrodrop

    loaded = entrodrop.load("default")
    facts = machine()
    print(f"machine: {facts['class']} ({facts['cpu']}), {facts['cores']} cores, "
          f"{loaded.precision.reason}; load average {facts['loadavg']}")  # fmt: skip
    rows = [row for n in ns.tokens for row in measure(loaded, n, ns.repeats, ns.chunks)]
    print_table(rows, ["tokens", "candidate", "median_s", "vs_one_pass", "s_per_chunk"])
    write_result(
        "chunking",
        {
            "repeats": ns.repeats,
            "precision": loaded.precision.reason,
            "machine_before": facts,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
