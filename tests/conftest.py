"""Shared fixtures: a clean environment, real stores on SQLite (and PostgreSQL where marked), the real embedder."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres import PostgresCluster, PostgresUnavailable, start_cluster
from telegram_server import TOKEN, BotAPIServer

from storage.database import create_database_engine, migrate
from storage.embeddings import SentenceTransformerEmbedder
from storage.lexical import Bm25Encoder
from storage.memory import MemoryStore
from storage.models import Twin
from storage.search import HybridSearcher
from storage.vectors import EdgeVectorIndex, QdrantServerIndex, VectorIndex
from twin.testing import RecordingLLM

pytest_plugins = ["vllm_fixtures"]  # the real L2 stack: bundled model, trained adapter, vLLM

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _clean_twin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's TWIN_* variables must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("TWIN_"):
            monkeypatch.delenv(name)


class NetworkUsed(RuntimeError):
    """A test tried to reach a host outside this machine."""


def _local(address: object) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True  # a socket pair or an abstract address: not the network
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: it would be resolved and reached


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The network is off: an IP socket connecting outside loopback fails the test (servers it starts are on
    127.0.0.1; subprocesses are not watched)."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded(real):  # noqa: ANN001, ANN202 - wraps socket.connect / connect_ex
        def connect(self: socket.socket, address: object):  # noqa: ANN202
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address):
                raise NetworkUsed(f"a test tried to reach {address!r}: tests stay on 127.0.0.1")
            return real(self, address)
        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))


@pytest.fixture
def llm() -> Iterator[RecordingLLM]:
    """The twin's model over real HTTP: records every prompt and answers with it (or with its script)."""
    with RecordingLLM() as server:
        yield server


@pytest.fixture
def twin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, llm: RecordingLLM) -> Path:
    """TWIN_* pointing `twin` commands at a fresh data dir and the recording model, the owner called Ada."""
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TWIN_LLM_URL", llm.url)
    monkeypatch.setenv("TWIN_OWNER_NAME", "Ada")
    return tmp_path / "data"


@pytest.fixture
def bot_api() -> Iterator[BotAPIServer]:
    """A Bot API test server for the test bot token."""
    with BotAPIServer(TOKEN) as server:
        yield server


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The bundled MiniLM, loaded once per test session."""
    model = SentenceTransformerEmbedder()
    model.embed(["warm up"])
    return model


# Where a test's vector index lives. "edge": the embedded qdrant-edge engine. "qdrant-local": QdrantServerIndex, the
# Qdrant-server backend, through qdrant-client's local mode (QdrantClient(path=...)): no Qdrant server binary can be
# installed on these machines (none on PyPI, Debian or npm, and no Docker engine), so the same client code that talks
# to a server runs against qdrant-client's in-process implementation of the same API.
INDEX_BACKENDS = ("edge", "qdrant-local")


def open_index(backend: str, folder: Path, dim: int) -> VectorIndex:
    """A fresh vector index of this backend in the folder."""
    if backend == "qdrant-local":
        import warnings

        from qdrant_client import QdrantClient

        with warnings.catch_warnings():  # "payload indexes have no effect in local mode": the server uses them
            warnings.simplefilter("ignore", UserWarning)
            return QdrantServerIndex(QdrantClient(path=str(folder)), "l0_items", dim)
    return EdgeVectorIndex(folder, dim)


def open_store(
    request: pytest.FixtureRequest, database: str, backend: str, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[MemoryStore]:
    """A real database (a SQLite file or a fresh PostgreSQL database) and a vector index in tmp_path."""
    if database == "postgresql":
        engine = create_database_engine(request.getfixturevalue("postgres_database"))
    else:
        engine = create_database_engine(f"sqlite:///{tmp_path / 'twin.db'}")
    migrate(engine)
    index = open_index(backend, tmp_path / "vectors", embedder.dim)
    yield MemoryStore(engine, index, embedder, Bm25Encoder())
    index.close()
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[MemoryStore]:
    """A real database (a SQLite file or a fresh PostgreSQL database) and a qdrant-edge index in tmp_path."""
    yield from open_store(request, request.param, "edge", tmp_path, embedder)


@pytest.fixture
def twin(store: MemoryStore) -> Twin:
    """The owner's twin in the store."""
    return store.ensure_twin("owner", "Ada")


@pytest.fixture
def searcher(store: MemoryStore) -> HybridSearcher:
    """Hybrid search over the store."""
    return HybridSearcher(store)


# -- PostgreSQL: one throwaway cluster per session, one fresh database per test ---------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port, removed at the end; skips without binaries."""
    try:
        cluster = start_cluster()
    except PostgresUnavailable as error:
        pytest.skip(f"PostgreSQL not available: {error}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL (postgresql+psycopg://) of a database created in the session's cluster."""
    return postgres_cluster.url(postgres_cluster.create_database("twin_session"))


@pytest.fixture
def postgres_database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """URL of a new, empty database in the session's cluster, dropped after the test."""
    name = postgres_cluster.create_database()
    yield postgres_cluster.url(name)
    postgres_cluster.drop_database(name)
