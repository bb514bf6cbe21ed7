"""One search over every memory layer: L0 items from the index, L1 facts ranked beside them, one list.

Facts are few (hundreds, not hundreds of thousands), so they are ranked in process: BM25 term overlap and
MiniLM similarity, fused by the same weighted reciprocal rank as L0, each fact embedded once per searcher.
The two layers' lists are merged by rank (each layer's first, then each layer's second, ...), so a layer's own
scores never have to be compared with the other's; each hit keeps its layer's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from storage.facts import FactStore
from storage.models import Fact, L0Item
from storage.query_vectors import text_digest
from storage.search import HybridSearcher, SearchScope, reciprocal_rank_fusion
from storage.vectors import Hit

MIN_FACT_SIMILARITY = 0.35  # a fact sharing no word with the query is a hit only this close in meaning (cosine)


class Layer(StrEnum):
    l0 = "l0"
    l1 = "l1"
    all = "all"


@dataclass(frozen=True)
class LayerHit:
    """One hit: an L0 item or an L1 fact (with the L0 items it came from), and its score within its layer."""

    layer: str
    score: float
    item: L0Item | None = None
    fact: Fact | None = None
    sources: tuple[int, ...] = field(default=())


class LayeredSearcher:
    """Searches L0 (hybrid index) and L1 (facts) under one scope and merges them."""

    def __init__(self, items: HybridSearcher, facts: FactStore) -> None:
        self.items = items
        self.facts = facts
        self._fact_vectors: dict[tuple[int, str], np.ndarray] = {}

    def search(
        self, query: str, scope: SearchScope, k: int = 10, mode: str = "hybrid", layer: str = Layer.all
    ) -> list[LayerHit]:
        """The top k hits of the chosen layers, merged by rank."""
        if layer not in tuple(Layer):
            raise ValueError(f"unknown layer {layer!r}: use l0, l1 or all")
        items = [] if layer == Layer.l1 else [
            LayerHit(Layer.l0, r.score, item=r.item) for r in self.items.search(query, scope, k=k, mode=mode)
        ]
        facts = [] if layer == Layer.l0 else self.search_facts(query, scope, k, mode)
        return merge_by_rank(facts, items)[:k]

    def search_facts(self, query: str, scope: SearchScope, k: int, mode: str = "hybrid") -> list[LayerHit]:
        """The facts the scope's audience may see, valid in its time range, drawn from its chats, best first."""
        candidates = self._in_scope(scope)
        if not candidates:
            return []
        store = self.items.store
        lexical: list[Hit] = []
        dense: list[Hit] = []
        if mode != "dense":
            wanted = store.lexical.query(query)
            terms = dict(zip(wanted.indices, wanted.values, strict=True))
            for fact in candidates:
                document = store.lexical.document(fact.text)
                score = sum(terms.get(i, 0.0) * v for i, v in zip(document.indices, document.values, strict=True))
                if score > 0:
                    lexical.append(Hit(fact.id, score))
        if mode != "lexical":
            similarities = self._vectors(candidates) @ store.query_vectors.vector(query)  # shared with L0 search
            dense = [Hit(f.id, float(s)) for f, s in zip(candidates, similarities, strict=True)
                     if s >= MIN_FACT_SIMILARITY]
        lexical.sort(key=lambda hit: (-hit.score, hit.id))
        dense.sort(key=lambda hit: (-hit.score, hit.id))
        weights = self.items.weights
        ranked = {"lexical": lexical, "dense": dense}.get(mode) or reciprocal_rank_fusion(
            [(lexical, weights.lexical), (dense, weights.dense)], weights.rrf_k
        )
        by_id = {fact.id: fact for fact in candidates}
        top = ranked[:k]
        sources = self.facts.provenance(scope.twin_id, [hit.id for hit in top])
        return [LayerHit(Layer.l1, hit.score, fact=by_id[hit.id], sources=tuple(sources[hit.id])) for hit in top]

    def _in_scope(self, scope: SearchScope) -> list[Fact]:
        if scope.since is None and scope.until is None:
            facts = self.facts.current(scope.twin_id, scope.audience)
        else:  # facts true at some moment of the range, superseded ones included
            facts = [
                fact for fact in self.facts.all(scope.twin_id, scope.audience)
                if (scope.until is None or fact.valid_from <= scope.until)
                and (scope.since is None or fact.valid_to is None or fact.valid_to >= scope.since)
            ]
        if scope.chats is None:
            return facts
        sources = self.facts.provenance(scope.twin_id, [fact.id for fact in facts])
        rows = self.items.store.get(sorted({id for ids in sources.values() for id in ids}))
        chats = set(scope.chats)
        return [fact for fact in facts if any(rows[i].chat in chats for i in sources[fact.id] if i in rows)]

    def _vectors(self, facts: Sequence[Fact]) -> np.ndarray:
        """Each fact's embedding, computed once per fact text; keyed by a digest of the text, never the text itself
        (a forgotten fact's text is not held here)."""
        keys = [(fact.id, text_digest(fact.text)) for fact in facts]
        missing = [(key, fact) for key, fact in zip(keys, facts, strict=True) if key not in self._fact_vectors]
        if missing:
            vectors = self.items.store.embedder.embed([fact.text for _key, fact in missing])
            self._fact_vectors |= {key: v for (key, _fact), v in zip(missing, vectors, strict=True)}
        return np.stack([self._fact_vectors[key] for key in keys])


def merge_by_rank(*layers: list[LayerHit]) -> list[LayerHit]:
    """The layers' lists interleaved: every layer's first hit, then every layer's second, in the order given."""
    merged: list[LayerHit] = []
    for rank in range(max((len(hits) for hits in layers), default=0)):
        merged += [hits[rank] for hits in layers if rank < len(hits)]
    return merged
