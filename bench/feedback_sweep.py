"""A second query from the first one's top hits, swept over one import: `python -m bench.feedback_sweep --data PATH`.

A development tool for issue 14 (questions whose evidence spans several sessions): the shipped hybrid ranks each
question; the words and the meaning of its top m hits are added to the question (pseudo-relevance feedback, the
words at `beta / m` each beside the question's own at 1, the mean of the hits' vectors at `beta` beside the
question's) and both rankings of that second query are fused with the first at `weight`. Every setting is scored
on all questions and on each half, beside the shipped hybrid on the same import.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console

from bench.datasets import load
from bench.fusion_sweep import import_once, print_records, tally
from storage.search import HybridSearcher, SearchScope, best_first, reciprocal_rank_fusion, with_neighbours
from storage.vectors import IndexQuery, SparseVector

GRID = {"m": (3, 5), "beta": (0.3, 0.7), "weight": (0.25, 0.5, 1.0)}


def expanded(question: SparseVector, feedback: list[SparseVector], beta: float) -> SparseVector:
    """The question's terms at 1 each plus every feedback text's terms at beta / len(feedback)."""
    weights: dict[int, float] = dict(zip(question.indices, question.values, strict=True))
    for vector in feedback:
        for index, value in zip(vector.indices, vector.values, strict=True):
            weights[index] = weights.get(index, 0.0) + beta * value / len(feedback)
    return SparseVector(list(weights), list(weights.values()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    from twin.app import open_twin
    from twin.settings import Settings

    console = Console(stderr=True)
    dataset = load(args.data, "auto", args.limit)
    base_rankings: list[list] = []
    unwindowed: list[list] = []  # the shipped hybrid without the time window, for comparison
    swept: dict[tuple, list[list]] = {key: [] for key in itertools.product(*GRID.values())}
    with tempfile.TemporaryDirectory(prefix="twin-feedback-") as folder:
        settings = Settings(data_dir=Path(folder) / "data", database_url=None, qdrant_url=None)
        with open_twin(settings) as twin:
            import_s, turn_of = import_once(twin, dataset, Path(folder), console)
            store = twin.store
            searcher = HybridSearcher(store)
            weights = searcher.weights
            started = time.monotonic()
            for question in dataset.questions:
                scope = SearchScope(twin.twin.id, chats=question.chats, asked_at=question.asked_at)
                base = searcher.rank(question.text, scope)
                base_rankings.append(base)
                unwindowed.append(searcher.rank(question.text, replace(scope, asked_at=None)))
                top = [hit.id for hit in base[:max(GRID["m"])]]
                texts = store.get(top)
                texts = [texts[id].text for id in top if id in texts]
                q_dense = store.embedder.embed([question.text])[0]
                q_sparse = store.lexical.query(question.text)
                hit_dense = store.embedder.embed(texts) if texts else np.zeros((0, len(q_dense)))
                hit_sparse = [store.lexical.query(text) for text in texts]
                q_d, q_s = store.index.search(IndexQuery(
                    dense=q_dense, sparse=q_sparse, filter=scope.vector_filter(), limit=weights.depth))
                q_d, q_s = best_first(q_d), best_first(q_s)
                firsts = [(q_s, weights.lexical), (q_d, weights.dense)]
                firsts += searcher._within_window(question.text, scope, q_dense, q_sparse)
                for m, beta in itertools.product(GRID["m"], GRID["beta"]):
                    dense = q_dense + beta * hit_dense[:m].mean(axis=0) if texts else q_dense
                    dense = dense / np.linalg.norm(dense)
                    sparse = expanded(q_sparse, hit_sparse[:m], beta) if texts else q_sparse
                    d_hits, s_hits = store.index.search(IndexQuery(
                        dense=dense, sparse=sparse, filter=scope.vector_filter(), limit=weights.depth))
                    d_hits, s_hits = best_first(d_hits), best_first(s_hits)
                    for weight in GRID["weight"]:
                        fused = reciprocal_rank_fusion(
                            [*firsts, (s_hits, weight * weights.lexical), (d_hits, weight * weights.dense)],
                            weights.rrf_k)
                        swept[(m, beta, weight)].append(with_neighbours(fused, (q_s, q_d), weights.neighbour))
            rank_s = time.monotonic() - started
    records = [{"setting": "shipped hybrid", **tally(dataset.questions, base_rankings, turn_of)},
               {"setting": "shipped, no time window", **tally(dataset.questions, unwindowed, turn_of)}]
    for (m, beta, weight), rankings in swept.items():
        records.append({"setting": f"m {m} beta {beta} weight {weight}",
                        **tally(dataset.questions, rankings, turn_of)})
    print(f"{len(turn_of)} items imported in {import_s:.0f} s, {len(dataset.questions)} questions, "
          f"sweep {rank_s:.0f} s")
    print_records(records, lambda record: record["setting"])
    if args.results:
        with args.results.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"timestamp": time.time(), "data": str(args.data), "limit": args.limit,
                                     "sweep": "feedback", "import_s": round(import_s, 1), "records": records}) + "\n")


if __name__ == "__main__":
    main()
