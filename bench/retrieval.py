"""Retrieval quality on LoCoMo and LongMemEval: the data imported like a user's JSONL export, then searched.

For every question the items of its corpus are ranked by our hybrid search and by each of its two sides (the
lexical side: BM25 with context fields; the dense side: MiniLM on the message with its context), and by the
plain baselines (bench/baselines.py: each message alone); the evidence turns are looked for in the first k
distinct turns: any@k (at least one), all@k (every one).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from sqlalchemy import select
from sqlmodel import Session

from bench.baselines import PLAIN_RRF_K, PlainCorpus
from bench.datasets import Dataset, Question, load
from storage.lexical import Bm25Params
from storage.memory import CONTEXT_TURNS, MemoryStore
from storage.models import L0Item
from storage.search import HybridSearcher, SearchScope

SYSTEMS = {"hybrid": "hybrid", "our-bm25": "lexical", "our-dense": "dense"}  # name shown -> search mode; the
# hybrid's two sides: BM25 with the context fields, MiniLM on the message with its day and context
KS = (1, 5, 10, 20)
HALVES = ("first half", "second half")  # of the questions, in the dataset's order
Ranker = Callable[[Question], list[int]]


def first_distinct(turns: Iterable[str], k: int) -> list[str]:
    """The first k different turns, in order."""
    seen: list[str] = []
    for turn in turns:
        if turn not in seen:
            seen.append(turn)
            if len(seen) == k:
                break
    return seen


@dataclass
class Tally:
    """Hits counted for one system over a set of questions."""

    questions: int = 0
    any_hits: dict[int, int] | None = None
    all_hits: dict[int, int] | None = None

    def add(self, ranked: list[str], evidence: frozenset[str]) -> None:
        """Count one question's ranking."""
        self.any_hits = self.any_hits or dict.fromkeys(KS, 0)
        self.all_hits = self.all_hits or dict.fromkeys(KS, 0)
        self.questions += 1
        for k in KS:
            top = set(ranked[:k])
            self.any_hits[k] += bool(top & evidence)
            self.all_hits[k] += evidence <= top

    def figures(self) -> dict[str, float | int]:
        """any@k and all@k as fractions of the questions."""
        n = max(self.questions, 1)
        figures: dict[str, float | int] = {"questions": self.questions}
        figures |= {f"any@{k}": round((self.any_hits or {}).get(k, 0) / n, 4) for k in KS}
        figures |= {f"all@{k}": round((self.all_hits or {}).get(k, 0) / n, 4) for k in KS}
        return figures


def progress_bar(console: Console) -> Progress:
    """A progress bar on the given console."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )


def import_dataset(store: MemoryStore, twin_id: int, dataset: Dataset, folder: Path, console: Console) -> float:
    """Write the messages as one JSONL export and import it as a user would; returns the seconds it took."""
    from storage.importers import import_path

    path = folder / f"{dataset.source}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(message) + "\n" for message in dataset.messages)
    started = time.perf_counter()
    with progress_bar(console) as bar:
        task = bar.add_task(f"importing {dataset.name}", total=None)
        import_path(store, twin_id, path, format="jsonl",
                    progress=lambda done, total: bar.update(task, advance=done, total=total))
    return time.perf_counter() - started


def imported(store: MemoryStore, source: str) -> list[tuple[int, str, str, str]]:
    """(item id, chat, turn id, text) of the imported items, by id."""
    with Session(store.engine) as session:
        query = select(L0Item.id, L0Item.chat, L0Item.source_id, L0Item.text).where(L0Item.source == source)
        rows = session.execute(query.order_by(L0Item.id)).all()
    return [(id, chat, source_id.removeprefix(f"{chat}/"), text) for id, chat, source_id, text in rows]


def rankers(searcher: HybridSearcher, twin_id: int, plain: PlainCorpus, members: Callable[[Question], tuple[int, ...]]
            ) -> dict[str, Ranker]:
    """Every system as question -> item ids, best first."""
    def store_ranker(mode: str) -> Ranker:
        return lambda q: [hit.id for hit in searcher.rank(q.text, SearchScope(twin_id, chats=q.chats,
                                                                                asked_at=q.asked_at), mode=mode)]

    systems: dict[str, Ranker] = {name: store_ranker(mode) for name, mode in SYSTEMS.items()}
    systems["plain-bm25"] = lambda q: plain.bm25(q.text, members(q))
    systems["plain-dense"] = lambda q: plain.dense(q.text, members(q))
    systems["plain-rrf"] = lambda q: plain.fusion(q.text, members(q))
    return systems


def evaluate(dataset: Dataset, systems: dict[str, Ranker], turns: dict[int, str], console: Console) -> dict[str, dict]:
    """Every system on every question: figures overall, per half of the questions (a change must hold on both),
    per question type, and median latency."""
    results, half = {}, len(dataset.questions) // 2
    with progress_bar(console) as bar:
        for name, ranker in systems.items():
            task = bar.add_task(f"searching ({name})", total=len(dataset.questions))
            overall, by_half, by_category, latencies = Tally(), defaultdict(Tally), defaultdict(Tally), []
            for at, question in enumerate(dataset.questions):
                started = time.perf_counter()
                ids = ranker(question)
                latencies.append(time.perf_counter() - started)
                ranked = first_distinct((turns[id] for id in ids if id in turns), max(KS))
                overall.add(ranked, question.evidence)
                by_half[HALVES[at >= half]].add(ranked, question.evidence)
                by_category[question.category].add(ranked, question.evidence)
                bar.advance(task)
            results[name] = {
                "overall": overall.figures(),
                "halves": {h: by_half[h].figures() for h in HALVES},
                "by_category": {c: by_category[c].figures() for c in dataset.categories if c in by_category},
                "latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
            }
    return results


def figures_table(results: dict[str, dict], title: str) -> Table:
    """Systems x k, overall and per question type; each cell is any@k / all@k in percent."""
    figures = [Column(f"any/all@{k}", justify="right") for k in KS]
    table = Table(Column("questions", no_wrap=True), "system", *figures, box=box.SIMPLE_HEAD, title=title)
    first = next(iter(results.values()))
    for scope in ("overall", *first["halves"], *first["by_category"]):
        for name, result in results.items():
            row = result["overall"] if scope == "overall" else {**result["halves"], **result["by_category"]}[scope]
            label = f"{scope} ({row['questions']})" if name == next(iter(results)) else ""
            cells = [f"{100 * row[f'any@{k}']:.1f}/{100 * row[f'all@{k}']:.1f}" for k in KS]
            table.add_row(label, name, *cells, end_section=name == list(results)[-1])
    return table


def git_commit() -> str | None:
    """The checked-out commit of the code being measured ("+dirty" with uncommitted changes), if any."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":/storage", ":/twin", ":/core",
                    ":/training", ":/serving", ":/bench", ":/bots")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if commit and dirty else commit or None


def run_retrieval_bench(
    data: Path, as_json: bool, results_path: Path | None, console: Console, out: Console,
    format: str = "auto", limit: int | None = None,
) -> dict:
    """Import the dataset into a fresh twin, rank every question with each system, print and record figures."""
    from twin.app import open_twin
    from twin.settings import Settings

    started = time.perf_counter()
    dataset = load(Path(data), format, limit)
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as folder:
        settings = Settings(data_dir=Path(folder) / "data", database_url=None, qdrant_url=None)
        with open_twin(settings) as twin:
            import_s = import_dataset(twin.store, twin.twin.id, dataset, Path(folder), console)
            rows = imported(twin.store, dataset.source)
            by_chat: dict[str, list[int]] = defaultdict(list)
            for id, chat, _, _ in rows:
                by_chat[chat].append(id)
            plain_started = time.perf_counter()
            plain = PlainCorpus([r[0] for r in rows], [r[3] for r in rows], twin.store.lexical, twin.store.embedder)
            plain_s = time.perf_counter() - plain_started
            weights = twin.searcher.weights
            searcher = HybridSearcher(twin.store, replace(weights, depth=max(weights.depth, max(KS))))
            systems = rankers(searcher, twin.twin.id, plain,
                              lambda q: tuple(id for chat in q.chats for id in by_chat[chat]))
            figures = evaluate(dataset, systems, {r[0]: r[2] for r in rows}, console)
    report = {
        "benchmark": f"{dataset.source}-retrieval", "data": str(data), "limit": limit, "items": len(rows),
        "questions": len(dataset.questions), "note": dataset.note, "systems": figures,
        "import_s": round(import_s, 1), "import_msg_per_s": round(len(rows) / import_s, 1),
        "plain_embedding_s": round(plain_s, 1), "wall_s": round(time.perf_counter() - started, 1),
        "params": {"fusion": asdict(searcher.weights), "bm25": asdict(Bm25Params()), "plain_rrf_k": PLAIN_RRF_K,
                   "context_turns": CONTEXT_TURNS, "embedding_model": settings.embedding_model,
                   "embedding_quantize": settings.embedding_quantize},
    }
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(figures_table(figures, f"{dataset.name} retrieval (%), any/all"), width=max(out.width, 110))
        latency = ", ".join(f"{name} {result['latency_ms_p50']:.1f} ms" for name, result in figures.items())
        out.print(f"median ranking time per question: {latency}")
        out.print(f"{len(rows)} items imported in {report['import_s']} s ({report['import_msg_per_s']} msg/s), "
                  f"{len(dataset.questions)} questions{'; ' + dataset.note if dataset.note else ''}, "
                  f"{report['wall_s']} s in all")
    if results_path is not None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        record = {"timestamp": now, "commit": git_commit(), **report}
        with results_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    return report
