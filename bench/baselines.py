"""Plain baselines over the same imported items: each message alone, no context, no day, no sender.

- plain BM25: the store's BM25 encoder (same tokenizer, stemmer, k1, b, avg_len) on the message text alone,
  IDF over the question's own corpus;
- plain dense: the store's embedding model on the message text alone, cosine;
- plain fusion: equal-weight reciprocal rank fusion of the two, k = 60 (the textbook constant).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from storage.embeddings import Embedder
from storage.lexical import Bm25Encoder

PLAIN_RRF_K = 60


class PlainCorpus:
    """Every item's text alone, as a BM25 term matrix and a matrix of unit vectors."""

    def __init__(self, ids: Sequence[int], texts: Sequence[str], lexical: Bm25Encoder, embedder: Embedder) -> None:
        self.ids = np.asarray(ids)
        self.row = {id: row for row, id in enumerate(ids)}
        self.lexical = lexical
        self.embedder = embedder
        self.columns: dict[int, int] = {}
        rows, cols, values = [], [], []
        for row, text in enumerate(texts):
            vector = lexical.document(text)
            for term, value in zip(vector.indices, vector.values, strict=True):
                rows.append(row)
                cols.append(self.columns.setdefault(term, len(self.columns)))
                values.append(value)
        self.terms = sparse.csr_matrix((values, (rows, cols)), shape=(len(texts), max(len(self.columns), 1)))
        self.vectors = embedder.embed(list(texts))
        self._corpora: dict[tuple[int, ...], tuple[np.ndarray, sparse.csr_matrix, np.ndarray]] = {}

    def _corpus(self, members: tuple[int, ...]) -> tuple[np.ndarray, sparse.csr_matrix, np.ndarray]:
        """The rows of a question's corpus, their term matrix and each term's IDF within it (cached)."""
        if members not in self._corpora:
            rows = np.array(sorted(self.row[id] for id in members))
            terms = self.terms[rows]
            count = len(rows)
            frequency = np.asarray((terms > 0).sum(axis=0)).ravel()
            idf = np.log(1.0 + (count - frequency + 0.5) / (frequency + 0.5))
            self._corpora = {members: (rows, terms, idf)}  # questions come corpus by corpus: keep the last
        return self._corpora[members]

    def bm25(self, query: str, members: tuple[int, ...]) -> list[int]:
        """Item ids of the corpus by plain BM25, best first (items without a query term left out)."""
        rows, terms, idf = self._corpus(members)
        vector = self.lexical.query(query)
        weights = np.zeros(terms.shape[1])
        for term, value in zip(vector.indices, vector.values, strict=True):
            if term in self.columns:
                weights[self.columns[term]] += value * idf[self.columns[term]]
        scores = terms @ weights
        order = np.lexsort((self.ids[rows], -scores))
        return [int(self.ids[rows[i]]) for i in order if scores[i] > 0]

    def dense(self, query: str, members: tuple[int, ...]) -> list[int]:
        """Item ids of the corpus by cosine to the query, best first."""
        rows, _, _ = self._corpus(members)
        scores = self.vectors[rows] @ self.embedder.embed([query])[0]
        order = np.lexsort((self.ids[rows], -scores))
        return [int(self.ids[rows[i]]) for i in order]

    def fusion(self, query: str, members: tuple[int, ...]) -> list[int]:
        """Equal-weight RRF (k = 60) of plain BM25 and plain dense."""
        scores: dict[int, float] = {}
        for ranking in (self.bm25(query, members), self.dense(query, members)):
            for rank, id in enumerate(ranking, start=1):
                scores[id] = scores.get(id, 0.0) + 1.0 / (PLAIN_RRF_K + rank)
        return [id for id, _ in sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))]
