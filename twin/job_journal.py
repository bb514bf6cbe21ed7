"""What the background jobs did: each job's start, finish and outcome, kept in the state store for `twin jobs`.

The journal listens to the scheduler's events, so it records every job the same way (the retrain job too)
without wrapping any. A job's outcome is the short text it returns (counts, never memory text); a failure
is recorded by its exception's type only (the traceback is in the log), since the state store is not
scrubbed by a forget."""

from __future__ import annotations

import os
import pickle
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine, MetaData, Table, inspect, select

from storage.state import StateStore

JOBS_TABLE = "apscheduler_jobs"  # created by APScheduler itself, beside the migrated tables
JOURNAL = "jobs"  # the state store's platform name for job records
SCHEDULER_KEY = "@scheduler"  # the record of the scheduler process itself ('@': no job id starts with it)
EVENTS = EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES


def _now() -> str:
    return datetime.now(UTC).isoformat()


class JobJournal:
    """Records one twin's job runs as the scheduler reports them; writes happen off the loop, in order."""

    def __init__(self, state: StateStore, twin_id: int) -> None:
        self.state = state
        self.twin_id = twin_id
        self._records: dict[str, dict[str, Any]] = {}
        self._scheduler_record: dict[str, Any] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-journal")

    def open(self, scheduler: BaseScheduler) -> None:
        """Start listening; runs a crash left marked as running are marked interrupted."""
        self._records = self.state.all(self.twin_id, JOURNAL)
        self._records.pop(SCHEDULER_KEY, None)
        for job_id in [job_id for job_id, record in self._records.items() if record.get("running_since")]:
            self._finish(job_id, "interrupted", "the twin stopped while it ran")
        self._scheduler_record = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": _now(),
                                  "stopped_at": None}
        self._write(SCHEDULER_KEY, self._scheduler_record)
        scheduler.add_listener(self._on_event, EVENTS)

    def close(self, scheduler: BaseScheduler) -> None:
        """Stop listening; what still runs is being cancelled with the twin."""
        scheduler.remove_listener(self._on_event)
        for job_id in [job_id for job_id, record in self._records.items() if record.get("running_since")]:
            self._finish(job_id, "interrupted", "the twin stopped while it ran")
        self._write(SCHEDULER_KEY, {**self._scheduler_record, "stopped_at": _now()})
        self._writer.shutdown(wait=True)

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            self._update(event.job_id, running_since=_now())
        elif event.code == EVENT_JOB_EXECUTED:
            outcome = event.retval if isinstance(event, JobExecutionEvent) and isinstance(event.retval, str) else ""
            self._finish(event.job_id, "ok", outcome or "done")
        elif event.code == EVENT_JOB_ERROR:
            name = type(event.exception).__name__ if isinstance(event, JobExecutionEvent) else "an error"
            self._finish(event.job_id, "failed", f"{name} (the traceback is in logs/twin.log)")
        elif event.code == EVENT_JOB_MISSED:
            self._finish(event.job_id, "missed", "its run time passed while the twin was not running", ran=False)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self._finish(event.job_id, "skipped", "the previous run had not finished", ran=False)

    def _finish(self, job_id: str, status: str, outcome: str, ran: bool = True) -> None:
        record = self._records.get(job_id, {})
        started = record.get("running_since") if ran else None
        last = {"status": status, "outcome": outcome, "started_at": started, "finished_at": _now()}
        self._update(job_id, running_since=None if ran else record.get("running_since"), last=last)

    def _update(self, job_id: str, **changes: Any) -> None:
        record = {**self._records.get(job_id, {}), **changes}
        self._records[job_id] = record
        self._write(job_id, record)

    def _write(self, key: str, value: dict[str, Any]) -> None:
        self._writer.submit(self.state.put, self.twin_id, JOURNAL, key, dict(value))


@dataclass(frozen=True)
class JobRuns:
    """What `twin jobs` shows of a job's runs: since when it runs (if it does) and its last outcome."""

    running_since: datetime | None
    last_status: str | None
    last_outcome: str | None
    last_finished: datetime | None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def job_runs(state: StateStore, twin_id: int) -> dict[str, JobRuns]:
    """Every job's recorded runs, by job id."""
    runs = {}
    for job_id, record in state.all(twin_id, JOURNAL).items():
        if job_id == SCHEDULER_KEY:
            continue
        last = record.get("last") or {}
        runs[job_id] = JobRuns(_time(record.get("running_since")), last.get("status"), last.get("outcome"),
                               _time(last.get("finished_at")))
    return runs


def scheduler_running(state: StateStore, twin_id: int) -> bool:
    """Whether a `twin run` with its jobs is up now (its process is alive, where that can be checked)."""
    record = state.get(twin_id, JOURNAL, SCHEDULER_KEY)
    if not record or record.get("stopped_at"):
        return False
    if record.get("host") != socket.gethostname():
        return True  # another machine: trust the record
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False  # it died without saying so
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class JobInfo:
    """A stored job as `twin jobs` lists it."""

    id: str
    name: str
    trigger: str
    next_run: datetime | None


def stored_jobs(engine: Engine) -> list[JobInfo]:
    """The jobs in the database with their next run, read without a scheduler (and without changing them)."""
    if not inspect(engine).has_table(JOBS_TABLE):
        return []
    table = Table(JOBS_TABLE, MetaData(), autoload_with=engine)
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.job_state).order_by(table.c.id)).all()
    return [_job_info(pickle.loads(row.job_state)) for row in rows]  # noqa: S301 - our own table


def _job_info(state: dict) -> JobInfo:
    return JobInfo(id=state["id"], name=state.get("name") or state["id"], trigger=str(state["trigger"]),
                   next_run=state.get("next_run_time"))
