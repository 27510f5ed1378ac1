"""A study's status from its runs' statuses: every case of entrodrop.studies.status."""

from __future__ import annotations

import pytest

from entrodrop.studies.status import STUDY_STATUSES, study_status


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        (["queued", "queued"], "queued"),
        (["running", "queued"], "running"),
        (["succeeded", "queued"], "running"),  # between two runs: still going
        (["failed", "queued"], "running"),
        (["succeeded", "succeeded"], "succeeded"),
        (["succeeded", "failed"], "partial"),
        (["succeeded", "cancelled"], "partial"),
        (["succeeded", "interrupted"], "partial"),
        (["failed", "cancelled"], "failed"),
        (["cancelled", "interrupted"], "cancelled"),
        (["missing"], "cancelled"),
    ],
)
def test_study_status(runs: list[str], expected: str) -> None:
    assert study_status(runs) == expected
    assert expected in STUDY_STATUSES


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        (["interrupted", "queued"], "interrupted"),  # killed mid-run, one run left
        (["queued", "queued"], "interrupted"),  # killed before its first run ended
        (["succeeded", "interrupted"], "interrupted"),  # its last run was cut off
        (["succeeded", "cancelled"], "partial"),  # stopped with Ctrl-C: as the file says
        (["succeeded", "succeeded"], "succeeded"),
    ],
)
def test_a_study_no_process_runs_any_more(runs: list[str], expected: str) -> None:
    """An ended CLI study's unfinished runs wait for `entrodrop study --resume`."""
    assert study_status(runs, ended=True) == expected
    assert expected in STUDY_STATUSES
