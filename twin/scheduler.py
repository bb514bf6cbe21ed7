"""Background jobs: APScheduler 3 on the app's asyncio loop, with its jobs persisted in the twin's own database.

Jobs are pickled by reference, so each is a module-level function that takes only a twin id; what it needs from
the running app (stores, the model) it finds in a registry that `background_jobs` fills at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import obj_to_ref
from sqlalchemy import Engine

from core.l1 import FactExtractor
from core.llm import LanguageModel, LLMUnavailable
from core.profile import ProfileBuilder
from storage.database import create_database_engine
from storage.facts import FactStore
from storage.memory import MemoryStore
from storage.profiles import ProfileStore
from storage.state import StateStore
from twin.app import TwinApp
from twin.job_journal import JOBS_TABLE, JobInfo, JobJournal, stored_jobs  # noqa: F401 - re-exported
from twin.settings import SchedulerConfig

log = logging.getLogger(__name__)

# Runs missed while the twin was down still run (once: coalesced) if the twin is back within a day.
MISFIRE_GRACE = 24 * 3600.0


@dataclass(frozen=True)
class MemoryJobs:
    """What the jobs of one twin need from the running app."""

    store: MemoryStore
    extractor: FactExtractor
    profiles: ProfileBuilder
    config: SchedulerConfig


@dataclass(frozen=True)
class JobSpec:
    """One recurring job: a fixed id, a module-level function, its plain arguments, its interval."""

    id: str
    func: Callable
    args: tuple[int, ...]
    seconds: float
    name: str


_RUNNING: dict[int, MemoryJobs] = {}  # twin id -> its running app's parts; set by background_jobs


def register(twin_id: int, jobs: MemoryJobs) -> None:
    """Make a twin's running parts available to the jobs."""
    _RUNNING[twin_id] = jobs


def unregister(twin_id: int) -> None:
    """The twin stopped: its jobs find nothing to run with."""
    _RUNNING.pop(twin_id, None)


def _running(twin_id: int) -> MemoryJobs | None:
    jobs = _RUNNING.get(twin_id)
    if jobs is None:
        log.warning("no running app for twin %d: job skipped", twin_id)
    return jobs


def settled(span: tuple[datetime, datetime] | None, now: datetime, config: SchedulerConfig) -> bool:
    """Whether unread items are ready: quiet since the last one, or the first one has waited long enough."""
    if span is None:
        return False
    first, last = span
    return now - last >= timedelta(seconds=config.quiet_for) or now - first >= timedelta(seconds=config.max_wait)


async def extract_facts(twin_id: int) -> str:
    """Job: L1 extraction over unread L0 items once they settle; a new profile when enough changed."""
    jobs = _running(twin_id)
    if jobs is None:
        return "skipped: the twin is not running"
    if not settled(await jobs.extractor.waiting(), datetime.now(UTC), jobs.config):
        return "nothing to read (or the conversation goes on)"
    try:
        report = await jobs.extractor.run()
    except LLMUnavailable as error:  # nothing was lost: the cursor did not move past the batch
        log.warning("L1 extraction postponed: %s", error)
        return "postponed: the model was unreachable"
    except asyncio.CancelledError:  # the twin is stopping mid-batch: the cursor did not move, it is read again
        log.info("L1 extraction interrupted by shutdown; it resumes at the next start")
        return "interrupted by shutdown"
    log.info("L1 extraction read %d items: %d facts changed", report.items_read, report.changed)
    if report.changed:
        await refresh_profile(twin_id)
    return f"read {report.items_read} items: {report.changed} facts changed"


async def refresh_profile(twin_id: int) -> str:
    """Job: regenerate the bio, status bio and topics of every audience when enough changed."""
    jobs = _running(twin_id)
    if jobs is None:
        return "skipped: the twin is not running"
    if not await asyncio.to_thread(jobs.profiles.due):
        return "not due: too little changed"
    try:
        version = await jobs.profiles.refresh()
    except LLMUnavailable as error:
        log.warning("profile refresh postponed: %s", error)
        return "postponed: the model was unreachable"
    except asyncio.CancelledError:  # stopping: nothing half-written (a version is saved in one transaction)
        log.info("profile refresh interrupted by shutdown")
        return "interrupted by shutdown"
    if version is None:
        return "nothing written (nothing to say, or a forget took what it was written from)"
    log.info("profile version %s written", version)
    return f"profile version {version} written"


async def optimize_index(twin_id: int) -> str:
    """Job: build the vector index's search graph (qdrant-edge builds none by itself)."""
    jobs = _running(twin_id)
    if jobs is None:
        return "skipped: the twin is not running"
    await asyncio.to_thread(jobs.store.optimize_index)
    return "search graph built"


_RETRAINERS: dict[int, Callable[[], Awaitable[object]]] = {}  # twin id -> its retrain runner (twin.l2)
_SCHEDULERS: dict[int, AsyncIOScheduler] = {}  # twin id -> the scheduler running its jobs in this process


def retrain_job_id(twin_id: int) -> str:
    return f"retrain:{twin_id}"


async def retrain_models(twin_id: int) -> None:
    """Job: retrain the adapters when asked (/retrain, a forget) or weekly when there is something new."""
    runner = _RETRAINERS.get(twin_id)
    if runner is None:
        log.warning("no retrain runner for twin %d: job skipped", twin_id)
        return
    await runner()


def run_retrain_now(twin_id: int) -> bool:
    """Make the retrain job run now, if this process runs the twin's scheduler; returns whether it did."""
    scheduler = _SCHEDULERS.get(twin_id)
    if scheduler is None or scheduler.get_job(retrain_job_id(twin_id)) is None:
        return False
    scheduler.modify_job(retrain_job_id(twin_id), next_run_time=datetime.now(UTC))
    return True


def job_specs(twin_id: int, config: SchedulerConfig) -> list[JobSpec]:
    """The recurring jobs of one twin (the index is shared, so its job has one id for all twins)."""
    return [
        JobSpec(f"l1-extract:{twin_id}", extract_facts, (twin_id,), config.extract_every, "L1 fact extraction"),
        JobSpec(f"profile-refresh:{twin_id}", refresh_profile, (twin_id,), config.profile_every,
                "bio and topics refresh"),
        JobSpec("index-optimize", optimize_index, (twin_id,), config.optimize_every, "vector index optimize"),
        JobSpec(retrain_job_id(twin_id), retrain_models, (twin_id,), config.retrain_every, "adapter retraining"),
    ]


def build_scheduler(engine: Engine) -> AsyncIOScheduler:
    """A scheduler whose jobs live in the database (one scheduler per database: never two processes)."""
    return AsyncIOScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(MISFIRE_GRACE)},
        timezone=UTC,
    )


def ensure_jobs(scheduler: AsyncIOScheduler, specs: list[JobSpec]) -> None:
    """Add the jobs; a stored job that is unchanged keeps its next run time (a restart must not postpone it)."""
    for spec in specs:
        trigger = IntervalTrigger(seconds=spec.seconds, timezone=UTC)
        stored = scheduler.get_job(spec.id)
        if stored is not None and _unchanged(stored, spec, trigger):
            continue
        scheduler.add_job(
            spec.func, trigger, id=spec.id, name=spec.name, args=list(spec.args), replace_existing=True,
            coalesce=True, max_instances=1, misfire_grace_time=int(max(spec.seconds, MISFIRE_GRACE)),
        )


def _unchanged(job: Job, spec: JobSpec, trigger: IntervalTrigger) -> bool:
    return (
        job.func_ref == obj_to_ref(spec.func) and tuple(job.args) == spec.args
        and isinstance(job.trigger, IntervalTrigger) and job.trigger.interval == trigger.interval
    )


@asynccontextmanager
async def start_scheduler(engine: Engine, specs: list[JobSpec]) -> AsyncIterator[AsyncIOScheduler]:
    """A running scheduler with the jobs in place, on the current loop; shut down on exit."""
    scheduler = build_scheduler(engine)
    scheduler.start(paused=True)  # the stored jobs are readable, none runs before ensure_jobs
    try:
        ensure_jobs(scheduler, specs)
        scheduler.resume()
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a loop callback: let it run


def memory_jobs(app: TwinApp, llm: LanguageModel, config: SchedulerConfig) -> MemoryJobs:
    """The extraction and profile parts of a running twin."""
    facts = FactStore(app.store.engine)
    name = app.twin.display_name
    return MemoryJobs(
        store=app.store,
        extractor=FactExtractor(app.twin.id, name, facts, llm),
        profiles=ProfileBuilder(app.twin.id, name, facts, ProfileStore(app.store.engine), llm),
        config=config,
    )


@asynccontextmanager
async def background_jobs(
    app: TwinApp, llm: LanguageModel, config: SchedulerConfig | None = None,
    retrainer: Callable[[], Awaitable[object]] | None = None,
) -> AsyncIterator[AsyncIOScheduler]:
    """The twin's background jobs, running on this loop while the context lasts (`twin run`); `retrainer` is what
    the retrain job runs (twin.l2.retrain_runner), passed in so that the scheduler knows nothing of L2."""
    config = config or app.settings.jobs
    register(app.twin.id, memory_jobs(app, llm, config))
    if retrainer is not None:
        _RETRAINERS[app.twin.id] = retrainer
    engine = create_database_engine(app.settings.resolved_database_url)  # the job store disposes its engine
    try:
        async with start_scheduler(engine, job_specs(app.twin.id, config)) as scheduler:
            _SCHEDULERS[app.twin.id] = scheduler
            journal = JobJournal(StateStore(app.store.engine), app.twin.id)
            await asyncio.to_thread(journal.open, scheduler)
            try:
                yield scheduler
            finally:
                await asyncio.to_thread(journal.close, scheduler)
    finally:
        _SCHEDULERS.pop(app.twin.id, None)
        _RETRAINERS.pop(app.twin.id, None)
        unregister(app.twin.id)
        engine.dispose()
