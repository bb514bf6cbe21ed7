"""Hybrid retrieval: BM25 and dense hits from the vector index, fused by weighted reciprocal rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from storage.items import AUDIENCE_VISIBILITY
from storage.memory import MemoryStore, epoch
from storage.models import L0Item
from storage.time_window import time_window
from storage.vectors import Hit, IndexQuery, SparseVector, VectorFilter

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class SearchScope:
    """Which items a search may return: one twin, what an audience may see, some chats, a time range."""

    twin_id: int
    audience: str = "owner"
    chats: tuple[str, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None
    asked_at: datetime | None = None  # when the question is asked: "two weeks ago" in it is read from here

    def vector_filter(self) -> VectorFilter:
        """The same scope as an index filter."""
        return VectorFilter(
            twin_id=self.twin_id,
            visibilities=tuple(str(v) for v in AUDIENCE_VISIBILITY[self.audience]),
            chats=self.chats,
            since=epoch(self.since) if self.since else None,
            until=epoch(self.until) if self.until else None,
        )


@dataclass(frozen=True)
class SearchResult:
    """One L0 item found, with its fused score."""

    item: L0Item
    score: float


@dataclass(frozen=True)
class FusionWeights:
    """How much each ranking counts in the fusion, and RRF's rank constant."""

    lexical: float = 1.0
    dense: float = 0.5  # the bundled MiniLM is far weaker than BM25 on chat (LoCoMo any@10: 0.55 vs 0.78)
    rrf_k: int = 5  # a small k lets the top ranks decide; 60 flattened BM25's lead into dense noise
    depth: int = 50  # hits taken from each ranking before fusing
    neighbour: float = 0.1  # a hit next to another hit of the same chat gains this share of its score
    window: float = 0.5  # hits within the time a question names ("two weeks ago") count this much again (1.0
    # lost a question on a half of each dataset; 0.5 holds on all four halves: docs/benchmarks.md)


def best_first(hits: list[Hit]) -> list[Hit]:
    """Hits by score; equal scores come back from the index in no fixed order, so ties go by id (repeatable)."""
    return sorted(hits, key=lambda hit: (-hit.score, hit.id))


def reciprocal_rank_fusion(rankings: Sequence[tuple[list[Hit], float]], k: int) -> list[Hit]:
    """Weighted RRF: each list adds weight / (k + rank) to the items it holds."""
    scores: dict[int, float] = {}
    for hits, weight in rankings:
        for rank, hit in enumerate(hits, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (k + rank)
    return [Hit(id, score) for id, score in sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))]


def with_neighbours(fused: list[Hit], found: Sequence[list[Hit]], share: float) -> list[Hit]:
    """Fused hits where each also gains `share` of the score of a hit just before or after it in its chat.

    Evidence often spans neighbouring turns (a question and its answer: a hit `follows` the turn it answers, by
    someone else): this lifts both without adding any item that the filtered searches did not already return.
    """
    follows = {hit.id: hit.follows for hits in found for hit in hits if hit.follows is not None}
    scores = {hit.id: hit.score for hit in fused}
    boosted = dict(scores)
    for id, before in follows.items():
        if id in scores and before in scores:
            boosted[id] += share * scores[before]
            boosted[before] += share * scores[id]
    return [Hit(id, score, follows.get(id)) for id, score in sorted(boosted.items(), key=lambda p: (-p[1], p[0]))]


class HybridSearcher:
    """Searches L0 by words and by meaning within a scope."""

    def __init__(self, store: MemoryStore, weights: FusionWeights | None = None) -> None:
        self._store = store
        self.weights = weights or FusionWeights()

    @property
    def store(self) -> MemoryStore:
        """The L0 store searched (its embedder and BM25 encoder serve other layers too)."""
        return self._store

    def search(self, query: str, scope: SearchScope, k: int = 10, mode: str = "hybrid") -> list[SearchResult]:
        """The top k items for the query: mode is hybrid, lexical or dense."""
        ranked = self.rank(query, scope, mode)[:k]
        rows = self._store.get([hit.id for hit in ranked])
        return [SearchResult(rows[hit.id], hit.score) for hit in ranked if hit.id in rows]

    def rank(self, query: str, scope: SearchScope, mode: str = "hybrid") -> list[Hit]:
        """Item ids, best first, without loading the rows."""
        if mode not in ("hybrid", "lexical", "dense"):
            raise ValueError(f"unknown search mode {mode!r}: use hybrid, lexical or dense")
        dense = self._store.query_vectors.vector(query) if mode != "lexical" else None
        sparse = self._store.lexical.query(query) if mode != "dense" else None
        dense_hits, sparse_hits = self._store.index.search(
            IndexQuery(dense=dense, sparse=sparse, filter=scope.vector_filter(), limit=self.weights.depth)
        )
        dense_hits = best_first(dense_hits)
        sparse_hits = best_first(sparse_hits)
        if mode == "dense":
            return dense_hits
        if mode == "lexical":
            return sparse_hits
        rankings = [(sparse_hits, self.weights.lexical), (dense_hits, self.weights.dense)]
        rankings += self._within_window(query, scope, dense, sparse)
        fused = reciprocal_rank_fusion(rankings, self.weights.rrf_k)
        return with_neighbours(fused, (sparse_hits, dense_hits), self.weights.neighbour)

    def _within_window(self, query: str, scope: SearchScope, dense: np.ndarray | None, sparse: SparseVector | None
                       ) -> list[tuple[list[Hit], float]]:
        """Both rankings again, within the time the question names, when it names one and the scope sets none."""
        if scope.asked_at is None or scope.since is not None or scope.until is not None or not self.weights.window:
            return []
        window = time_window(query, scope.asked_at)
        if window is None:
            return []
        within = replace(scope, since=window.start, until=window.end).vector_filter()
        dense_hits, sparse_hits = self._store.index.search(
            IndexQuery(dense=dense, sparse=sparse, filter=within, limit=self.weights.depth))
        return [(best_first(sparse_hits), self.weights.window * self.weights.lexical),
                (best_first(dense_hits), self.weights.window * self.weights.dense)]
