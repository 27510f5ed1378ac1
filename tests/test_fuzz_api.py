"""Schemathesis on the app's own OpenAPI schema, in-process with the tiny model: never a 5xx."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not installed

from bench.fuzz_api import fuzz, offline_client, operations  # noqa: E402

# Generated requests per operation, valid and invalid mixed: ~170 in all for the 28 operations
# (those without parameters have a single possible request; those of one run get a second
# round with an existing run). bench/fuzz_api.py runs more.
PER_OPERATION = 4


def test_generated_requests_never_get_a_server_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    with offline_client(tmp_path / "home", tiny_model_dir) as client:
        labels = {op.label for op in operations(client)}
        report = fuzz(client, PER_OPERATION)
    assert not report.failures, json.dumps(report.failures[:5], indent=1)
    assert max(report.by_status) < 500
    reached = {label.split(" [")[0] for label in report.by_operation}
    assert reached == labels  # every operation, the {run_id} ones also with an existing run
    assert any(label.endswith("[a real run]") for label in report.by_operation)
    assert 60 <= report.requests <= 210, report.requests
    assert any(400 <= s < 500 for s in report.by_status)  # the invalid half was refused
    assert any(s < 300 for s in report.by_status)  # and the valid half served
