"""Pipeline: the time a message spends outside generation with N items in memory, and the local vLLM's speed.

Part 1 sends messages from owners, contacts and strangers through the real pipeline (SQLite, qdrant-edge,
the bundled embedder) with the recording test model over HTTP, and times every step by wrapping the
pipeline's dependencies; overhead = total - generation. The twin holds the synthetic owner's 32 L1 facts, which
every prompt ranks for its message. Embedding and indexing the message and the reply
run in the background (the L0 rows are written first); they are timed apart as background_indexing,
after each message, as they would run while a real model generates. Part 2 streams real prompts, recorded in part 1,
from the local vLLM: time to first token and tokens/s, one conversation and 8 at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.scale import CHUNK, generate_messages, percentile, progress_bar, record_result, synthetic_text
from core.llm import LLMUnavailable, OpenAIChatClient
from core.messages import InboundMessage
from storage.models import ItemKind
from storage.people import PeopleDirectory
from twin.settings import Settings
from twin.testing import RecordingLLM

SEED = 20241123
MESSAGES = 300
WARMUP = 10
CONCURRENCY = 8
GENERATION_TOKENS = 128
TARGET_OVERHEAD_P95_MS = 50.0
AUDIENCES = (("@owner", "Owner"), ("bench-contact", "Carla"), ("bench-stranger", "Stan"))


class StepClock:
    """Milliseconds spent in each named step of the current message."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)

    def sync(self, name: Callable[..., str] | str, function: Callable) -> Callable:
        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                step = name(*args, **kwargs) if callable(name) else name
                self.current[step] += (time.perf_counter() - started) * 1000

        return timed

    def async_(self, name: str, function: Callable) -> Callable:
        async def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.current[name] += (time.perf_counter() - started) * 1000

        return timed

    def take(self) -> dict[str, float]:
        """The steps of the message just handled, and a fresh start for the next."""
        steps, self.current = dict(self.current), defaultdict(float)
        return steps


def _add_step(_twin_id: int, items: list, *_args: object, **_kwargs: object) -> str:
    return "reply_log" if items and items[0].kind == ItemKind.reply else "dedupe_l0_write"


def build_store(settings: Settings, n: int, console: Console) -> None:
    """N synthetic items in the data dir, built once and reused (a marker file says it is complete)."""
    from twin.app import open_twin

    marker = settings.data_dir / "bench-complete"
    if marker.exists():
        return
    with open_twin(settings) as app, progress_bar(console) as bar:
        task = bar.add_task(f"building a store of {n} items (once)", total=n)
        messages, added = generate_messages(n), app.store.count(app.twin.id)
        for _ in range(added):
            next(messages)
        while added < n:
            added += app.store.add(app.twin.id, [next(messages) for _ in range(min(CHUNK, n - added))]).added
            bar.update(task, completed=added)
        bar.update(task, description="building the search graph")
        app.store.optimize_index()
    marker.write_text(str(n))


def inbound_messages(count: int, run: str) -> list[InboundMessage]:
    """Messages from an owner, a contact and a stranger over 30 chats; ids new in every run (the store is kept)."""
    rng = random.Random(SEED)
    topics = ("work", "family", "travel", "sport", "food", "tech")
    messages = []
    for i in range(count):
        sender, name = AUDIENCES[i % len(AUDIENCES)]
        chat = f"bench-chat-{sender}-{rng.randrange(10)}"
        text = synthetic_text(rng, rng.choice(topics))
        messages.append(InboundMessage(platform="bench-live", message_id=f"live-{run}-{i}", chat_id=chat,
                                       sender_id=sender, sender_name=name, text=text))
    return messages


async def time_overhead(app, llm_url: str, count: int) -> dict:  # noqa: ANN001 - TwinApp
    """Per-step and overhead p50/p95 (ms) over `count` messages."""
    from twin.conversation import open_pipeline

    clock = StepClock()
    samples: list[dict[str, float]] = []
    async with open_pipeline(app, llm_url) as pipeline:
        store, responder = pipeline.store, pipeline.responder
        store.add = clock.sync(_add_step, store.add)
        store.recent_in_chat = clock.sync("history", store.recent_in_chat)
        store.by_source = clock.sync("dedupe_l0_write", store.by_source)
        pipeline.audiences.identify = clock.sync("identify", pipeline.audiences.identify)
        responder.searcher.search = clock.sync("retrieval", responder.searcher.search)
        responder.llm.complete = clock.async_("generation", responder.llm.complete)
        responder.profile_for = clock.async_("profile_and_facts", responder.profile_for)
        ledger = pipeline.deliveries
        ledger.received = clock.async_("delivery_ledger", ledger.received)
        pipeline.autoreply.decide = clock.async_("autoreply_check", pipeline.autoreply.decide)
        for i, message in enumerate(inbound_messages(count + WARMUP, run=f"{time.time_ns()}")):
            started = time.perf_counter()
            await pipeline.handle(message)
            total = (time.perf_counter() - started) * 1000
            steps = clock.take()
            # The indexer embeds the message and the reply while a real model is still generating (seconds);
            # the recording model answers in milliseconds, so let it finish here and time it on its own.
            flush_started = time.perf_counter()
            await pipeline.indexer.flush()
            steps["background_indexing"] = (time.perf_counter() - flush_started) * 1000
            if i >= WARMUP:
                known = sum(v for k, v in steps.items() if k not in ("generation", "background_indexing"))
                samples.append(steps | {"total": total, "overhead": total - steps.get("generation", 0.0),
                                        "prompt_build_and_rest": total - known - steps.get("generation", 0.0)})
    names = sorted({name for sample in samples for name in sample})
    figures = {name: {"p50_ms": round(percentile([s.get(name, 0.0) for s in samples], 50), 2),
                      "p95_ms": round(percentile([s.get(name, 0.0) for s in samples], 95), 2)} for name in names}
    return figures


async def _stream_one(client: OpenAIChatClient, messages: list[dict[str, str]]) -> dict[str, float]:
    first, last, tokens = None, 0.0, 0
    async for at, _delta in client.stream(messages, max_tokens=GENERATION_TOKENS):
        first = at if first is None else first
        last, tokens = at, tokens + 1
    return {"ttft_ms": (first or last) * 1000, "tokens": tokens, "seconds": last}


async def time_generation(url: str, prompts: list[list[dict[str, str]]], served: str) -> dict:
    """TTFT and tokens/s on the model server: sequential single conversations, then 8 at once."""
    import httpx

    async with httpx.AsyncClient(base_url=url.rstrip("/") + "/", timeout=600) as http:
        client = OpenAIChatClient(http, default_model=served)
        await _stream_one(client, prompts[0])  # warm-up
        single = [await _stream_one(client, prompt) for prompt in prompts[:5]]
        started = time.perf_counter()
        batch = await asyncio.gather(*(_stream_one(client, p) for p in prompts[:CONCURRENCY]))
        wall = time.perf_counter() - started
    return {
        "single": {"ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in single), 1),
                   "tokens_per_s_median": round(statistics.median(r["tokens"] / r["seconds"] for r in single), 1)},
        f"concurrent_{CONCURRENCY}": {
            "ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in batch), 1),
            "tokens_per_s_per_stream_median": round(statistics.median(r["tokens"] / r["seconds"] for r in batch), 1),
            "tokens_per_s_total": round(sum(r["tokens"] for r in batch) / wall, 1)},
    }


def seed_facts(app: Any) -> int:  # noqa: ANN401 - a TwinApp
    """The synthetic owner's L1 facts (bench/data, 32 of mixed visibility), once: each prompt ranks them for its
    message, as a real owner's facts are. Returns how many are current."""
    from bench.training import DATA
    from storage.facts import FactStore, NewFact
    from storage.models import Audience, FactOrigin, Visibility

    facts = FactStore(app.store.engine)
    if not facts.current(app.twin.id, Audience.owner):
        for row in json.loads(DATA.read_text(encoding="utf-8"))["facts"]:
            facts.add(app.twin.id, NewFact(row["text"], origin=FactOrigin.owner,
                                           visibility=Visibility(row["visibility"])))
    return len(facts.current(app.twin.id, Audience.owner))


def run_pipeline_bench(
    n: int, with_llm: bool, as_json: bool, results_path: Path | None, console: Console, out: Console,
) -> dict:
    """Build (or reuse) a store of n items, time the pipeline around a recording model, then the local vLLM."""
    from twin.app import open_twin

    base = Settings()
    settings = Settings(data_dir=base.cache_dir / "bench" / f"pipeline-{n}", database_url=None, qdrant_url=None,
                        owner_name="Owner")
    build_store(settings, n, console)
    report: dict = {"benchmark": "pipeline", "n": n, "messages": MESSAGES}
    with open_twin(settings) as app, RecordingLLM(cut_to_max_tokens=True) as recorder:
        report["facts"] = seed_facts(app)
        people = PeopleDirectory(app.store.engine)
        people.add(app.twin.id, "Carla", "contact", "bench-live", "bench-contact")
        console.print(f"timing {MESSAGES} messages through the pipeline at {app.store.count(app.twin.id)} items")
        report["overhead"] = asyncio.run(time_overhead(app, recorder.url, MESSAGES))
        prompts = [request["messages"] for request in recorder.requests[-CONCURRENCY * 2:]]
    report["targets"] = {"overhead_p95_ms": {"target": TARGET_OVERHEAD_P95_MS,
                                             "met": report["overhead"]["overhead"]["p95_ms"] <= TARGET_OVERHEAD_P95_MS}}
    if with_llm:
        report["generation"] = _generation(base, prompts, console)
    _print(report, as_json, out)
    if results_path is not None:
        record_result(report, results_path)
    return report


def _generation(settings: Settings, prompts: list, console: Console) -> dict:
    from twin.conversation import model_server

    try:
        with model_server(settings) as url:
            console.print(f"streaming from the model server at {url}")
            return {"url": url, "model": settings.llm_model, **asyncio.run(
                time_generation(url, prompts, settings.llm_served_name))}
    except (LLMUnavailable, RuntimeError, ImportError) as error:
        console.print(f"generation figures skipped: {error}", style="yellow", markup=False)
        return {"skipped": str(error)}


def _print(report: dict, as_json: bool, out: Console) -> None:
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table("figure", "p50", "p95", title=f"pipeline: {report['messages']} messages, {report['n']} items")
    for name, figures in report["overhead"].items():
        table.add_row(name, f"{figures['p50_ms']} ms", f"{figures['p95_ms']} ms")
    for name, figures in report.get("generation", {}).items():
        if isinstance(figures, dict):
            table.add_row(f"vLLM {name}", ", ".join(f"{k} {v}" for k, v in figures.items()), "")
    target = report["targets"]["overhead_p95_ms"]
    table.add_row("target overhead p95", f"{target['target']} ms", "met" if target["met"] else "[red]missed[/red]")
    out.print(table)
