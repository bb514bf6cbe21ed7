"""The background scheduler: jobs persisted in the twin's database survive a restart, a missed run runs once,
and the real jobs extract facts on the app's loop once new L0 items settle; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from core.llm import OpenAIChatClient
from storage.database import create_database_engine
from storage.facts import FactStore
from storage.items import NewItem
from storage.memory import MemoryStore
from storage.models import Direction, Twin, Visibility
from storage.profiles import ProfileStore
from storage.search import HybridSearcher
from twin.app import TwinApp
from twin.scheduler import (
    JobSpec,
    SchedulerConfig,
    background_jobs,
    extract_facts,
    job_specs,
    memory_jobs,
    register,
    start_scheduler,
    stored_jobs,
    unregister,
)
from twin.settings import Settings
from twin.testing import RecordingLLM

RUNS: list[int] = []  # what count_run saw, in this process


async def count_run(key: int) -> None:
    """A job that only records that it ran (module-level: jobs are pickled by reference)."""
    RUNS.append(key)



def fresh_engine(store: MemoryStore) -> Engine:
    """A second engine on the store's database, as another process would open it."""
    return create_database_engine(store.engine.url.render_as_string(hide_password=False))


def next_runs(engine: Engine) -> dict[str, datetime | None]:
    return {job.id: job.next_run for job in stored_jobs(engine)}


async def run_scheduler(engine: Engine, specs: list[JobSpec], seconds: float = 0.0) -> dict[str, datetime | None]:
    """Start a scheduler with the jobs, let it run a while, stop it; the next run times it left."""
    async with start_scheduler(engine, specs) as scheduler:
        await asyncio.sleep(seconds)
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}


def test_jobs_survive_a_restart_with_their_next_run_times(store: MemoryStore, twin: Twin) -> None:
    specs = job_specs(twin.id, SchedulerConfig())
    assert stored_jobs(fresh_engine(store)) == []
    first = asyncio.run(run_scheduler(fresh_engine(store), specs))
    assert set(first) == {f"l1-extract:{twin.id}", f"profile-refresh:{twin.id}", "index-optimize", f"retrain:{twin.id}"}
    assert all(when > datetime.now(UTC) for when in first.values())
    assert next_runs(fresh_engine(store)) == first  # stored, readable without a scheduler (`twin jobs`)
    again = asyncio.run(run_scheduler(fresh_engine(store), specs))
    assert again == first  # a restart keeps each job's next run instead of postponing it
    hourly = job_specs(twin.id, SchedulerConfig(extract_every=7200))
    changed = asyncio.run(run_scheduler(fresh_engine(store), hourly))
    assert changed[f"l1-extract:{twin.id}"] > first[f"l1-extract:{twin.id}"] + timedelta(minutes=30)
    assert changed["index-optimize"] == first["index-optimize"]  # only the changed job was replaced


def test_a_missed_run_runs_once_after_a_restart(store: MemoryStore, twin: Twin) -> None:
    RUNS.clear()
    spec = JobSpec("count", count_run, (7,), 3600, "counts its runs")

    async def miss_three_runs() -> None:
        async with start_scheduler(fresh_engine(store), [spec]) as scheduler:
            scheduler.pause()
            scheduler.modify_job("count", next_run_time=datetime.now(UTC) - timedelta(hours=3, minutes=1))

    asyncio.run(miss_three_runs())
    assert RUNS == []
    after = asyncio.run(run_scheduler(fresh_engine(store), [spec], seconds=1.5))
    assert RUNS == [7]  # four run times were missed; coalescing runs the job once
    assert datetime.now(UTC) < after["count"] <= datetime.now(UTC) + timedelta(hours=1)


def said_by_ada(store: MemoryStore, twin: Twin, text: str) -> None:
    store.add(twin.id, [NewItem(source="chat", source_id=text, chat="c", sender="Ada", sender_id="ada", text=text,
                                occurred_at=datetime.now(UTC), visibility=Visibility.public,
                                direction=Direction.outbound)])


@asynccontextmanager
async def chat_client(llm: RecordingLLM) -> AsyncIterator[OpenAIChatClient]:
    async with httpx.AsyncClient(base_url=llm.url + "/") as http:
        yield OpenAIChatClient(http, default_model="base", attempts=1)


def app_on(store: MemoryStore, twin: Twin) -> TwinApp:
    settings = Settings(owner_name="Ada", database_url=store.engine.url.render_as_string(hide_password=False))
    return TwinApp(settings=settings, store=store, searcher=HybridSearcher(store), twin=twin)


def test_extraction_waits_for_the_conversation_to_settle(store: MemoryStore, twin: Twin, llm: RecordingLLM) -> None:
    said_by_ada(store, twin, "I just adopted a greyhound called Pixel")
    llm.script.extend([{"facts": [{"text": "Ada has a greyhound called Pixel", "sources": [1], "confidence": 1}]},
                       {"global_bio": "Ada, dog owner", "status_bio": "New dog", "topics": []}])

    async def go(config: SchedulerConfig) -> None:
        async with chat_client(llm) as client:
            register(twin.id, memory_jobs(app_on(store, twin), client, config))
            try:
                await extract_facts(twin.id)
            finally:
                unregister(twin.id)

    asyncio.run(go(SchedulerConfig()))  # the message is seconds old: the conversation may go on
    assert llm.requests == []
    asyncio.run(go(SchedulerConfig(quiet_for=0)))
    assert [fact.text for fact in FactStore(store.engine).current(twin.id)] == ["Ada has a greyhound called Pixel"]
    assert ProfileStore(store.engine).active(twin.id, "stranger").global_bio == "Ada, dog owner"  # enough changed
    asyncio.run(extract_facts(twin.id))  # no running app registered: nothing happens
    assert len(llm.requests) == 2


def test_twin_run_jobs_extract_facts_on_the_apps_loop(store: MemoryStore, twin: Twin, llm: RecordingLLM) -> None:
    said_by_ada(store, twin, "My sister Grace visits in June")
    llm.script.append({"facts": [{"text": "Ada's sister Grace visits in June", "sources": [1], "confidence": 1}]})
    config = SchedulerConfig(extract_every=0.2, quiet_for=0, profile_every=3600)
    facts = FactStore(store.engine)

    async def go() -> None:
        async with chat_client(llm) as client, background_jobs(app_on(store, twin), client, config):
            for _ in range(100):
                if facts.current(twin.id):
                    return
                await asyncio.sleep(0.1)

    asyncio.run(go())
    assert [fact.text for fact in facts.current(twin.id)] == ["Ada's sister Grace visits in June"]


def test_job_intervals_are_settings_and_a_bad_one_is_named(
    store: MemoryStore, twin: Twin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_JOBS", '{"extract_every": 45, "profile_every": 7200}')
    settings = Settings(owner_name="Ada", llm_url="http://127.0.0.1:9/v1")
    assert settings.jobs.extract_every == 45 and settings.jobs.retrain_every == SchedulerConfig().retrain_every
    app = TwinApp(settings=settings, store=store, searcher=HybridSearcher(store), twin=twin)

    async def intervals() -> dict[str, timedelta]:
        async with httpx.AsyncClient(base_url=settings.llm_url) as http:
            llm = OpenAIChatClient(http, default_model="base")
            async with background_jobs(app, llm) as scheduler:
                return {job.id: job.trigger.interval for job in scheduler.get_jobs()}

    found = asyncio.run(intervals())
    assert found[f"l1-extract:{twin.id}"] == timedelta(seconds=45)
    assert found[f"profile-refresh:{twin.id}"] == timedelta(hours=2)
    monkeypatch.setenv("TWIN_JOBS", '{"extract_every": -1}')
    with pytest.raises(ValidationError, match=r"jobs\.extract_every"):
        Settings()
