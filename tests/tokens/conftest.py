"""The token tests: hand-made records (records.py) and the runs tests' client fixture."""

from __future__ import annotations

from runs_helpers import make_client  # noqa: F401  (the runs tests' client fixture; pyproject puts tests/runs on the path)
