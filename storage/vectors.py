"""The vector index: dense and BM25-sparse vectors per L0 item, in Qdrant (embedded qdrant-edge or a server).

The SQL store is the source of truth; everything here can be rebuilt from it (`twin reindex`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # numpy loads with the first vector: opening the stores does not need it
    import numpy as np

DENSE = "dense"
SPARSE = "bm25"


@dataclass(frozen=True)
class SparseVector:
    """Token ids and their weights."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class IndexedPoint:
    """What the index keeps of one L0 item: its id, both vectors and the fields searches filter on."""

    id: int
    dense: list[float]
    sparse: SparseVector
    twin_id: int
    visibility: str
    chat: str
    timestamp: float
    follows: int | None = None  # the item just before it in its chat, when someone else said it (an exchange)


@dataclass(frozen=True)
class VectorFilter:
    """Restricts a search to one twin and, optionally, visibilities, chats and a time range (epoch seconds)."""

    twin_id: int
    visibilities: tuple[str, ...] | None = None
    chats: tuple[str, ...] | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class Hit:
    """One search result: an L0 item id and its score under the query that found it."""

    id: int
    score: float
    follows: int | None = None  # the item it answers (just before it, by someone else), when the index knows


@dataclass
class IndexQuery:
    """A dense and a sparse query under one filter, each returning `limit` hits."""

    dense: np.ndarray | None
    sparse: SparseVector | None
    filter: VectorFilter
    limit: int = 50


class VectorIndex(Protocol):
    """Dense + sparse vectors with payload filters; implemented by the embedded and server backends."""

    def upsert(self, points: list[IndexedPoint]) -> None: ...
    def update_sparse(self, vectors: dict[int, SparseVector]) -> None:
        """Replace the sparse vectors of existing points (their dense vectors and payloads stay)."""
        ...
    def delete(self, ids: list[int]) -> None: ...
    def search(self, query: IndexQuery) -> tuple[list[Hit], list[Hit]]:
        """(dense hits, sparse hits), best first."""
        ...
    def count(self, twin_id: int | None = None) -> int:
        """Points in the index (of one twin: a twin's figures never include another's)."""
        ...
    def ids(self) -> set[int]: ...
    def present(self, ids: list[int]) -> set[int]:
        """Which of these points the index holds."""
        ...
    def compact(self) -> None: ...
    def clear(self) -> None: ...
    def disk_bytes(self) -> int: ...
    def close(self) -> None: ...


def _payload(point: IndexedPoint) -> dict:
    payload = {"twin": point.twin_id, "visibility": point.visibility, "chat": point.chat, "ts": point.timestamp}
    return payload | ({"follows": point.follows} if point.follows is not None else {})


HIT_PAYLOAD = ["follows"]  # the only payload a search reads back


def _hit(id: int | str, score: float, payload: dict | None) -> Hit:  # noqa: A002 - the point's id
    follows = (payload or {}).get("follows")
    return Hit(int(id), float(score), int(follows) if follows is not None else None)


class EdgeVectorIndex:
    """Qdrant's embedded engine (qdrant-edge) in a folder: HNSW, payload indexes, no server."""

    def __init__(self, path: Path, dim: int) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self._path = path
        self._dim = dim
        self._written = False  # a close after reads alone skips the flush (a tenth of a second per command)
        self._shard = self._open()

    def _config(self):  # noqa: ANN202 - qdrant_edge types
        qe = self._qe
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=self._dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            # Forgetting must reach the disk: any deleted point makes optimize() rewrite its segment.
            optimizers=qe.EdgeOptimizersConfig(deleted_threshold=1e-9, vacuum_min_vector_number=1),
        )

    def _open(self):  # noqa: ANN202
        qe = self._qe
        if self._path.exists() and any(self._path.iterdir()):
            return qe.EdgeShard.load(str(self._path))
        self._path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(self._path), self._config())
        for name, schema in (
            ("twin", qe.PayloadSchemaType.Integer),
            ("visibility", qe.PayloadSchemaType.Keyword),
            ("chat", qe.PayloadSchemaType.Keyword),
            ("ts", qe.PayloadSchemaType.Float),
        ):
            shard.update(qe.UpdateOperation.create_field_index(name, schema))
        self._written = True
        return shard

    def upsert(self, points: list[IndexedPoint]) -> None:
        qe = self._qe
        if not points:
            return
        batch = [
            qe.Point(
                p.id,
                {DENSE: p.dense, SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values)},
                _payload(p),
            )
            for p in points
        ]
        self._shard.update(qe.UpdateOperation.upsert_points(batch))
        self._written = True

    def update_sparse(self, vectors: dict[int, SparseVector]) -> None:
        qe = self._qe
        if vectors:
            batch = [qe.PointVectors(id, {SPARSE: qe.SparseVector(v.indices, v.values)}) for id, v in vectors.items()]
            self._shard.update(qe.UpdateOperation.update_vectors(batch))
            self._written = True

    def delete(self, ids: list[int]) -> None:
        if ids:
            self._shard.update(self._qe.UpdateOperation.delete_points(list(ids)))
            self._written = True

    def _filter(self, spec: VectorFilter):  # noqa: ANN202
        qe = self._qe
        must = [qe.FieldCondition("twin", match=qe.MatchValue(spec.twin_id))]
        if spec.visibilities is not None:
            must.append(qe.FieldCondition("visibility", match=qe.MatchAny(list(spec.visibilities))))
        if spec.chats is not None:
            must.append(qe.FieldCondition("chat", match=qe.MatchAny(list(spec.chats))))
        if spec.since is not None or spec.until is not None:
            must.append(qe.FieldCondition("ts", range=qe.RangeFloat(gte=spec.since, lte=spec.until)))
        return qe.Filter(must=must)

    def search(self, query: IndexQuery) -> tuple[list[Hit], list[Hit]]:
        qe = self._qe
        flt = self._filter(query.filter)
        requests, kinds = [], []
        if query.dense is not None:
            requests.append(
                qe.QueryRequest(
                    limit=query.limit, query=qe.Query.Nearest(query.dense.tolist(), using=DENSE), filter=flt,
                    with_payload=qe.PayloadSelector.Include(HIT_PAYLOAD),
                )
            )
            kinds.append(DENSE)
        if query.sparse is not None and query.sparse.indices:
            vector = qe.SparseVector(query.sparse.indices, query.sparse.values)
            requests.append(
                qe.QueryRequest(limit=query.limit, query=qe.Query.Nearest(vector, using=SPARSE), filter=flt,
                                with_payload=qe.PayloadSelector.Include(HIT_PAYLOAD))
            )
            kinds.append(SPARSE)
        results = self._shard.query_batch(qe.QueryBatchRequest(requests)) if requests else []
        by_kind = {
            kind: [_hit(p.id, p.score, p.payload) for p in hits] for kind, hits in zip(kinds, results, strict=True)
        }
        return by_kind.get(DENSE, []), by_kind.get(SPARSE, [])

    def count(self, twin_id: int | None = None) -> int:
        if twin_id is None:
            return int(self._shard.info().points_count)
        request = self._qe.CountRequest(exact=True, filter=self._filter(VectorFilter(twin_id)))
        return int(self._shard.count(request))

    def present(self, ids: list[int]) -> set[int]:
        if not ids:
            return set()
        return {int(r.id) for r in self._shard.retrieve(list(ids), False, False)}

    def ids(self) -> set[int]:
        qe = self._qe
        found: set[int] = set()
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=10_000, with_payload=False, with_vector=False)
            )
            found.update(int(r.id) for r in records)
            if offset is None:
                return found

    def compact(self) -> None:
        """Rewrite segments so deleted points leave the files, then flush."""
        self._shard.optimize()
        self._shard.flush()

    def clear(self) -> None:
        self._shard.close()
        shutil.rmtree(self._path, ignore_errors=True)
        self._shard = self._open()

    def disk_bytes(self) -> int:
        """Bytes allocated on disk (the WAL files are sparse: their apparent size is ~167 MB when empty)."""
        return sum(f.stat().st_blocks * 512 for f in self._path.rglob("*") if f.is_file())

    def close(self) -> None:
        if self._written:
            self._shard.flush()
        self._shard.close()


class QdrantServerIndex:
    """A Qdrant server (or qdrant-client's local mode) through qdrant-client."""

    def __init__(self, client, collection: str, dim: int) -> None:  # noqa: ANN001 - QdrantClient
        from qdrant_client import models

        self._client = client
        self._m = models
        self._collection = collection
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            )
            for name, schema in (
                ("twin", models.PayloadSchemaType.INTEGER),
                ("visibility", models.PayloadSchemaType.KEYWORD),
                ("chat", models.PayloadSchemaType.KEYWORD),
                ("ts", models.PayloadSchemaType.FLOAT),
            ):
                client.create_payload_index(collection, name, schema)
        self._dim = dim

    def upsert(self, points: list[IndexedPoint]) -> None:
        m = self._m
        if not points:
            return
        self._client.upsert(
            self._collection,
            points=[
                m.PointStruct(
                    id=p.id,
                    vector={
                        DENSE: p.dense,
                        SPARSE: m.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                    },
                    payload=_payload(p),
                )
                for p in points
            ],
            wait=True,
        )

    def update_sparse(self, vectors: dict[int, SparseVector]) -> None:
        m = self._m
        if vectors:
            points = [
                m.PointVectors(id=id, vector={SPARSE: m.SparseVector(indices=v.indices, values=v.values)})
                for id, v in vectors.items()
            ]
            self._client.update_vectors(self._collection, points=points, wait=True)

    def delete(self, ids: list[int]) -> None:
        if ids:
            self._client.delete(self._collection, points_selector=self._m.PointIdsList(points=list(ids)))

    def _filter(self, spec: VectorFilter):  # noqa: ANN202
        m = self._m
        must = [m.FieldCondition(key="twin", match=m.MatchValue(value=spec.twin_id))]
        if spec.visibilities is not None:
            must.append(m.FieldCondition(key="visibility", match=m.MatchAny(any=list(spec.visibilities))))
        if spec.chats is not None:
            must.append(m.FieldCondition(key="chat", match=m.MatchAny(any=list(spec.chats))))
        if spec.since is not None or spec.until is not None:
            must.append(m.FieldCondition(key="ts", range=m.Range(gte=spec.since, lte=spec.until)))
        return m.Filter(must=must)

    def search(self, query: IndexQuery) -> tuple[list[Hit], list[Hit]]:
        m = self._m
        flt = self._filter(query.filter)
        requests, kinds = [], []
        if query.dense is not None:
            requests.append(
                m.QueryRequest(query=query.dense.tolist(), using=DENSE, filter=flt, limit=query.limit,
                               with_payload=HIT_PAYLOAD)
            )
            kinds.append(DENSE)
        if query.sparse is not None and query.sparse.indices:
            vector = m.SparseVector(indices=query.sparse.indices, values=query.sparse.values)
            requests.append(
                m.QueryRequest(query=vector, using=SPARSE, filter=flt, limit=query.limit, with_payload=HIT_PAYLOAD)
            )
            kinds.append(SPARSE)
        results = self._client.query_batch_points(self._collection, requests=requests) if requests else []
        by_kind = {
            kind: [_hit(p.id, p.score, p.payload) for p in response.points]
            for kind, response in zip(kinds, results, strict=True)
        }
        return by_kind.get(DENSE, []), by_kind.get(SPARSE, [])

    def count(self, twin_id: int | None = None) -> int:
        only = self._filter(VectorFilter(twin_id)) if twin_id is not None else None
        return int(self._client.count(self._collection, count_filter=only, exact=True).count)

    def present(self, ids: list[int]) -> set[int]:
        if not ids:
            return set()
        records = self._client.retrieve(self._collection, ids=list(ids), with_payload=False, with_vectors=False)
        return {int(r.id) for r in records}

    def ids(self) -> set[int]:
        found: set[int] = set()
        offset = None
        while True:
            records, offset = self._client.scroll(
                self._collection, offset=offset, limit=10_000, with_payload=False, with_vectors=False
            )
            found.update(int(r.id) for r in records)
            if offset is None:
                return found

    def compact(self) -> None:
        """The server vacuums deleted points itself; nothing to do from the client."""

    def clear(self) -> None:
        self._client.delete(
            self._collection, points_selector=self._m.FilterSelector(filter=self._m.Filter(must=[]))
        )

    def disk_bytes(self) -> int:
        return 0

    def close(self) -> None:
        self._client.close()
