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
import pickle
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

from rich.console import Console

from bench.datasets import load
from bench.retrieval import KS, Tally, first_distinct, import_dataset, imported
from storage import context_vectors
from storage.context_vectors import contextual_vectors
from storage.memory import MemoryStore
from storage.search import FusionWeights, SearchScope, reciprocal_rank_fusion, with_neighbours
from storage.vectors import IndexQuery

GRID = {"dense": (0.3, 0.5, 0.7, 1.0), "rrf_k": (5, 10, 20, 60), "neighbour": (0.0, 0.1, 0.2)}


def per_turn(store: MemoryStore, rows: list, turns: dict) -> list[list[float]]:
    return contextual_vectors(store.embedder, rows, turns).tolist()


def times(store: MemoryStore, rows: list) -> dict[int, float]:
    """When each imported item was said (epoch seconds), for experiments that look at sessions."""
    from sqlalchemy import select
    from sqlmodel import Session

    from storage.memory import epoch
    from storage.models import L0Item

    with Session(store.engine) as session:
        wanted = {r[0] for r in rows}
        return {id: epoch(moment) for id, moment in session.execute(select(L0Item.id, L0Item.occurred_at))
                if id in wanted}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--dense", choices=("joined", "per-turn"), default="joined")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--short-chars", type=int, help="storage.context_vectors.SHORT_CHARS for --dense per-turn")
    parser.add_argument("--cache", type=Path, help="Pickle of the hits, the rows and the questions (written).")
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
            import_s = import_dataset(twin.store, twin.twin.id, dataset, Path(folder), console)
            rows = imported(twin.store, dataset.source)
            turn_of = {r[0]: r[2] for r in rows}
            store = twin.store
            found: list[tuple[list, list]] = []
            for question in dataset.questions:
                scope = SearchScope(twin.twin.id, chats=question.chats)
                dense, sparse = store.index.search(IndexQuery(
                    dense=store.embedder.embed([question.text])[0], sparse=store.lexical.query(question.text),
                    filter=scope.vector_filter(), limit=depth))
                found.append(tuple(sorted(hits, key=lambda h: (-h.score, h.id)) for hits in (sparse, dense)))
            if args.cache:
                with args.cache.open("wb") as handle:
                    pickle.dump({"questions": dataset.questions, "found": found, "rows": rows,
                                 "times": times(store, rows)}, handle)
    half = len(dataset.questions) // 2
    records = []
    for dense_w, rrf_k, neighbour in itertools.product(*GRID.values()):
        weights = replace(FusionWeights(), dense=dense_w, rrf_k=rrf_k, neighbour=neighbour)
        tallies: dict[str, Tally] = defaultdict(Tally)
        for at, (question, (sparse, dense)) in enumerate(zip(dataset.questions, found, strict=True)):
            fused = reciprocal_rank_fusion([(sparse, weights.lexical), (dense, weights.dense)], weights.rrf_k)
            ranked = with_neighbours(fused, (sparse, dense), weights.neighbour)
            turns = first_distinct((turn_of[h.id] for h in ranked if h.id in turn_of), max(KS))
            for scope in ("overall", "first half" if at < half else "second half", question.category):
                tallies[scope].add(turns, question.evidence)
        records.append({"fusion": asdict(weights), **{s: t.figures() for s, t in tallies.items()}})
    for side, index in (("our-bm25", 0), ("our-dense", 1)):
        tallies = defaultdict(Tally)
        for at, (question, hits) in enumerate(zip(dataset.questions, found, strict=True)):
            turns = first_distinct((turn_of[h.id] for h in hits[index] if h.id in turn_of), max(KS))
            for scope in ("overall", "first half" if at < half else "second half", question.category):
                tallies[scope].add(turns, question.evidence)
        records.append({"side": side, **{s: t.figures() for s, t in tallies.items()}})
    print(f"{args.dense}: {len(rows)} items imported in {import_s:.0f} s, {len(dataset.questions)} questions")
    print(f"{'setting':34} {'overall any/all@10':>20} {'1st half':>14} {'2nd half':>14}")
    for record in records:
        name = record.get("side") or "dense {dense} k {rrf_k} nb {neighbour}".format(**record["fusion"])
        cells = [f"{100 * record[s]['any@10']:.1f}/{100 * record[s]['all@10']:.1f}"
                 for s in ("overall", "first half", "second half")]
        print(f"{name:34} {cells[0]:>20} {cells[1]:>14} {cells[2]:>14}")
    if args.results:
        with args.results.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"timestamp": time.time(), "data": str(args.data), "limit": args.limit,
                                     "dense": args.dense, "import_s": round(import_s, 1), "records": records}) + "\n")


if __name__ == "__main__":
    main()
