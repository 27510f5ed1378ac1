"""Token dynamics: the per-token record of a run's evaluations (docs/tokens.md) and its views.

``record`` stores it, ``probe`` chooses which tokens it follows, ``cartography`` classes them,
``compare`` sets two runs (or a study's variants) side by side, ``view`` builds the JSON the API
and the CLI print. The bound lives here, in one place, for the config's field limits and the docs.
"""

from __future__ import annotations

# The record follows at most this many tokens (held-out first, then general text, then training
# tokens) and keeps at most this many evaluations (thinned evenly past that; the first and the
# last always kept): a 8,192 x 64 record is about 5 MB on disk.
MAX_PROBE_TOKENS = 8192
MAX_EVALUATIONS = 64


class TokenRecordError(ValueError):
    """A token record that cannot serve a request, with a message meant for a person."""


class NoTokenRecord(TokenRecordError):
    """The run has no token record (recording off, or no evaluation yet)."""


class ProbeMismatch(TokenRecordError):
    """Two records follow different tokens, so there is no per-token difference."""


class StepNotRecorded(TokenRecordError):
    """A step the record holds no row for."""
