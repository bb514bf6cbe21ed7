"""The composition root: builds the stores and clients from settings. The only place that knows them all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from storage.database import create_database_engine, migrate
from storage.embeddings import Embedder, OpenAIEmbedder, SentenceTransformerEmbedder
from storage.errors import StorageError
from storage.lexical import Bm25Encoder
from storage.memory import MemoryStore
from storage.models import Twin
from storage.search import HybridSearcher
from storage.vectors import EdgeVectorIndex, QdrantServerIndex, VectorIndex
from twin.settings import Settings


@dataclass
class TwinApp:
    """The built parts of one running twin."""

    settings: Settings
    store: MemoryStore
    searcher: HybridSearcher
    twin: Twin


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedding model."""
    if settings.embedding_url:
        import httpx

        client = httpx.Client(base_url=settings.embedding_url.rstrip("/") + "/", timeout=60)
        key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
        return OpenAIEmbedder(client, settings.embedding_model, settings.embedding_dim or 0,
                              settings.embedding_batch_size, key)
    return SentenceTransformerEmbedder(
        settings.embedding_model, settings.embedding_batch_size,
        cache_dir=settings.cache_dir / "models", quantize=settings.embedding_quantize,
    )


def build_index(settings: Settings, dim: int) -> VectorIndex:
    """The embedded qdrant-edge shard, or a Qdrant server when TWIN_QDRANT_URL is set."""
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = QdrantClient(url=settings.qdrant_url, api_key=key)
        return QdrantServerIndex(client, settings.qdrant_collection, dim)
    return EdgeVectorIndex(settings.vectors_path, dim)


@contextmanager
def open_twin(settings: Settings, *, rebuilding_index: bool = False, create: bool = True) -> Iterator[TwinApp]:
    """Migrate the database, open the index, make sure the owner's twin exists (with create=False: refuse one that
    does not); close everything after. Refuses (StartupRefused) an index built with another embedding model, unless
    it is being rebuilt."""
    from twin.startup import check_index_embedding

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_database_engine(settings.resolved_database_url)
    migrate(engine)
    embedder = build_embedder(settings)
    index = build_index(settings, embedder.dim)
    store = MemoryStore(engine, index, embedder, Bm25Encoder())
    try:
        if not create and store.find_twin(settings.owner) is None:
            raise StorageError(f"no twin named {settings.owner!r} in the database (`twin twins list`)")
        twin = store.ensure_twin(settings.owner, settings.owner_name)
        app = TwinApp(settings=settings, store=store, searcher=HybridSearcher(store), twin=twin)
        if not rebuilding_index:
            check_index_embedding(app, embedder.dim)
        store.sync_index()
        yield app
    finally:
        index.close()
        engine.dispose()
