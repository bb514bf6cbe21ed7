"""Tenants: T twins of N synthetic messages each in one store, against one twin alone, side by side in one run.

Every twin's messages go through `MemoryStore.add` into one database and one vector index (the embedded defaults,
as `open_twin` builds them); twin 0's same messages also go into a second, fresh store that holds nothing else.
Their vectors are computed once and reused for the lone store (same texts, same vectors). Then the same queries
run, interleaved query by query, against twin 0 in the shared store and in the lone one, so machine noise hits
both alike; every other twin of the shared store is timed on them too. Target: a twin's hybrid p95 among T twins
within 1.5x of the same twin alone.

The cost of switching adapters on the local vLLM is not measured here: it needs a vLLM serving two twins' trained
adapters; see docs/benchmarks.md for why and how to take it."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.retrieval import progress_bar
from bench.scale import CHUNK, SEED, generate_messages, generate_queries, percentile, record_result
from storage.search import HybridSearcher, SearchScope

QUERIES = 200
TARGET_RATIO = 1.5


class ReusedVectors:
    """An embedder that remembers the vectors it computed, so the lone store gets the same ones without the cost."""

    def __init__(self, embedder) -> None:  # noqa: ANN001 - storage.embeddings.Embedder
        self._embedder = embedder
        self.dim = embedder.dim
        self.remember = False
        self._known: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        if texts and all(text in self._known for text in texts):
            return np.stack([self._known[text] for text in texts])
        vectors = self._embedder.embed(texts)
        if self.remember:
            self._known.update(zip(texts, vectors, strict=True))
        return vectors


def _ingest(store, twin_id: int, seed: int, n: int) -> None:  # noqa: ANN001 - MemoryStore
    messages = list(generate_messages(n, seed=seed))
    for start in range(0, n, CHUNK):
        store.add(twin_id, messages[start:start + CHUNK])
    store.optimize_index()


def _figures(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(samples, 50), 2), "p95_ms": round(percentile(samples, 95), 2)}


def _timed(searcher: HybridSearcher, twin_id: int, query: str) -> float:
    started = time.perf_counter()
    searcher.search(query, SearchScope(twin_id), k=10)
    return (time.perf_counter() - started) * 1000


def run_tenants_bench(twins: int, n: int, as_json: bool, results_path: Path | None, console: Console,
                      out: Console) -> dict:
    """Build both stores, time hybrid searches per twin side by side, print and record."""
    from twin.app import open_twin
    from twin.settings import Settings

    started = time.perf_counter()
    queries = [query for query, _ in generate_queries(QUERIES)]
    report: dict = {"benchmark": "tenants", "twins": twins, "n_per_twin": n}
    with tempfile.TemporaryDirectory(prefix="twin-tenants-") as folder:
        shared_settings = Settings(data_dir=Path(folder) / "shared", database_url=None, qdrant_url=None)
        alone_settings = Settings(data_dir=Path(folder) / "alone", database_url=None, qdrant_url=None)
        with open_twin(shared_settings) as shared, open_twin(alone_settings) as alone:
            vectors = ReusedVectors(shared.store.embedder)
            shared.store.embedder = alone.store.embedder = vectors
            ids = [shared.store.ensure_twin(f"tenant-{i}", f"Tenant {i}").id for i in range(twins)]
            t0 = time.perf_counter()
            with progress_bar(console) as bar:
                task = bar.add_task(f"ingesting {twins} x {n} messages", total=twins + 1)
                for i, twin_id in enumerate(ids):
                    vectors.remember = i == 0
                    _ingest(shared.store, twin_id, SEED + i, n)
                    bar.update(task, advance=1)
                lone = alone.store.ensure_twin("tenant-0", "Tenant 0").id
                _ingest(alone.store, lone, SEED, n)  # the same messages as tenant 0, vectors reused
                bar.update(task, advance=1)
            report["ingest_s"] = round(time.perf_counter() - t0, 1)
            report["items"] = {"shared": shared.store.count(), "alone": alone.store.count()}
            report |= _side_by_side(shared.searcher, ids, alone.searcher, lone, queries)
    report["targets"] = {"p95_ratio": {"target": TARGET_RATIO, "met": report["worst_p95_ratio"] <= TARGET_RATIO}}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    _print(report, as_json, out)
    if results_path is not None:
        record_result(report, results_path)
    return report


def _side_by_side(shared: HybridSearcher, ids: list[int], alone: HybridSearcher, lone: int,
                  queries: list[str]) -> dict:
    """Hybrid latency per twin in the shared store and for tenant 0 alone, queries interleaved across both."""
    for searcher, twin_id in ((shared, ids[0]), (alone, lone)):
        searcher.search(queries[0], SearchScope(twin_id), k=10)  # warm-up
    per_twin: dict[int, list[float]] = {twin_id: [] for twin_id in ids}
    by_itself: list[float] = []
    for query in queries:
        by_itself.append(_timed(alone, lone, query))
        for twin_id in ids:
            per_twin[twin_id].append(_timed(shared, twin_id, query))
    alone_figures = _figures(by_itself)
    twins = {f"tenant-{i}": _figures(per_twin[twin_id]) for i, twin_id in enumerate(ids)}
    worst = max(figures["p95_ms"] for figures in twins.values())
    return {"alone": alone_figures, "shared": twins,
            "tenant0_p95_ratio": round(twins["tenant-0"]["p95_ms"] / alone_figures["p95_ms"], 2),
            "worst_p95_ratio": round(worst / alone_figures["p95_ms"], 2)}


def _print(report: dict, as_json: bool, out: Console) -> None:
    if as_json:
        out.print_json(json.dumps(report))
        return
    title = f"tenants: {report['twins']} twins x {report['n_per_twin']} messages in one store"
    table = Table("twin", "hybrid p50", "hybrid p95", title=title)
    alone = report["alone"]
    table.add_row("tenant-0 alone", f"{alone['p50_ms']} ms", f"{alone['p95_ms']} ms")
    for name, figures in report["shared"].items():
        table.add_row(f"{name} (shared)", f"{figures['p50_ms']} ms", f"{figures['p95_ms']} ms")
    table.add_row("p95 shared / alone", f"tenant-0 {report['tenant0_p95_ratio']}x",
                  f"worst {report['worst_p95_ratio']}x (target {TARGET_RATIO}x)")
    out.print(table)
