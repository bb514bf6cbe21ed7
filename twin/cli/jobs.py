"""`twin jobs`: the background jobs, what runs now, what is queued, and how each one's last run ended."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from twin.cli.common import out


@dataclass(frozen=True)
class JobLine:
    """One job as `twin jobs` shows it."""

    id: str
    name: str
    trigger: str
    state: str  # running, queued, waiting (for `twin run`), scheduled, paused
    since: datetime | None  # running since, or due since
    next_run: datetime | None
    last_status: str | None
    last_outcome: str | None
    last_finished: datetime | None

    def as_json(self) -> dict:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None
        return {"id": self.id, "name": self.name, "trigger": self.trigger, "state": self.state,
                "since": iso(self.since), "next_run": iso(self.next_run),
                "last": {"status": self.last_status, "outcome": self.last_outcome,
                         "finished_at": iso(self.last_finished)} if self.last_status else None}


def jobs(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The background jobs `twin run` keeps: what runs now, what is queued, each one's last outcome."""
    from storage.database import create_database_engine
    from twin.cli.common import load_settings

    settings = load_settings()
    engine = create_database_engine(settings.resolved_database_url)
    try:
        up, lines, retrain = _read(engine, settings.owner)
    finally:
        engine.dispose()
    if as_json:
        out.print_json(json.dumps({"twin_run": up, "jobs": [line.as_json() for line in lines],
                                   "retrain_request": retrain}))
        return
    if not lines:
        out.print("No jobs yet: `twin run` schedules them.")
        return
    out.print("`twin run` is running: jobs run in it." if up else
              "`twin run` is not running: no job runs now; a job that is due runs once when it starts.")
    out.print(_table(lines))
    if retrain:
        out.print(f"retraining requested at {_when(_time(retrain['requested_at']))} ({retrain.get('reason')}): "
                  "the retrain job takes it up at its next run")


def _read(engine: object, handle: str) -> tuple[bool, list[JobLine], dict | None]:
    from sqlalchemy import inspect, select
    from sqlmodel import Session

    from storage.models import Twin
    from storage.retrain_requests import RetrainRequests
    from storage.state import StateStore
    from twin.job_journal import (
        job_runs,
        scheduler_running,
        stored_jobs,  # not twin.scheduler: it loads the jobs and their model client
    )

    found = stored_jobs(engine)
    if not inspect(engine).has_table("twins"):
        return False, [], None
    with Session(engine) as session:
        twin_id = session.scalars(select(Twin.id).where(Twin.handle == handle)).first()
    if twin_id is None:
        return False, [], None
    state = StateStore(engine)
    up, runs = scheduler_running(state, twin_id), job_runs(state, twin_id)
    now = datetime.now(UTC)
    lines = []
    for job in found:
        run = runs.get(job.id)
        state_name, since = _state(job.next_run, run.running_since if run else None, up, now)
        lines.append(JobLine(job.id, job.name, job.trigger, state_name, since, job.next_run,
                             run.last_status if run else None, run.last_outcome if run else None,
                             run.last_finished if run else None))
    return up, lines, RetrainRequests(engine).pending(twin_id)  # not twin.l2: it loads training


def _state(next_run: datetime | None, running_since: datetime | None, up: bool,
           now: datetime) -> tuple[str, datetime | None]:
    if up and running_since is not None:
        return "running", running_since
    if next_run is None:
        return "paused", None
    if next_run <= now:
        return ("queued", next_run) if up else ("waiting for `twin run`", next_run)
    return "scheduled", None


def _table(lines: list[JobLine]) -> Table:
    table = Table("job", "every", "now", "last run", "next run")
    for line in lines:
        now = line.state if line.since is None else f"{line.state} since {_when(line.since)}"
        last = (f"{line.last_status} at {_when(line.last_finished)}: {line.last_outcome}" if line.last_status
                else "never ran")
        table.add_row(Text(line.name), Text(line.trigger), Text(now), Text(last),
                      Text(_when(line.next_run) if line.next_run else "-"))
    return table


def _when(value: datetime | None) -> str:
    return f"{value.astimezone():%Y-%m-%d %H:%M:%S}" if value else "?"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)
