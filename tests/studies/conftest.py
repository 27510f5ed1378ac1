"""The studies tests reuse the runs tests' fake training child and client fixture."""

from runs_helpers import make_client  # noqa: F401  (tests/runs is on pytest's pythonpath)
