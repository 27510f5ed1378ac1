"""Cancel a study's runs, or delete a study (and optionally its runs)."""

from __future__ import annotations

from app.errors import RunConflict
from app.runs.runner import JobRunner
from app.studies.store import StudyStore
from app.studies.views import cli_study_ended, resume_command, study_runs
from entrodrop.runfolder import ACTIVE


class StudyConflict(RunConflict):
    """The study is not in a state that allows the action (409)."""


def cancel_study(runner: JobRunner, store: StudyStore, study_id: str) -> int:
    """Cancel the study's queued runs, then its running ones; returns how many were cancelled.

    Queued runs go first so that none of them starts in the gap a stopping run leaves.
    """
    record = store.get(study_id)
    if cli_study_ended(store, record):
        raise StudyConflict(
            f"study {study_id} is not running: the `entrodrop study` process that ran it has "
            f"ended (continue it with `{resume_command(store, study_id)}`)"
        )
    runs = study_runs(runner, record, ended=False)
    active = [r for r in runs if r["status"] in ACTIVE and r["page"] is not None]
    if not active and any(r["status"] in ACTIVE for r in runs):
        raise StudyConflict(
            f"study {study_id} is run by `entrodrop study`, not by this server: "
            "stop it where it runs (Ctrl-C, or a STOP file in a run's folder)"
        )
    if not active:
        raise StudyConflict(f"study {study_id} has no queued or running runs to cancel")
    cancelled = 0
    for status in ("queued", "running"):
        for run in (r for r in active if r["status"] == status):
            try:
                runner.cancel(run["id"])
                cancelled += 1
            except RunConflict:
                pass  # it finished meanwhile: nothing to stop
    return cancelled


def delete_study(runner: JobRunner, store: StudyStore, study_id: str, with_runs: bool) -> list[str]:
    """Remove the study's record; its runs too when asked (their ids are returned).

    Refused while any of its runs is queued or running, except the queued runs of a study whose
    `entrodrop study` process has ended (nothing will start them).
    """
    record = store.get(study_id)
    ended = cli_study_ended(store, record)
    runs = study_runs(runner, record, ended)
    # An ended CLI study's queued runs wait for a --resume that may never come: not busy.
    busy = [] if ended else [r for r in runs if r["status"] in ACTIVE]
    if busy and not any(r["page"] for r in busy):
        raise StudyConflict(
            f"study {study_id} is being run by `entrodrop study`: stop it where it runs first"
        )
    if busy:
        raise StudyConflict(
            f"study {study_id} has {len(busy)} queued or running runs: cancel it first"
        )
    store.delete(study_id)
    deleted = []
    for run in runs if with_runs else []:
        if run["page"] is not None:  # a run of the server's table (not a CLI study's)
            runner.delete(run["id"])  # the one way a run leaves: row, metrics and folder
            deleted.append(run["id"])
    return deleted
