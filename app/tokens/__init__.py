"""Token dynamics over HTTP: a run's per-token record, and token-level compares of runs and studies."""
