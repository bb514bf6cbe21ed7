"""Which of an audience's facts a prompt carries: the ones most related to the message, by shared words and by
meaning, fused as L0 search fuses its rankings (storage.search). Words alone miss a question that does not reuse
the fact's words ("where do I live?" for "Sam's home city is Lisbon": 28% of the synthetic owner's indirect
questions had their fact among the 5 chosen by words, 100% with meaning fused in; docs/benchmarks.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from core.l1 import words
from storage.models import Fact
from storage.query_vectors import text_digest
from storage.search import FusionWeights, reciprocal_rank_fusion
from storage.vectors import Hit

Embed = Callable[[list[str]], np.ndarray]  # texts to unit-length rows (storage.embeddings.Embedder.embed)
QueryVector = Callable[[str], np.ndarray]  # one text's row, shared with L0 search (storage.query_vectors)


def by_shared_words(facts: Sequence[Fact], query: str) -> list[Fact]:
    """The facts sharing most words with the query, the newest first among equals."""
    wanted = words(query)
    return sorted(facts, key=lambda fact: (-len(words(fact.text) & wanted), -fact.valid_from.timestamp(),
                                           -fact.id))


class FactRanker:
    """Ranks facts for a query: by shared words, fused with embedding similarity when an embedder is given.

    Fact vectors are kept in memory by fact id and a digest of the text (never the text itself), and only for the
    facts of the latest call: a fact that was forgotten or superseded leaves the cache at the next ranking (vectors
    are never written to disk here)."""

    def __init__(self, embed: Embed | None = None, weights: FusionWeights | None = None,
                 query_vector: QueryVector | None = None) -> None:
        self.embed = embed
        self.query_vector = query_vector or (lambda text: self.embed([text])[0])
        self.weights = weights or FusionWeights()
        self._vectors: dict[int, tuple[str, np.ndarray]] = {}
        self._lock = threading.Lock()  # replies are prepared in worker threads

    def rank(self, facts: Sequence[Fact], query: str, limit: int) -> list[Fact]:
        """The `limit` facts most related to the query, best first."""
        lexical = by_shared_words(facts, query)
        if self.embed is None or not facts or not query.strip():
            return lexical[:limit]
        wanted = words(query)
        shared = [Hit(fact.id, 0.0) for fact in lexical if words(fact.text) & wanted]  # no overlap: no rank
        with self._lock:
            vectors = self._vectors_of(facts)
        similarity = vectors @ self.query_vector(query)
        dense = [Hit(facts[i].id, float(similarity[i])) for i in np.argsort(-similarity, kind="stable")]
        fused = reciprocal_rank_fusion([(shared, self.weights.lexical), (dense, self.weights.dense)],
                                       self.weights.rrf_k)
        by_id = {fact.id: fact for fact in facts}
        return [by_id[hit.id] for hit in fused[:limit]]

    def _vectors_of(self, facts: Sequence[Fact]) -> np.ndarray:
        missing = [fact for fact in facts if self._vectors.get(fact.id, ("",))[0] != text_digest(fact.text)]
        if missing:
            for fact, vector in zip(missing, self.embed([fact.text for fact in missing]), strict=True):
                self._vectors[fact.id] = (text_digest(fact.text), vector)
        self._vectors = {fact.id: self._vectors[fact.id] for fact in facts}  # only the facts still current
        return np.stack([self._vectors[fact.id][1] for fact in facts])

