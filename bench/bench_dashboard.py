"""Dashboard latency: POST /api/score and the pages, idle and while a training run is in progress.

Starts the real server (`entrodrop serve` on 127.0.0.1, a free port, a throw-away ENTRODROP_HOME)
as a child process, waits for the model, then measures p50/p95 of `POST /api/score` for a
256-token text with 1 and with 8 concurrent clients, and p50 of `/`, `/runs`, `/api/runs` and
`/api/health`. It then launches a training run through `POST /api/runs`, waits for its first
step, measures the same again while it trains, cancels the run and stops the server. Every phase
has a fixed number of requests. Run: `.venv/bin/python bench/bench_dashboard.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, percentile, print_table, write_result  # noqa: E402

PAGES = ("/", "/runs", "/api/runs", "/api/health")
RUN_BODY = {  # a small run: it is cancelled once the measurements are done
    "method": "entrodrop",
    "max_steps": 400,
    "eval_every": 1000,
    "max_train_tokens": 2048,
    "max_eval_tokens": 512,
    "save_checkpoints": False,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--single", type=int, default=15, help="sequential score requests, 1 client")
    p.add_argument("--per-client", type=int, default=4, help="score requests per client of 8")
    p.add_argument("--page-requests", type=int, default=15, help="requests per page")
    p.add_argument("--tokens", type=int, default=256, help="length of the scored text")
    p.add_argument(
        "--threads", type=int, default=0, help="OMP_NUM_THREADS of the server (0: torch default)"
    )
    p.add_argument("--tag", default="", help="suffix of the result file name")
    return p.parse_args(argv)


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, port: int, threads: int) -> subprocess.Popen[bytes]:
    """`entrodrop serve` in its own session; its training runs inherit OMP_NUM_THREADS."""
    exe = Path(sys.executable).parent / "entrodrop"
    env = {**os.environ, "ENTRODROP_HOME": str(home)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    log = open(home / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_ready(client: httpx.AsyncClient, timeout_s: float = 600) -> float:
    """Seconds until /api/health says the model is loaded."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        try:
            health = (await client.get("/api/health")).json()
            if health.get("model_loaded"):
                return time.perf_counter() - t0
            if health.get("error"):
                raise RuntimeError(f"model failed to load: {health['error']}")
        except httpx.TransportError:
            pass
        await asyncio.sleep(1.0)
    raise TimeoutError("the server did not load its model in time")


# ---------------------------------------------------------------- requests


async def timed_request(
    client: httpx.AsyncClient, method: str, url: str, **kw: Any
) -> tuple[float, int]:
    t0 = time.perf_counter()
    response = await client.request(method, url, **kw)
    return time.perf_counter() - t0, response.status_code


async def text_of(client: httpx.AsyncClient, tokens: int) -> str:
    """A held-out python-reference passage cut to `tokens` tokens (counted by the server itself)."""
    from entrodrop.data import python_reference

    source = "\n".join(python_reference().heldout)
    chars = tokens * 4
    for _ in range(8):
        got = (await client.post("/api/score", json={"text": source[:chars], "top_k": 0})).json()
        n = int(got["n_tokens"])
        if n == tokens:
            break
        chars = max(1, round(chars * tokens / n)) if abs(n - tokens) > 3 else chars + (tokens - n)
    return source[:chars]


async def score_latencies(
    client: httpx.AsyncClient, text: str, clients: int, each: int
) -> dict[str, Any]:
    """`clients` concurrent clients, each sending `each` score requests one after another."""

    async def one_client() -> list[tuple[float, int]]:
        return [
            await timed_request(client, "POST", "/api/score", json={"text": text})
            for _ in range(each)
        ]

    results = [
        r for rs in await asyncio.gather(*(one_client() for _ in range(clients))) for r in rs
    ]
    ok = [t for t, code in results if code == 200]
    return {
        "clients": clients,
        "requests": len(results),
        "ok": len(ok),
        "status_codes": sorted({code for _, code in results}),
        "p50_ms": 1000 * median(ok) if ok else None,
        "p95_ms": 1000 * percentile(ok, 95) if ok else None,
    }


async def page_latencies(client: httpx.AsyncClient, n: int) -> dict[str, dict[str, Any]]:
    """p50/p95 of each page, the pages taking turns."""
    times: dict[str, list[float]] = {p: [] for p in PAGES}
    for _ in range(n):
        for page in PAGES:
            t, code = await timed_request(client, "GET", page)
            if code == 200:
                times[page].append(t)
    return {
        p: {"ok": len(ts), "p50_ms": 1000 * median(ts), "p95_ms": 1000 * percentile(ts, 95)}
        for p, ts in times.items()
        if ts
    }


async def phase(client: httpx.AsyncClient, text: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "score_1_client": await score_latencies(client, text, 1, args.single),
        "score_8_clients": await score_latencies(client, text, 8, args.per_client),
        "pages": await page_latencies(client, args.page_requests),
    }


# ---------------------------------------------------------------- the training run


async def run_state(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    got = (await client.get(f"/api/runs/{run_id}")).json()
    return {"status": got.get("status"), "progress": got.get("progress"), "step": got.get("step")}


async def start_run(client: httpx.AsyncClient, timeout_s: float = 900) -> tuple[str, float]:
    """Launch a run and wait until it has trained its first step; its id and the wait."""
    response = await client.post("/api/runs", json=RUN_BODY)
    response.raise_for_status()
    run_id = response.json()["id"]
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        state = await run_state(client, run_id)
        if state["status"] in ("failed", "cancelled", "succeeded", "interrupted"):
            raise RuntimeError(f"the training run ended early: {state}")
        if state["status"] == "running" and (state["progress"] or 0) > 0:
            return run_id, time.perf_counter() - t0
        await asyncio.sleep(2.0)
    raise TimeoutError("the training run did not start in time")


async def cancel_run(client: httpx.AsyncClient, run_id: str, timeout_s: float = 120) -> str:
    await client.post(f"/api/runs/{run_id}/cancel")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        state = await run_state(client, run_id)
        if state["status"] not in ("queued", "running"):
            return str(state["status"])
        await asyncio.sleep(1.0)
    return "still running"


# ---------------------------------------------------------------- main


async def measure(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as client:
        load_s = await wait_ready(client)
        text = await text_of(client, args.tokens)
        n_tokens = (await client.post("/api/score", json={"text": text})).json()["n_tokens"]
        idle = await phase(client, text, args)
        run_id, wait_s = await start_run(client)
        before = await run_state(client, run_id)
        training = await phase(client, text, args)
        after = await run_state(client, run_id)
        final = await cancel_run(client, run_id)
    return {
        "model_load_s": load_s,
        "text_tokens": n_tokens,
        "idle": idle,
        "training": training,
        "run": {
            "body": RUN_BODY,
            "first_step_wait_s": wait_s,
            "before": before,
            "after": after,
            "running_throughout": after["status"] == "running",
            "final_status": final,
        },
    }


def table(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label in ("idle", "training"):
        p = result[label]
        for key in ("score_1_client", "score_8_clients"):
            s = p[key]
            rows.append(
                {
                    "phase": label,
                    "what": f"POST /api/score x{s['clients']}",
                    "n": s["ok"],
                    "p50_ms": s["p50_ms"],
                    "p95_ms": s["p95_ms"],
                }
            )
        for page, s in p["pages"].items():
            rows.append(
                {
                    "phase": label,
                    "what": f"GET {page}",
                    "n": s["ok"],
                    "p50_ms": s["p50_ms"],
                    "p95_ms": s["p95_ms"],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    port = free_port()
    server = start_server(home, port, args.threads)
    try:
        result = asyncio.run(measure(f"http://127.0.0.1:{port}", args))
    finally:
        stop_server(server)
        shutil.rmtree(home, ignore_errors=True)  # the cancelled run's checkpoint is large
    rows = table(result)
    print_table(rows, ["phase", "what", "n", "p50_ms", "p95_ms"])
    single = result["idle"]["score_1_client"]["p50_ms"]
    pages_training = max(s["p50_ms"] for s in result["training"]["pages"].values())
    goals = {
        "score_p50_single_ms_goal": 250,
        "score_p50_single_met": single <= 250,
        "pages_p50_training_ms_goal": 100,
        "pages_p50_training_max_ms": pages_training,
        "pages_p50_training_met": pages_training < 100,
    }
    print(goals)
    write_result(
        "dashboard" + (f"_threads{args.threads}" if args.threads else "") + args.tag,
        {
            "command": "python bench/bench_dashboard.py " + " ".join(sys.argv[1:]),
            "settings": vars(args),
            "rows": rows,
            **result,
            "goals": goals,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
