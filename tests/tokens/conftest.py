"""The token tests: hand-made records (records.py) and the runs tests' client fixture."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runs"))

from runs_helpers import make_client  # noqa: E402, F401  (the runs tests' client fixture)
