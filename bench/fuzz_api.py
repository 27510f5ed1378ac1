"""Schemathesis fuzzing of the dashboard's own OpenAPI schema, in-process: bad input never gets a 5xx.

Every operation of /openapi.json gets the same number of generated requests, half valid
(positive) and half invalid (negative) by the schema, sent through an in-process client with the
app's lifespan running. A response fails when it is a 5xx, when the app raised, or when a 4xx
JSON error has no human-readable `detail`. The tiny random Llama stands in for every model
(also for the `default` spec), fuzzed runs start a no-op child instead of training, and the hub
is offline: the run measures the API, not the model. tests/test_fuzz_api.py runs a short version.

    .venv/bin/python bench/fuzz_api.py [--per-operation 40] [--seed N]

Prints a summary per operation and writes bench/results/fuzz_api.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as with_seed
from hypothesis import strategies as st
from schemathesis import GenerationMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402

BASE_URL = "http://testserver"
# A training child that exits at once: fuzzed POST /api/runs bodies never train.
NOOP_CHILD = ("-c", "pass")
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class FuzzReport:
    """What a fuzzing session sent and got back."""

    requests: int = 0
    seconds: float = 0.0
    by_status: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    details: dict[int, list[str]] = field(default_factory=dict)  # a few error messages per status

    def record(self, label: str, status: int, detail: str | None = None) -> None:
        self.requests += 1
        seen = self.details.setdefault(status, [])
        if detail and len(seen) < 5 and detail not in seen:
            seen.append(detail[:200])
        self.by_status[status] += 1
        self.by_operation.setdefault(label, Counter())[status] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "server_errors": sum(v for k, v in self.by_status.items() if k >= 500),
            "failures": self.failures[:20],
            "example_details": {str(k): v for k, v in sorted(self.details.items())},
            "by_operation": {
                label: {str(k): v for k, v in sorted(c.items())}
                for label, c in sorted(self.by_operation.items())
            },
        }


@contextmanager
def offline_client(home: Path, model_dir: Path, **overrides: Any) -> Iterator[TestClient]:
    """The app on `home` with its lifespan running, `model_dir` as every model, no training."""
    import huggingface_hub.constants

    import entrodrop.models

    with pytest.MonkeyPatch.context() as mp:
        # A fuzzed hub id must fail at once, not wait for a network that is not there.
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        # The `default` spec (the runs API's default model) loads the tiny model too.
        mp.setattr(entrodrop.models, "ensure_default_checkpoint", lambda: model_dir)
        # TestClient's Host is "testserver": the server answers to it only when told to.
        overrides = {"allowed_hosts": ["testserver"], **overrides}
        settings = Settings(home=home, model=str(model_dir), cancel_grace_s=1.0, **overrides)
        app = create_app(settings)
        app.state.jobs.entry = NOOP_CHILD
        app.state.jobs.poll_interval = 0.1
        with TestClient(app) as client:
            wait_for_model(client)
            yield client


def wait_for_model(client: TestClient, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not client.get("/api/health").json()["model_loaded"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the model did not load")
        time.sleep(0.05)


def operations(client: TestClient) -> list[Any]:
    """Every operation of the app's own OpenAPI schema."""
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    return [result.ok() for result in schema.get_all_operations()]


def send(client: TestClient, case: Any) -> Any:
    """Send a generated case through the in-process client, exactly as requests would encode it."""
    kw = case.as_transport_kwargs(base_url=BASE_URL)
    keys = ("method", "url", "headers", "params", "json", "data", "files", "cookies")
    prepared = requests.Request(**{k: kw[k] for k in keys if kw.get(k) is not None}).prepare()
    return client.request(
        str(prepared.method),
        str(prepared.url),
        headers=dict(prepared.headers),
        content=prepared.body,
    )


def problem(res: Any) -> str | None:
    """Why a response breaks the house rules, or None: no 5xx; a 4xx says what was wrong."""
    if res.status_code >= 500:
        return f"server error {res.status_code}"
    if 400 <= res.status_code < 500:
        detail = detail_of(res)
        if not detail or not detail.strip():
            return f"{res.status_code} without a readable detail"
    return None


def detail_of(res: Any) -> str | None:
    try:
        body = res.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) else None


def label_of(case: Any) -> str:
    existing = case.path_parameters and "{run_id}" in case.operation.path
    run_id = (case.path_parameters or {}).get("run_id", "")
    return case.operation.label + (" [a real run]" if existing and run_id.startswith("r") else "")


def check_case(client: TestClient, case: Any, report: FuzzReport) -> None:
    label = label_of(case)
    try:
        res = send(client, case)
    except Exception as exc:  # the app raised: the worst kind of 5xx
        report.record(label, 599)
        report.failures.append(
            {"operation": label, "problem": f"raised {exc!r}", "trace": traceback.format_exc()}
        )
        return
    why = problem(res)
    report.record(label, res.status_code, None if why else detail_of(res))
    if why:
        report.failures.append(
            {"operation": label, "problem": why, "body": res.text[:300], "sent": repr(case)[:500]}
        )


def fuzz(
    client: TestClient,
    per_operation: int,
    seed: int | None = None,
    report: FuzzReport | None = None,
) -> FuzzReport:
    """`per_operation` generated requests for each operation (valid and invalid ones mixed)."""
    report = report or FuzzReport()
    started = time.perf_counter()
    # Random run ids only ever meet a 404: the {run_id} operations also get an existing run.
    run_id = client.post("/api/runs", json={}).json()["id"]
    for op in operations(client):
        for path_parameters in ({}, {"run_id": run_id}) if "{run_id}" in op.path else ({},):
            strategy = st.one_of(
                [
                    op.as_strategy(generation_mode=mode, path_parameters=path_parameters)
                    for mode in MODES
                ]
            )
            run_operation(client, strategy, per_operation, seed, report)
    report.seconds += time.perf_counter() - started
    return report


def run_operation(
    client: TestClient, strategy: Any, n: int, seed: int | None, report: FuzzReport
) -> None:
    @given(case=strategy)
    @settings(
        max_examples=n,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # no shrinking: failures are collected, never raised
        suppress_health_check=list(HealthCheck),
    )
    def one(case: Any) -> None:
        check_case(client, case, report)

    (with_seed(seed)(one) if seed is not None else one)()


def print_report(report: FuzzReport) -> None:
    from bench.common import print_table

    rows = [
        {"operation": label, **{str(k): v for k, v in counts.items()}}
        for label, counts in sorted(report.by_operation.items())
    ]
    statuses = sorted({str(k) for k in report.by_status})
    print_table(rows, ["operation", *statuses])
    print(
        f"\n{report.requests} requests in {report.seconds:.1f} s; by status "
        f"{dict(sorted(report.by_status.items()))}; failures: {len(report.failures)}"
    )
    for status, details in sorted(report.details.items()):
        if status >= 400:
            print(f"  {status}: " + " | ".join(d[:80] for d in details[:3]))
    for failure in report.failures[:10]:
        print(f"  {failure['operation']}: {failure['problem']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-operation", type=int, default=40, help="requests per operation")
    p.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {seed}")
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model

    from bench.common import write_result

    with tempfile.TemporaryDirectory(prefix="entrodrop-fuzz-") as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny-llama")
        home = Path(tmp) / "home"
        with offline_client(home, model_dir) as client:
            report = fuzz(client, args.per_operation, seed)
    print_report(report)
    write_result(
        "fuzz_api", {"seed": seed, "per_operation": args.per_operation, **report.summary()}
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
