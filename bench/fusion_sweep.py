"""Fusion weights swept over one import: `python -m bench.fusion_sweep --data PATH [--dense joined|per-turn]`.

A development tool for issue 14's rule (a retrieval change is kept only if it holds on both datasets and both
halves of each): the dataset is imported once, as `twin bench retrieval` imports it, each question's BM25 and
dense hits are read from the index once, and every fusion setting of the grid is scored on those same hits, on
all questions and on each half. `--dense per-turn` embeds each turn alone and adds its earlier turns' vectors
(storage/context_vectors.py) instead of embedding the message with its context as one text.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

from rich.console import Console

from bench.datasets import load
from bench.retrieval import HALVES, KS, Tally, first_distinct, import_dataset, imported
from storage import context_vectors
from storage.context_vectors import contextual_vectors
from storage.memory import MemoryStore
from storage.search import FusionWeights, SearchScope, best_first, reciprocal_rank_fusion, with_neighbours
from storage.vectors import IndexQuery

GRID = {"dense": (0.3, 0.5, 0.7, 1.0), "rrf_k": (5, 10, 20, 60), "neighbour": (0.0, 0.1, 0.2)}


def per_turn(store: MemoryStore, rows: list, turns: dict) -> list[list[float]]:
    return contextual_vectors(store.embedder, rows, turns).tolist()


def tally(questions: list, rankings: list[list], turn_of: dict[int, str]) -> dict[str, dict]:
    """any/all@k of one ranking per question: overall, per half (the bench's halves) and per question type."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    half = len(questions) // 2
    for at, (question, ranked) in enumerate(zip(questions, rankings, strict=True)):
        turns = first_distinct((turn_of[h.id] for h in ranked if h.id in turn_of), max(KS))
        for scope in ("overall", HALVES[at >= half], question.category):
            tallies[scope].add(turns, question.evidence)
    return {scope: t.figures() for scope, t in tallies.items()}


def import_once(twin, dataset, folder: Path, console: Console) -> tuple[float, dict[int, str]]:
    """The dataset imported as `twin bench retrieval` imports it: seconds taken, and each item's dataset turn id."""
    import_s = import_dataset(twin.store, twin.twin.id, dataset, folder, console)
    return import_s, {r[0]: r[2] for r in imported(twin.store, dataset.source)}


def print_records(records: list[dict], name_of) -> None:
    """any/all@10 of each record, overall and per half, a line each."""
    print(f"{'setting':34} {'overall any/all@10':>20} {'1st half':>14} {'2nd half':>14}")
    for record in records:
        cells = [f"{100 * record[s]['any@10']:.1f}/{100 * record[s]['all@10']:.1f}" for s in ("overall", *HALVES)]
        print(f"{name_of(record):34} {cells[0]:>20} {cells[1]:>14} {cells[2]:>14}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--dense", choices=("joined", "per-turn"), default="joined")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--short-chars", type=int, help="storage.context_vectors.SHORT_CHARS for --dense per-turn")
    args = parser.parse_args()
    from twin.app import open_twin
    from twin.settings import Settings

    if args.dense == "per-turn":
        MemoryStore._dense = per_turn  # type: ignore[method-assign]
        if args.short_chars:
            context_vectors.SHORT_CHARS = args.short_chars
    console = Console(stderr=True)
    dataset = load(args.data, "auto", args.limit)
    depth = max(FusionWeights().depth, max(KS))
    with tempfile.TemporaryDirectory(prefix="twin-sweep-") as folder:
        settings = Settings(data_dir=Path(folder) / "data", database_url=None, qdrant_url=None)
        with open_twin(settings) as twin:
            import_s, turn_of = import_once(twin, dataset, Path(folder), console)
            store = twin.store
            found: list[tuple[list, list]] = []
            for question in dataset.questions:
                scope = SearchScope(twin.twin.id, chats=question.chats)
                dense, sparse = store.index.search(IndexQuery(
                    dense=store.embedder.embed([question.text])[0], sparse=store.lexical.query(question.text),
                    filter=scope.vector_filter(), limit=depth))
                found.append((best_first(sparse), best_first(dense)))
    records = []
    for dense_w, rrf_k, neighbour in itertools.product(*GRID.values()):
        weights = replace(FusionWeights(), dense=dense_w, rrf_k=rrf_k, neighbour=neighbour)
        fused = [with_neighbours(reciprocal_rank_fusion([(sparse, weights.lexical), (dense, weights.dense)],
                                                        weights.rrf_k), (sparse, dense), weights.neighbour)
                 for sparse, dense in found]
        records.append({"fusion": asdict(weights), **tally(dataset.questions, fused, turn_of)})
    for side, index in (("our-bm25", 0), ("our-dense", 1)):
        records.append({"side": side, **tally(dataset.questions, [hits[index] for hits in found], turn_of)})
    print(f"{args.dense}: {len(turn_of)} items imported in {import_s:.0f} s, {len(dataset.questions)} questions")
    print_records(records, lambda r: r.get("side") or "dense {dense} k {rrf_k} nb {neighbour}".format(**r["fusion"]))
    if args.results:
        with args.results.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"timestamp": time.time(), "data": str(args.data), "limit": args.limit,
                                     "dense": args.dense, "import_s": round(import_s, 1), "records": records}) + "\n")


if __name__ == "__main__":
    main()
