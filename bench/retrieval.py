"""Retrieval quality on LoCoMo: conversations imported like a user's JSONL export, then searched per question.

For every question of categories 1-4, the conversation's turns are ranked by hybrid search, plain BM25 and
dense search, and the evidence turns are looked for in the top k: any@k (at least one), all@k (every one).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table
from sqlalchemy import select
from sqlmodel import Session

from storage.lexical import Bm25Params
from storage.memory import CONTEXT_TURNS, MemoryStore
from storage.models import L0Item
from storage.search import HybridSearcher, SearchScope

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}  # 5: adversarial
SYSTEMS = {"hybrid": "hybrid", "bm25": "lexical", "dense": "dense"}  # name shown -> search mode
KS = (1, 5, 10, 20)
SOURCE = "locomo"
SECONDS_PER_TURN = 5  # turns of a session share its start time; a few seconds apart keeps their order


@dataclass(frozen=True)
class Question:
    """One question with the turns (dia_ids) that hold its answer."""

    chat: str
    text: str
    category: int
    evidence: frozenset[str]


def session_start(date_time: str) -> datetime:
    """A LoCoMo session time ("1:56 pm on 8 May, 2023") as UTC."""
    return datetime.strptime(date_time, "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def message_text(turn: dict) -> str:
    """What a chat export shows for a turn: its text, and the description of a photo it shared."""
    caption = turn.get("blip_caption")
    return f"{turn['text']} [shared a photo: {caption}]" if caption else turn["text"]


def to_messages(sample: dict) -> list[dict]:
    """One LoCoMo conversation as JSONL messages (our import format), in order."""
    conversation = sample["conversation"]
    messages = []
    sessions = sorted(
        (int(key.removeprefix("session_")), turns)
        for key, turns in conversation.items()
        if key.startswith("session_") and isinstance(turns, list)
    )
    for number, turns in sessions:
        start = session_start(conversation[f"session_{number}_date_time"])
        for position, turn in enumerate(turns):
            if not message_text(turn).strip():
                continue
            moment = start + timedelta(seconds=SECONDS_PER_TURN * position)
            messages.append(
                {"id": turn["dia_id"], "chat": sample["sample_id"], "sender": turn["speaker"],
                 "text": message_text(turn), "timestamp": moment.isoformat(), "source": SOURCE}
            )
    return messages


def to_questions(sample: dict, turns: set[str]) -> list[Question]:
    """Questions of categories 1-4 whose evidence is in the conversation (unknown ids are dropped)."""
    questions = []
    for qa in sample["qa"]:
        if qa.get("category") not in CATEGORIES:
            continue
        ids = {part for entry in qa.get("evidence", []) for part in entry.replace(";", " ").split()}
        evidence = frozenset(ids & turns)
        if evidence:
            questions.append(Question(sample["sample_id"], str(qa["question"]), qa["category"], evidence))
    return questions


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


def import_conversations(
    store: MemoryStore, twin_id: int, samples: list[dict], folder: Path, console: Console
) -> int:
    """Write the conversations as one JSONL export and import it as a user would; returns items added."""
    from storage.importers import import_path

    path = folder / "locomo.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.writelines(json.dumps(message) + "\n" for message in to_messages(sample))
    with progress_bar(console) as bar:
        task = bar.add_task("importing LoCoMo", total=None)
        report = import_path(
            store, twin_id, path, format="jsonl",
            progress=lambda done, total: bar.update(task, advance=done, total=total),
        )
    return report.added


def turn_ids(store: MemoryStore) -> dict[int, tuple[str, str]]:
    """L0 item id -> (chat, dia_id), for the imported items."""
    with Session(store.engine) as session:
        query = select(L0Item.id, L0Item.chat, L0Item.source_id).where(L0Item.source == SOURCE)
        rows = session.execute(query).all()
    return {item_id: (chat, source_id.removeprefix(f"{chat}/")) for item_id, chat, source_id in rows}


def evaluate(
    searcher: HybridSearcher, twin_id: int, questions: list[Question], turns: dict[int, tuple[str, str]],
    console: Console,
) -> dict[str, dict]:
    """Every system on every question: figures overall and per category, and median search latency."""
    results = {}
    with progress_bar(console) as bar:
        for name, mode in SYSTEMS.items():
            task = bar.add_task(f"searching ({name})", total=len(questions))
            overall, by_category, latencies = Tally(), {c: Tally() for c in CATEGORIES}, []
            for question in questions:
                scope = SearchScope(twin_id, chats=(question.chat,))
                started = time.perf_counter()
                hits = searcher.rank(question.text, scope, mode=mode)
                latencies.append(time.perf_counter() - started)
                ranked = first_distinct((turns[hit.id][1] for hit in hits if hit.id in turns), max(KS))
                overall.add(ranked, question.evidence)
                by_category[question.category].add(ranked, question.evidence)
                bar.advance(task)
            results[name] = {
                "overall": overall.figures(),
                "by_category": {CATEGORIES[c]: tally.figures() for c, tally in by_category.items()},
                "latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
            }
    return results


def figures_table(results: dict[str, dict]) -> Table:
    """Systems x k, overall and per category; each cell is any@k / all@k in percent."""
    figures = [Column(f"any/all@{k}", justify="right") for k in KS]
    columns = [Column("questions", no_wrap=True), "system", *figures]
    table = Table(*columns, box=box.SIMPLE_HEAD, title="LoCoMo retrieval (%), categories 1-4")
    for scope in ("overall", *CATEGORIES.values()):
        for name, result in results.items():
            row = result["overall"] if scope == "overall" else result["by_category"][scope]
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
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":/storage", ":/twin", ":/core")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if commit and dirty else commit or None


def run_retrieval_bench(
    data: Path, as_json: bool, results_path: Path | None, console: Console, out: Console
) -> dict:
    """Import LoCoMo into a fresh twin, search every question with each system, print and record figures."""
    from twin.app import open_twin
    from twin.settings import Settings

    started = time.perf_counter()
    samples = json.loads(Path(data).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as folder:
        settings = Settings(data_dir=Path(folder) / "data", database_url=None, qdrant_url=None)
        with open_twin(settings) as twin:
            items = import_conversations(twin.store, twin.twin.id, samples, Path(folder), console)
            turns = turn_ids(twin.store)
            questions = [q for sample in samples for q in to_questions(
                sample, {dia_id for chat, dia_id in turns.values() if chat == sample["sample_id"]})]
            weights = twin.searcher.weights
            searcher = HybridSearcher(twin.store, replace(weights, depth=max(weights.depth, max(KS))))
            systems = evaluate(searcher, twin.twin.id, questions, turns, console)
    report = {
        "benchmark": "locomo-retrieval", "data": str(data), "conversations": len(samples), "items": items,
        "questions": len(questions), "systems": systems, "wall_s": round(time.perf_counter() - started, 1),
        "params": {"fusion": asdict(searcher.weights), "bm25": asdict(Bm25Params()),
                   "context_turns": CONTEXT_TURNS, "embedding_model": settings.embedding_model,
                   "embedding_quantize": settings.embedding_quantize},
    }
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(figures_table(systems))
        latency = ", ".join(f"{name} {result['latency_ms_p50']:.1f} ms" for name, result in systems.items())
        out.print(f"median search latency per query: {latency}")
        out.print(f"{items} turns, {len(questions)} questions, {report['wall_s']} s")
    if results_path is not None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        record = {"timestamp": now, "commit": git_commit(), **report}
        with results_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    return report
