"""BM25 term weights as sparse vectors (Qdrant's own tokenizer, stemmer and stopwords; IDF applied in Qdrant)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.vectors import SparseVector


@dataclass(frozen=True)
class Bm25Params:
    """BM25's knobs: k1 saturation, b length normalisation, the expected document length in tokens."""

    k: float = 1.2
    b: float = 0.3  # mild length normalisation: a long message is not less about each of its words
    avg_len: float = 48.0  # above a typical message (~16 tokens after stopwords); tuned on LoCoMo with b
    language: str = "english"


class Bm25Encoder:
    """Encodes documents (term frequencies, length-normalised) and queries (one weight per unique term)."""

    def __init__(self, params: Bm25Params | None = None) -> None:
        import qdrant_edge as qe

        params = params or Bm25Params()
        self._model = qe.Bm25(qe.Bm25Config(k=params.k, b=params.b, avg_len=params.avg_len, language=params.language))

    def document(self, text: str) -> SparseVector:
        """The sparse vector stored for a document."""
        vector = self._model.embed_document(text)
        return SparseVector(list(vector.indices), list(vector.values))

    def query(self, text: str) -> SparseVector:
        """The sparse vector a query searches with."""
        vector = self._model.embed_query(text)
        return SparseVector(list(vector.indices), list(vector.values))
