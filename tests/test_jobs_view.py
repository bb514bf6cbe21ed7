"""`twin jobs` shows what runs now, what waits, and the last outcome of each job, from the jobs' own records."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from typer.testing import CliRunner

from core.llm import OpenAIChatClient
from storage.items import NewItem
from storage.memory import MemoryStore
from storage.models import Direction, Twin, Visibility
from storage.search import HybridSearcher
from storage.state import StateStore
from twin.app import TwinApp
from twin.cli import app as cli
from twin.job_journal import JOURNAL, job_runs
from twin.scheduler import SchedulerConfig, background_jobs
from twin.settings import Settings
from twin.testing import RecordingLLM


def jobs_json(runner: CliRunner) -> dict:
    result = runner.invoke(cli, ["jobs", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def by_id(view: dict) -> dict[str, dict]:
    return {job["id"]: job for job in view["jobs"]}


async def until(condition, seconds: float = 20.0) -> None:  # noqa: ANN001 - a callable returning bool
    for _ in range(int(seconds * 20)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


def test_jobs_show_the_running_job_then_its_outcome_then_what_waits(
    store: MemoryStore, twin: Twin, llm: RecordingLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("TWIN_DATABASE_URL", url)
    runner = CliRunner()
    store.add(twin.id, [NewItem(source="chat", source_id="1", chat="c", sender="Ada", sender_id="ada",
                                text="I moved to Lisbon last week", occurred_at=datetime.now(UTC),
                                visibility=Visibility.public, direction=Direction.outbound)])
    llm.script.append({"facts": [{"text": "Ada lives in Lisbon", "sources": [1], "confidence": 1}]})
    llm.delay = 1.5  # the extraction is mid-way while `twin jobs` looks
    settings = Settings(owner_name="Ada", database_url=url)
    app = TwinApp(settings=settings, store=store, searcher=HybridSearcher(store), twin=twin)
    config = SchedulerConfig(extract_every=0.3, quiet_for=0, profile_every=3600)
    extract = f"l1-extract:{twin.id}"
    state = StateStore(store.engine)
    seen: dict[str, dict] = {}

    def last_of(job_id: str) -> str | None:
        runs = job_runs(state, twin.id).get(job_id)
        return runs.last_status if runs else None

    async def go() -> None:
        async with httpx.AsyncClient(base_url=llm.url + "/") as http, \
                background_jobs(app, OpenAIChatClient(http, default_model="base", attempts=1), config):
            await until(lambda: (runs := job_runs(state, twin.id).get(extract)) is not None
                        and runs.running_since is not None)
            seen["running"] = jobs_json(runner)
            await until(lambda: last_of(extract) == "ok")
            seen["done"] = jobs_json(runner)

    asyncio.run(go())
    running = seen["running"]
    assert running["twin_run"] is True
    assert by_id(running)[extract]["state"] == "running" and by_id(running)[extract]["since"]
    assert by_id(running)[f"profile-refresh:{twin.id}"]["state"] == "scheduled"
    done = by_id(seen["done"])[extract]
    assert done["last"]["status"] == "ok" and done["last"]["outcome"] == "read 1 items: 1 facts changed"

    stopped = jobs_json(runner)  # the twin stopped; make the extraction overdue
    assert stopped["twin_run"] is False
    _make_overdue(url, extract)
    overdue = by_id(jobs_json(runner))[extract]
    assert overdue["state"] == "waiting for `twin run`" and overdue["last"]["outcome"].startswith("read 1 items")
    table = runner.invoke(cli, ["jobs"], env={"COLUMNS": "300"}).stdout
    assert "`twin run` is not running" in table and "ok at" in table and "waiting for `twin run` since" in table


def test_a_run_that_a_crash_cut_off_shows_as_interrupted(store: MemoryStore, twin: Twin) -> None:
    from twin.job_journal import JobJournal

    state = StateStore(store.engine)
    state.put(twin.id, JOURNAL, "l1-extract:1", {"running_since": datetime.now(UTC).isoformat(), "last": None})

    class NoScheduler:  # the journal only adds and removes its listener
        def add_listener(self, *_: object) -> None: ...
        def remove_listener(self, *_: object) -> None: ...

    journal = JobJournal(state, twin.id)
    journal.open(NoScheduler())  # type: ignore[arg-type]
    journal.close(NoScheduler())  # type: ignore[arg-type]
    runs = job_runs(state, twin.id)["l1-extract:1"]
    assert runs.running_since is None and runs.last_status == "interrupted"


def _make_overdue(url: str, job_id: str) -> None:
    """Move a stored job's next run into the past, as hours without `twin run` would."""
    import pickle

    from sqlalchemy import MetaData, Table, create_engine, update

    engine = create_engine(url)
    table = Table("apscheduler_jobs", MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        row = connection.execute(table.select().where(table.c.id == job_id)).one()
        job_state = pickle.loads(row.job_state)  # noqa: S301 - our own table
        job_state["next_run_time"] = datetime.now(UTC) - timedelta(hours=2)
        connection.execute(update(table).where(table.c.id == job_id).values(
            job_state=pickle.dumps(job_state), next_run_time=job_state["next_run_time"].timestamp()))
    engine.dispose()
