"""Forgetting in L0: find what matches, then remove it from SQL, the vector index and the bytes on disk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, select, tuple_
from sqlmodel import Session

from storage.database import checkpoint, contains_text
from storage.errors import StorageError
from storage.items import reply_source_id
from storage.memory import TWIN_WORDS, MemoryStore
from storage.models import L0Item


@dataclass(frozen=True)
class ForgetQuery:
    """What to forget; the criteria given are combined (all must hold)."""

    text: str | None = None  # case-insensitive substring of the text or the raw payload
    message_ids: tuple[int, ...] = ()
    chat: str | None = None
    before: datetime | None = None
    fact_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.text is not None and len(self.text.strip()) < 3:
            raise StorageError("say at least 3 characters of what to forget")

    @property
    def selects_l0(self) -> bool:
        """Whether this query names L0 items (a fact id alone does not)."""
        return bool(self.text or self.message_ids or self.chat or self.before)

    def describe(self) -> str:
        """The query in words, for confirmations."""
        parts = [f'text containing "{self.text}"'] if self.text else []
        parts += [f"message {i}" for i in self.message_ids] + [f"fact {i}" for i in self.fact_ids]
        parts += [f"chat {self.chat}"] if self.chat else []
        parts += [f"before {self.before:%Y-%m-%d}"] if self.before else []
        return " and ".join(parts) or "nothing"


class L0Forgetting:
    """The L0 layer of forgetting."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def find(self, twin_id: int, query: ForgetQuery) -> list[L0Item]:
        """Every L0 item matching the query (not a top-k: all of them)."""
        if not query.selects_l0:
            return []
        conditions = [L0Item.twin_id == twin_id]
        if query.text:
            engine = self.store.engine
            conditions.append(contains_text(engine, L0Item.text, query.text)
                              | contains_text(engine, L0Item.raw, query.text))
        if query.message_ids:
            conditions.append(L0Item.id.in_(query.message_ids))
        if query.chat:
            conditions.append(L0Item.chat == query.chat)
        if query.before:
            conditions.append(L0Item.occurred_at < query.before)
        with Session(self.store.engine, expire_on_commit=False) as session:
            items = list(session.scalars(select(L0Item).where(and_(*conditions)).order_by(L0Item.id)))
            return items + self._replies_to(session, twin_id, items)

    @staticmethod
    def _replies_to(session: Session, twin_id: int, items: list[L0Item]) -> list[L0Item]:
        """The twin's logged replies to these messages (a draft among them): what answered them goes with them."""
        have = {item.id for item in items}
        keys = sorted({(item.source, reply_source_id(item.source_id)) for item in items if item.kind not in TWIN_WORDS})
        found: list[L0Item] = []
        for start in range(0, len(keys), 200):
            chunk = keys[start:start + 200]
            query = select(L0Item).where(L0Item.twin_id == twin_id, tuple_(L0Item.source, L0Item.source_id).in_(chunk))
            found += [row for row in session.scalars(query) if row.id not in have]
        return sorted(found, key=lambda row: row.id)

    def remove(self, twin_id: int, items: list[L0Item]) -> int:
        """Delete the items everywhere, leave tombstones, re-index their neighbours, and purge the bytes."""
        if not items:
            return 0
        ids = [item.id for item in items]
        neighbours = self._neighbours(items)
        with Session(self.store.engine) as session:
            self.store.tombstones.bury(session, twin_id, [(i.source, i.source_id, i.text) for i in items])
            for start in range(0, len(ids), 500):
                session.execute(delete(L0Item).where(L0Item.twin_id == twin_id, L0Item.id.in_(ids[start:start + 500])))
            session.commit()
        self.store.index.delete(ids)
        survivors = sorted(set(neighbours) - set(ids))
        if survivors:  # their indexed context held the forgotten words
            self.store.index_ids(survivors)
        self.purge()
        return len(ids)

    def _neighbours(self, items: list[L0Item]) -> list[int]:
        """Items whose index fields hold words of these (the turns said around them in their chats)."""
        with Session(self.store.engine) as session:
            return [id for item in items for id in self.store.holding_words_of(session, item)]

    def purge(self) -> None:
        """Make deleted bytes unreadable: vector segments vacuumed, SQLite WAL folded and truncated, PG vacuumed."""
        purge_deleted(self.store, ["l0_items"])


def purge_deleted(store: MemoryStore, tables: Iterable[str]) -> None:
    """Deleted bytes made unreadable: vector segments rewritten, SQLite's WAL folded and truncated (secure_delete
    is on), PostgreSQL's tables rewritten with VACUUM FULL (dead tuples leave the files)."""
    store.index.compact()
    engine = store.engine
    if engine.dialect.name == "sqlite":
        checkpoint(engine)
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in sorted(tables):
            connection.exec_driver_sql(f'VACUUM FULL "{table}"')
