"""Load test on loopback: a fixed number of requests, a few at a time, against a real server.

Starts `entrodrop serve` (127.0.0.1, a free port, a throw-away ENTRODROP_HOME, the default model
from the tests' model cache, entrodrop.paths.dev_model_cache) as a child process, waits for the model, then sends a fixed,
shuffled mix of requests with a fixed number in flight: POST /api/score (a short text), the
Inspect and runs pages and their JSON twins, /api/health. Reports throughput, latency
percentiles and errors by status, per kind and overall; every request has a timeout.

    .venv/bin/python bench/bench_load.py [--requests 200] [--concurrency 8] [--score-share 0.25]

Prints a table and writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile, print_table, write_result  # noqa: E402
from entrodrop.paths import dev_model_cache  # noqa: E402

MODEL_CACHE = dev_model_cache()
GETS = ("/", "/api/inspect", "/runs", "/api/runs", "/api/health")
TEXT = (
    "def mean(values: list[float]) -> float:\n"
    '    """The arithmetic mean of a non-empty list."""\n'
    "    return sum(values) / len(values)\n\n"
    "The quick brown fox jumps over the lazy dog, and the dog does not mind at all.\n"
)


@dataclass
class Result:
    kind: str
    status: int | str  # an HTTP status, or the name of the error when there was no response
    seconds: float
    retry_after: bool = False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200, help="requests in all")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--score-share", type=float, default=0.25, help="share of POST /api/score")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENTRODROP_HOME": str(home),
        "ENTRODROP_MODEL_CACHE": os.environ.get("ENTRODROP_MODEL_CACHE", str(MODEL_CACHE)),
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("ENTRODROP_TOKEN", None)
    argv = [sys.executable, "-m", "entrodrop.cli", "serve", "--port", str(port)]
    log = (home / "server.log").open("wb")
    return subprocess.Popen(argv, env=env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> float:
    """Seconds until /api/health says the model is loaded."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            health = httpx.get(url + "/api/health", timeout=5).json()
            if health.get("model_loaded"):
                return time.monotonic() - started
            if health.get("state") == "error":
                raise RuntimeError(f"the model did not load: {health.get('error')}")
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError("the server was not ready in time")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


# ---------------------------------------------------------------- the load


def plan(n: int, score_share: float, seed: int) -> list[str]:
    """The request kinds in a fixed, shuffled order: `score` or one of GETS."""
    n_score = round(n * score_share)
    kinds = ["score"] * n_score + [GETS[i % len(GETS)] for i in range(n - n_score)]
    random.Random(seed).shuffle(kinds)
    return kinds


async def one(client: httpx.AsyncClient, kind: str) -> Result:
    t0 = time.perf_counter()
    try:
        if kind == "score":
            res = await client.post("/api/score", json={"text": TEXT, "top_k": 5})
        else:
            res = await client.get(kind)
        await res.aread()
    except httpx.HTTPError as exc:
        return Result(kind, type(exc).__name__, time.perf_counter() - t0)
    return Result(kind, res.status_code, time.perf_counter() - t0, "retry-after" in res.headers)


async def load(
    url: str, kinds: list[str], concurrency: int, timeout: float
) -> tuple[list[Result], float]:
    """Run the plan with `concurrency` workers; (results, wall seconds)."""
    todo: asyncio.Queue[str] = asyncio.Queue()
    for kind in kinds:
        todo.put_nowait(kind)
    results: list[Result] = []
    limits = httpx.Limits(max_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            while not todo.empty():
                results.append(await one(client, todo.get_nowait()))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results, time.perf_counter() - t0


def summarise(kind: str, results: list[Result], wall: float) -> dict[str, Any]:
    ms = [r.seconds * 1000 for r in results]
    statuses = Counter(str(r.status) for r in results)
    errors = {s: n for s, n in statuses.items() if not (s.isdigit() and int(s) < 400)}
    return {
        "kind": kind,
        "requests": len(results),
        "ok": sum(n for s, n in statuses.items() if s.isdigit() and int(s) < 400),
        "errors": sum(errors.values()),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "req_per_s": len(results) / wall if wall else float("nan"),
        "by_status": dict(sorted(statuses.items())),
        "errors_by_status": dict(sorted(errors.items())),
        "refused_with_retry_after": sum(1 for r in results if r.status == 503 and r.retry_after),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = plan(args.requests, args.score_share, args.seed)
    with tempfile.TemporaryDirectory(prefix="entrodrop-load-") as tmp:
        home = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(home, port)
        try:
            ready_s = wait_ready(url, proc)
            print(
                f"server ready in {ready_s:.1f} s; {len(kinds)} requests, {args.concurrency} at a time"
            )
            asyncio.run(load(url, ["score", "/api/health"], 2, args.timeout))  # warm-up
            load_before = os.getloadavg()[0]
            results, wall = asyncio.run(load(url, kinds, args.concurrency, args.timeout))
            load_after = os.getloadavg()[0]
        finally:
            stop_server(proc)
    rows = [summarise("all", results, wall)]
    for kind in ["score", *GETS]:
        picked = [r for r in results if r.kind == kind]
        if picked:
            rows.append(summarise(kind, picked, wall))
    columns = [
        "kind",
        "requests",
        "ok",
        "errors",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
        "req_per_s",
    ]
    print_table(rows, columns)
    print(f"\nerrors by status: {rows[0]['errors_by_status'] or 'none'}; wall {wall:.1f} s")
    print(f"load average (1 min) before / after: {load_before:.1f} / {load_after:.1f}")
    write_result(
        "load",
        {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "score_share": args.score_share,
            "score_text_chars": len(TEXT),
            "model": "default",
            "wall_s": round(wall, 2),
            "server_ready_s": round(ready_s, 1),
            # The machine is shared: its 1-minute load average before and after the run.
            "load_average": [round(load_before, 2), round(load_after, 2)],
            "rows": rows,
        },
    )
    return 1 if rows[0]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
