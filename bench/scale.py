"""Scale: ingest N synthetic chat messages through the real path, then time searches at 10k and at N items.

The messages go through `MemoryStore.add` (SQL insert, embeddings, BM25, qdrant-edge upsert) into a fresh
data folder built by `open_twin`, exactly as an import would. The embedding model is also timed alone on
a sample of the same texts, so the share of ingest it takes is visible.
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.retrieval import git_commit, progress_bar
from storage.database import checkpoint
from storage.items import NewItem
from storage.memory import CONTEXT_TURNS, index_text
from storage.models import L0Item, Visibility
from storage.search import HybridSearcher, SearchScope

SEED = 20240501
CHATS = 50
SENDERS = 20
CHUNK = 1000  # messages per MemoryStore.add call (it batches by 512 inside)
EMBED_SAMPLE = 3000
QUERIES = 200
FIRST_CHECKPOINT = 10_000
TARGET_INGEST_PER_S = 500.0
TARGET_P95_MS = 20.0

TOPICS: dict[str, tuple[str, ...]] = {
    "work": ("deadline", "release", "sprint", "review", "budget", "client", "deploy", "meeting", "slides",
             "roadmap", "invoice", "contract", "interview", "standup", "backlog", "migration", "outage",
             "dashboard", "report", "offsite"),
    "family": ("dinner", "birthday", "school", "homework", "groceries", "holiday", "garden", "kitchen",
               "laundry", "dentist", "cousins", "wedding", "recipe", "oven", "vacuum", "picnic", "bedtime"),
    "travel": ("flight", "airport", "hotel", "passport", "luggage", "train", "ticket", "booking", "beach",
               "museum", "itinerary", "visa", "taxi", "delay", "boarding", "terminal", "hostel", "ferry"),
    "sport": ("match", "training", "gym", "marathon", "football", "tennis", "score", "coach", "league",
              "injury", "cycling", "swimming", "season", "referee", "goal", "stadium", "trainers"),
    "food": ("pizza", "sushi", "coffee", "brunch", "bakery", "ramen", "curry", "salad", "dessert", "wine",
             "tacos", "noodles", "espresso", "barbecue", "restaurant", "menu", "reservation"),
    "tech": ("laptop", "phone", "update", "password", "router", "backup", "server", "bug", "keyboard",
             "battery", "printer", "charger", "wifi", "install", "screen", "settings", "account"),
}
VERBS = ("check", "move", "book", "fix", "cancel", "confirm", "sort out", "look at", "bring", "send",
         "finish", "print", "share", "pay for", "pick up", "order", "forget about", "talk about")
WHEN = ("today", "tonight", "tomorrow", "on Monday", "on Friday", "next week", "this weekend", "at 3pm",
        "after lunch", "before the holidays", "in the morning", "later", "by Thursday", "soon")
OPENERS = ("hey", "hi", "so", "btw", "fyi", "ok", "lol", "ugh", "morning!", "quick one:", "sorry,", "wait,")
TEMPLATES = (
    "can you {verb} the {noun} {when}?",
    "I think the {noun} is fine but the {noun2} needs work",
    "{name} said the {noun} was moved {when}",
    "are we still on for the {noun} {when}",
    "don't forget the {noun}, {name} is counting on it",
    "the {noun} cost {num} in the end, not bad",
    "just got back from the {noun}, it was great",
    "I'll {verb} the {noun} {when} and tell you",
    "{code} is still on hold until the {noun} is done",
    "has anyone seen the {noun}? it was here {when}",
    "no idea about the {noun}, ask {name}",
    "{num} people signed up for the {noun} so far",
    "running late, the {noun} took forever",
    "thanks for the {noun}! {name} loved it",
)
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kai",
               "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tomas")
CODE_NAMES = ("Bluefinch", "Halvorsen", "Quokkaberry", "Marigold", "Tessellate", "Orca", "Juniper", "Kestrel")


def generate_messages(n: int, seed: int = SEED) -> Iterator[NewItem]:
    """N chat messages: ~50 chats with a main topic each, ~20 senders, 5-40 words, times over two years."""
    rng = random.Random(seed)
    topics = list(TOPICS)
    chats = [(f"chat-{i:02d}", topics[i % len(topics)]) for i in range(CHATS)]
    start = datetime(2023, 1, 1, tzinfo=UTC)
    step = timedelta(days=730) / n
    for i in range(n):
        chat, topic = chats[rng.randrange(CHATS)]
        sender = FIRST_NAMES[rng.randrange(SENDERS)]
        yield NewItem(
            source="bench", source_id=f"m{i}", chat=chat, chat_title=f"{topic} {chat[-2:]}", sender=sender,
            sender_id=sender.lower(), text=synthetic_text(rng, topic), occurred_at=start + step * i,
            visibility=rng.choice((Visibility.private, Visibility.contacts, Visibility.public)),
        )


def synthetic_text(rng: random.Random, topic: str) -> str:
    """One to several filled templates, mostly on the chat's topic, cut to 5-40 words."""
    length = rng.randint(5, 40)
    words = [rng.choice(OPENERS)] if rng.random() < 0.3 else []
    while len(words) < length:
        nouns = TOPICS[topic if rng.random() < 0.8 else rng.choice(list(TOPICS))]
        sentence = rng.choice(TEMPLATES).format(
            verb=rng.choice(VERBS), noun=rng.choice(nouns), noun2=rng.choice(nouns), when=rng.choice(WHEN),
            name=rng.choice(FIRST_NAMES), num=rng.randint(2, 500), code=rng.choice(CODE_NAMES),
        )
        words.extend((sentence if sentence[-1] in "?!" else sentence + ".").split())
    text = " ".join(words[:length])
    return text[0].upper() + text[1:]


def generate_queries(count: int, seed: int = SEED + 1) -> list[tuple[str, str]]:
    """(query, chat) pairs: a few topic words, sometimes a name or a code name; the chat for filtered runs."""
    rng = random.Random(seed)
    queries = []
    for _ in range(count):
        topic = rng.choice(list(TOPICS))
        words = rng.sample(TOPICS[topic], rng.randint(1, 3))
        if rng.random() < 0.2:
            words.append(rng.choice(CODE_NAMES + FIRST_NAMES))
        queries.append((" ".join(words), f"chat-{rng.randrange(CHATS):02d}"))
    return queries


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def time_searches(searcher: HybridSearcher, twin_id: int, queries: list[tuple[str, str]]) -> dict[str, dict]:
    """p50/p95 in ms of the full search path (query embedding, index, SQL rows) per mode, and with a chat."""
    runs: dict[str, Callable[[str, str], object]] = {
        "hybrid": lambda q, _: searcher.search(q, SearchScope(twin_id), k=10),
        "lexical": lambda q, _: searcher.search(q, SearchScope(twin_id), k=10, mode="lexical"),
        "dense": lambda q, _: searcher.search(q, SearchScope(twin_id), k=10, mode="dense"),
        "hybrid+chat": lambda q, chat: searcher.search(q, SearchScope(twin_id, chats=(chat,)), k=10),
    }
    figures = {}
    for name, run in runs.items():
        run(*queries[0])  # warm-up
        latencies = []
        for query, chat in queries:
            started = time.perf_counter()
            run(query, chat)
            latencies.append((time.perf_counter() - started) * 1000)
        figures[name] = {
            "p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2),
            "mean_ms": round(statistics.fmean(latencies), 2),
        }
    return figures


def time_embedder(embedder, texts: list[str]) -> float:  # noqa: ANN001 - storage.embeddings.Embedder
    """Texts per second of the embedding model alone."""
    embedder.embed(texts[:64])  # warm-up
    started = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started)


def folder_bytes(path: Path) -> int:
    """Bytes allocated on disk under the folder (sparse files count what they use)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def run_scale_bench(n: int, as_json: bool, results_path: Path | None, console: Console, out: Console) -> dict:
    """Ingest n synthetic messages into a fresh twin, time searches at 10k and n items, print and record."""
    from twin.app import open_twin
    from twin.settings import Settings

    started = time.perf_counter()
    queries = generate_queries(QUERIES)
    checkpoints = sorted({min(FIRST_CHECKPOINT, n), n})
    report: dict = {"benchmark": "scale", "n": n, "search": {}}
    with tempfile.TemporaryDirectory(prefix="twin-scale-") as folder:
        settings = Settings(data_dir=Path(folder) / "data", database_url=None, qdrant_url=None)
        with open_twin(settings) as twin:
            store, twin_id = twin.store, twin.twin.id
            sample = index_texts_of(list(generate_messages(min(EMBED_SAMPLE, n))))
            report["embed_per_s"] = round(time_embedder(store.embedder, sample), 1)
            ingest_s, added = 0.0, 0
            messages = generate_messages(n)
            with progress_bar(console) as bar:
                task = bar.add_task(f"ingesting {n} messages", total=n)
                for target in checkpoints:
                    t0 = time.perf_counter()
                    while added < target:
                        chunk = [next(messages) for _ in range(min(CHUNK, target - added))]
                        added += store.add(twin_id, chunk).added
                        bar.update(task, completed=added)
                    ingest_s += time.perf_counter() - t0
                    bar.update(task, description=f"building the search graph at {target} items")
                    t0 = time.perf_counter()
                    store.optimize_index()  # what an import does at its end
                    report.setdefault("optimize_s", {})[str(target)] = round(time.perf_counter() - t0, 1)
                    bar.update(task, description=f"searching at {target} items")
                    report["search"][str(target)] = time_searches(twin.searcher, twin_id, queries)
                    bar.update(task, description=f"ingesting {n} messages")
            report["ingest_s"] = round(ingest_s, 1)
            report["ingest_per_s"] = round(added / ingest_s, 1)
            report["ingest_vs_embed"] = round(report["ingest_per_s"] / report["embed_per_s"], 3)
            report["items"] = store.count(twin_id)
            checkpoint(store.engine)
            report["disk_bytes"] = {"sql": folder_bytes(settings.data_dir) - store.index.disk_bytes(),
                                    "vectors": store.index.disk_bytes()}
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["targets"] = targets(report, n)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    _print(report, as_json, out)
    if results_path is not None:
        record_result(report, results_path)
    return report


def index_texts_of(items: list[NewItem]) -> list[str]:
    """The texts the index embeds for these new messages, as the store builds them (with chat context)."""
    rows = [L0Item(kind=i.kind, chat=i.chat, chat_title=i.chat_title, sender_name=i.sender, text=i.text,
                   occurred_at=i.occurred_at) for i in items]
    history: dict[str, list[L0Item]] = {}
    texts = []
    for row in rows:
        earlier = history.setdefault(row.chat, [])
        texts.append(index_text(row, earlier[-CONTEXT_TURNS:]))
        earlier.append(row)
    return texts


def targets(report: dict, n: int) -> dict:
    """Whether the figures meet this project's targets (ingest rate; hybrid p95 at N)."""
    p95 = report["search"][str(n)]["hybrid"]["p95_ms"]
    ingest = report["ingest_per_s"]
    return {"ingest_per_s": {"target": TARGET_INGEST_PER_S, "met": ingest >= TARGET_INGEST_PER_S},
            "hybrid_p95_ms": {"target": TARGET_P95_MS, "met": p95 <= TARGET_P95_MS}}


def _print(report: dict, as_json: bool, out: Console) -> None:
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table("figure", "value", title=f"scale: {report['n']} messages")
    ingest = f"{report['ingest_per_s']} msg/s ({report['ingest_s']} s)"
    table.add_row("ingest (SQL + embeddings + index)", ingest)
    table.add_row("embedding model alone", f"{report['embed_per_s']} texts/s")
    table.add_row("ingest / embedding", f"{report['ingest_vs_embed']}")
    for size, seconds in report.get("optimize_s", {}).items():
        table.add_row(f"search graph build @ {size}", f"{seconds} s")
    for size, modes in report["search"].items():
        for mode, figures in modes.items():
            latency = f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms"
            table.add_row(f"search {mode} @ {size}", latency)
    table.add_row("peak RSS", f"{report['peak_rss_mb']} MB")
    for part, size in report["disk_bytes"].items():
        table.add_row(f"disk: {part}", f"{size / 1e6:.1f} MB")
    for name, target in report["targets"].items():
        verdict = "met" if target["met"] else "[red]missed[/red]"
        table.add_row(f"target {name}", f"{target['target']}: {verdict}")
    out.print(table)


def record_result(report: dict, path: Path, commit: str | None = None) -> None:
    """Append the report as one JSON line with the machine and the commit measured: `commit` as read when the bench
    started (a long bench outlives commits made meanwhile), else the one checked out now."""
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "processor": platform.processor() or platform.machine()}
    record = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit or git_commit(),
              "machine": machine, **report}
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
