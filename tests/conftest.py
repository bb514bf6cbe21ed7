"""Shared fixtures: a clean environment, real stores on SQLite (and PostgreSQL where marked), the real embedder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.database import create_database_engine, migrate
from storage.embeddings import SentenceTransformerEmbedder
from storage.lexical import Bm25Encoder
from storage.memory import MemoryStore
from storage.models import Twin
from storage.search import HybridSearcher
from storage.vectors import EdgeVectorIndex

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _clean_twin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's TWIN_* variables must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("TWIN_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The bundled MiniLM, loaded once per test session."""
    model = SentenceTransformerEmbedder()
    model.embed(["warm up"])
    return model


@pytest.fixture
def store(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[MemoryStore]:
    """A real SQLite database and embedded qdrant-edge index in a temporary folder."""
    engine = create_database_engine(f"sqlite:///{tmp_path / 'twin.db'}")
    migrate(engine)
    index = EdgeVectorIndex(tmp_path / "vectors", embedder.dim)
    yield MemoryStore(engine, index, embedder, Bm25Encoder())
    index.close()
    engine.dispose()


@pytest.fixture
def twin(store: MemoryStore) -> Twin:
    """The owner's twin in the store."""
    return store.ensure_twin("owner", "Ada")


@pytest.fixture
def searcher(store: MemoryStore) -> HybridSearcher:
    """Hybrid search over the store."""
    return HybridSearcher(store)
