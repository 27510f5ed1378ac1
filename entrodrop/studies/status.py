"""A study's status, derived from its runs' statuses: the one place the study statuses are defined."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from entrodrop.runfolder import ACTIVE

# queued: no run started yet; running: some run active, some started or finished;
# succeeded: every run succeeded; partial: finished, some succeeded and some did not;
# failed: finished, none succeeded and at least one failed; cancelled: the rest (cancelled,
# interrupted or deleted runs, none succeeded); interrupted: a study `entrodrop study` ran whose
# process ended (killed, machine stopped) with runs unfinished: `--resume` continues it.
StudyStatus = Literal[
    "queued", "running", "succeeded", "partial", "failed", "cancelled", "interrupted"
]  # fmt: skip
STUDY_STATUSES: tuple[StudyStatus, ...] = get_args(StudyStatus)
STUDY_ACTIVE: tuple[StudyStatus, ...] = ("queued", "running")
Missing = Literal["missing"]
MISSING: Missing = "missing"  # a run whose record is gone (deleted from the runs table)


def study_status(run_statuses: Iterable[str], ended: bool = False) -> StudyStatus:
    """The study's status from its runs' statuses (see STUDY_STATUSES); `ended`: no process
    runs it any more (a CLI study whose process is gone), so unfinished runs wait for --resume."""
    statuses = list(run_statuses)
    if ended and any(s in ACTIVE or s == "interrupted" for s in statuses):
        return "interrupted"
    if any(s in ACTIVE for s in statuses):
        return "queued" if all(s == "queued" for s in statuses) else "running"
    succeeded = sum(1 for s in statuses if s == "succeeded")
    if statuses and succeeded == len(statuses):
        return "succeeded"
    if succeeded:
        return "partial"
    return "failed" if "failed" in statuses else "cancelled"
