"""200 live-update streams against a real `entrodrop serve` on loopback: /api/health stays fast,
and a stream past the server's cap gets 503 with Retry-After."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from waiting import PATIENCE_S

from app.runs import events
from app.runs.storage import RunRecord, Storage
from entrodrop import runfolder as rf

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[2]
STREAMS = 200
SAMPLES = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(home: Path, port: int) -> Iterator[str]:
    """`entrodrop serve` in its own process (no model load), once /api/health answers."""
    env = dict(
        os.environ,
        ENTRODROP_HOME=str(home),
        ENTRODROP_LOAD_MODEL_ON_STARTUP="false",
        ENTRODROP_MAX_EVENT_STREAMS=str(STREAMS),
        ENTRODROP_EVENT_STREAM_LIFETIME_S="300",  # no reconnects while the test measures
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "entrodrop.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE_S  # a safety net: it returns once health answers
        while True:
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=PATIENCE_S)


def _running_run(home: Path) -> str:
    """A run the server sees as `running` (added after start-up, so recovery leaves it)."""
    run_id = rf.new_run_id()
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / rf.LOG).write_text("step 1\n")
    storage = Storage(home / "entrodrop.db")
    storage.open()
    now = time.time()
    storage.create_run(
        RunRecord(
            id=run_id, created_at=now, queued_at=now, updated_at=now, status="running",
            config={"model": "default", "method": "none"}, launcher={}, started_at=now,
        )
    )  # fmt: skip
    storage.close()
    return run_id


async def _health_p95(client: httpx.AsyncClient) -> float:
    times = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        r = await client.get("/api/health")
        times.append(time.perf_counter() - started)
        assert r.status_code == 200
    return statistics.quantiles(times, n=20)[-1]  # the 95th percentile


async def _watch(client: httpx.AsyncClient, url: str, opened: asyncio.Queue[int]) -> None:
    """One page's stream: reports once its first status event arrived, then keeps reading."""
    async with client.stream("GET", url) as r:
        await opened.put(r.status_code)
        if r.status_code != 200:
            return
        async for line in r.aiter_lines():
            if line == "event: status":
                await opened.put(0)  # 0: this stream is live


async def _flood(base: str, run_id: str) -> tuple[float, float, httpx.Response]:
    limits = httpx.Limits(max_connections=STREAMS + 20, max_keepalive_connections=STREAMS + 20)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=PATIENCE_S) as client:
        idle = await _health_p95(client)
        opened: asyncio.Queue[int] = asyncio.Queue()
        url = f"/api/runs/{run_id}/events"
        tasks = [asyncio.create_task(_watch(client, url, opened)) for _ in range(STREAMS)]
        live = 0
        while live < STREAMS:  # every stream answered 200 and sent its first status event
            code = await asyncio.wait_for(opened.get(), timeout=PATIENCE_S)
            assert code in (0, 200), f"a stream was refused: {code}"
            live += code == 0
        extra = await client.get(url)  # one more than the cap
        flood = await _health_p95(client)
        assert all(not t.done() for t in tasks), "a stream ended during the measurement"
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return idle, flood, extra


def test_200_event_streams_leave_health_answering(entrodrop_home: Path) -> None:
    """The streams live off the event loop: /api/health answers every request while all 200 are
    open, and the 201st is refused. The p95 latencies are printed (a figure, not a test: it
    depends on the machine's load; docs/security.md quotes one)."""
    with live_server(entrodrop_home, _free_port()) as base:
        run_id = _running_run(entrodrop_home)
        idle, flood, extra = asyncio.run(_flood(base, run_id))
    print(f"/api/health p95: idle {idle * 1000:.1f} ms, {STREAMS} streams {flood * 1000:.1f} ms")
    assert extra.status_code == 503 and extra.headers["retry-after"]
    assert f"at most {STREAMS}" in extra.json()["detail"]


# ------------------------------------------------------------ the feed, without a server


def _snap(rows: list[dict[str, int]], active: bool = True) -> dict[str, object]:
    return {
        "rows": rows,
        "status_key": "s",
        "status_event": "event: status\ndata: {}\n\n",
        "log_key": ([], []),
        "log_event": "event: log\ndata: {}\n\n",
        "active": active,
        "end_event": 'event: end\ndata: {"status": "succeeded"}\n\n',
    }


def test_a_feed_gives_each_stream_the_rows_after_its_cursor() -> None:
    feed = events.RunFeed("r1")
    feed.publish(_snap([{"id": 3}, {"id": 1}]))  # rows come ordered by name, not id
    feed.publish(_snap([]))
    feed.publish(_snap([{"id": 6}, {"id": 5}]))
    assert [r["id"] for r in feed.rows_after(0)] == [3, 1, 6, 5]
    assert [r["id"] for r in feed.rows_after(2)] == [3, 6, 5]
    assert [r["id"] for r in feed.rows_after(3)] == [6, 5]
    assert feed.rows_after(6) == [] and feed.cursor == 6 and feed.version == 3


class _Request:
    async def is_disconnected(self) -> bool:
        return False


def test_many_streams_share_one_read_per_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []

    def counted(runner: object, run_id: str, after: int) -> dict[str, object]:
        reads.append(after)
        return _snap([{"id": len(reads)}], active=len(reads) < 3)

    monkeypatch.setattr(events, "snapshot", counted)

    async def main() -> list[str]:
        feeds = events.EventFeeds(runner=None, max_streams=100, lifetime=60)  # type: ignore[arg-type]

        async def one() -> str:
            return "".join([e async for e in events.stream(feeds, _Request(), "r1", 0)])  # type: ignore[arg-type]

        return await asyncio.gather(*(one() for _ in range(50)))

    bodies = asyncio.run(main())
    assert len(reads) == 3  # three ticks for fifty streams, until the run ended
    for body in bodies:  # every stream saw every row and the end
        assert all(f'{{"id": {n}}}' in body for n in (1, 2, 3)), body
        assert body.rstrip().endswith('data: {"status": "succeeded"}')


def test_streams_past_the_cap_get_503() -> None:
    feeds = events.EventFeeds(runner=None, max_streams=1, lifetime=60)  # type: ignore[arg-type]
    body = events.stream(feeds, _Request(), "r1", 0)  # type: ignore[arg-type]
    feeds.open.add(body)
    with pytest.raises(events.TooManyStreams) as refused:
        feeds.check_room()
    assert refused.value.status_code == 503 and refused.value.retry_after
    del body  # a stream dropped before it started frees its place
    feeds.check_room()
