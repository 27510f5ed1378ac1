"""The runs tests' fixtures: an in-process client on the test's home with the fake training child."""

from runs_helpers import make_client  # noqa: F401  (defined beside the fake child it launches)
