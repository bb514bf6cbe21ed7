"""Ingest on the path an import takes: `import_path` on short chat lines and on long messages, beside the model.

Short chat lines are LoCoMo turns, long messages LongMemEval user turns (one chat per session), the first n of
each written as one JSONL export and imported into a fresh twin exactly as `twin import` does (read and check
the file, SQL, context, embeddings, BM25, the vector index, the search graph at the end). In the same run the
embedding model alone encodes the same messages' texts, and the texts the store embeds for them (the day, the
sender and the two earlier turns: `MemoryStore.dense_texts`): ingest / model-alone is the share of the import that
is the model's own work.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlmodel import Session

from bench.datasets import load
from bench.retrieval import git_commit
from storage.models import L0Item

SHAPES = {"short chat lines (LoCoMo)": "locomo", "long messages (LongMemEval)": "longmemeval"}
PROFILE_LINES = 25


def messages_of(path: Path, format: str, n: int) -> list[dict]:
    """The first n messages of the dataset, as JSONL rows."""
    return load(path, format).messages[:n]


def time_model(embedder, texts: list[str]) -> float:  # noqa: ANN001 - storage.embeddings.Embedder
    """Texts per second of the embedding model alone (warmed up first)."""
    embedder.embed(texts[:32])
    started = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started)


def measure_shape(messages: list[dict], profile: bool) -> dict:
    """Import the messages into a fresh twin, then time the model alone on the same texts."""
    from storage.importers import import_path
    from twin.app import open_twin
    from twin.settings import Settings

    with tempfile.TemporaryDirectory(prefix="twin-ingest-") as folder:
        path = Path(folder) / "export.jsonl"
        path.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
        settings = Settings(data_dir=Path(folder) / "data", database_url=None, qdrant_url=None)
        with open_twin(settings) as twin:
            embedder = twin.store.embedder
            embedder.embed(["warm up"])
            profiler = cProfile.Profile() if profile else None
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            report = import_path(twin.store, twin.twin.id, path, format="jsonl")
            if profiler:
                profiler.disable()
            import_s = time.perf_counter() - started
            model_messages = time_model(embedder, [m["text"] for m in messages])
            with Session(twin.store.engine) as session:
                rows = list(session.scalars(select(L0Item).where(L0Item.twin_id == twin.twin.id).order_by(L0Item.id)))
            model_index = time_model(embedder, twin.store.dense_texts(rows))  # each with its day and earlier turns
    figures = {
        "messages": report.added, "mean_chars": round(sum(len(m["text"]) for m in messages) / len(messages), 1),
        "import_s": round(import_s, 1), "import_per_s": round(report.added / import_s, 1),
        "model_per_s": round(model_messages, 1), "model_index_texts_per_s": round(model_index, 1),
        "ratio": round(report.added / import_s / model_messages, 3),
        "ratio_stored_texts": round(report.added / import_s / model_index, 3),
    }
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(PROFILE_LINES)
        figures["profile"] = text.getvalue()
    return figures


def run_ingest_bench(
    locomo: Path, longmemeval: Path, n: int, profile: bool, as_json: bool, results_path: Path | None,
    console: Console, out: Console,
) -> dict:
    """Both shapes, one after the other in one run; print and record the figures."""
    started = time.perf_counter()
    report: dict = {"benchmark": "ingest", "n": n, "shapes": {}}
    for name, format in SHAPES.items():
        console.print(f"importing {n} {name} ...")
        data = locomo if format == "locomo" else longmemeval
        report["shapes"][name] = measure_shape(messages_of(data, format, n), profile)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    if as_json:
        out.print_json(json.dumps(report))
    else:
        table = Table("shape", "messages", "mean chars", "import msg/s", "model alone msg/s",
                      "model on stored texts", "import / model", "import / model on stored",
                      title="ingest through import_path")
        for name, f in report["shapes"].items():
            table.add_row(name, str(f["messages"]), str(f["mean_chars"]), str(f["import_per_s"]),
                          str(f["model_per_s"]), str(f["model_index_texts_per_s"]), str(f["ratio"]),
                          str(f["ratio_stored_texts"]))
        out.print(table, width=max(out.width, 120))
        for name, f in report["shapes"].items():
            if "profile" in f:
                out.print(f"profile of the import, {name}:\n{f['profile']}")
    if results_path is not None:
        record = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": git_commit(),
                  **{k: v for k, v in report.items()}}
        for figures in record["shapes"].values():
            figures.pop("profile", None)
        with results_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    return report
