"""L0 memory: append raw items idempotently to SQL and the vector index, read them back, count them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage.embeddings import Embedder
from storage.items import NewItem, writable
from storage.lexical import Bm25Encoder
from storage.models import Direction, Identity, ItemKind, L0Item, Person, Twin, Visibility
from storage.query_vectors import QueryVectors
from storage.text import encodable_text
from storage.tombstones import Tombstones
from storage.vectors import IndexedPoint, SparseVector, VectorIndex


@dataclass
class AddResult:
    """What an append did: ids of the new rows, and how many were already stored."""

    added_ids: list[int]
    duplicates: int
    forgotten: int = 0  # skipped because the owner forgot them (a tombstone matched)
    rows: list[L0Item] = field(default_factory=list)  # the new rows, as written

    @property
    def added(self) -> int:
        return len(self.added_ids)


CONTEXT_TURNS = 2  # earlier messages of the same chat indexed along with a message
CONTEXT_WEIGHT = 0.3  # BM25 weight of their words against the message's own: a message outranks its replies
TWIN_WORDS = (ItemKind.reply, ItemKind.expert)  # what the twin itself wrote: never context for other items
NEXT_WEIGHT = 0.3  # the same for the message after it: an answer's words find the question (LoCoMo all@10 +1.6)


@dataclass(frozen=True)
class Turn:
    """An item in its chat: the items just before it (oldest first) and the one after, if any."""

    item: L0Item
    earlier: list[L0Item]
    next: L0Item | None

    @property
    def follows(self) -> int | None:
        """The id of the item just before it when someone else said it: the item this one answers in an exchange.

        The search's neighbour lift joins a question and its answer. One person's run of messages (a message to
        an assistant, then the next one) gets none: on LongMemEval's user turns the lift cost 3 points of all@10
        and on LoCoMo's exchanges it gains some (docs/benchmarks.md)."""
        if not self.earlier or same_sender(self.earlier[-1], self.item):
            return None
        return self.earlier[-1].id


def same_sender(one: L0Item, other: L0Item) -> bool:
    """Whether the same person said both (by person when both are known, else by the name shown)."""
    if one.sender_id is not None and other.sender_id is not None:
        return one.sender_id == other.sender_id
    return one.sender_name == other.sender_name


def index_text(item: L0Item, earlier: Sequence[L0Item] = ()) -> str:
    """The text of an item as the index reads it: the day, who said what, then the given earlier messages.

    The day lets "in May 2023" match; documents carry their title instead. The store gives BM25 the item
    alone here (its context goes in as weighted fields) and embeds it alone too (storage/context_vectors.py
    adds the context's vectors), so a reply is found by the words and the meaning of what it answers.
    """
    if item.kind == "document":
        return f"{item.chat_title or item.chat}: {item.text}"
    day = f"[{item.occurred_at.day} {item.occurred_at:%B %Y}] " if item.occurred_at else ""
    return "\n".join([f"{day}{item.sender_name}: {item.text}", *(before.text for before in earlier)])


def epoch(moment: datetime) -> float:
    """Seconds since the epoch; naive datetimes are taken as UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _batches(items: Iterable[NewItem], size: int) -> Iterator[list[NewItem]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class MemoryStore:
    """L0 for every twin in one database and one vector index."""

    def __init__(self, engine: Engine, index: VectorIndex, embedder: Embedder, lexical: Bm25Encoder) -> None:
        self.engine = engine
        self.index = index
        self.embedder = embedder
        self.query_vectors = QueryVectors(lambda texts: self.embedder.embed(texts))  # one per message, shared
        self.lexical = lexical
        self._people_cache: dict[tuple[int, str, str], int] = {}
        self.tombstones = Tombstones()  # (twin, platform, account) -> person

    # -- twins and people -------------------------------------------------------------------------

    def ensure_twin(self, handle: str, display_name: str) -> Twin:
        """The twin with this handle, created (with its owner as a person) if new."""
        with Session(self.engine, expire_on_commit=False) as session:
            twin = session.scalars(select(Twin).where(Twin.handle == handle)).first()
            if twin is None:
                twin = Twin(handle=handle, display_name=display_name)
                session.add(twin)
                session.flush()
                session.add(Person(twin_id=twin.id, display_name=display_name, is_owner=True, trust="owner"))
                session.commit()
            return twin

    def find_twin(self, handle: str) -> Twin | None:
        """The twin with this handle, if there is one."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(select(Twin).where(Twin.handle == handle)).first()

    def owner(self, twin_id: int) -> Person:
        """The owner's person row."""
        with Session(self.engine, expire_on_commit=False) as session:
            query = select(Person).where(Person.twin_id == twin_id, Person.is_owner)
            return session.scalars(query).one()

    def forget_cached_people(self) -> None:
        """People changed elsewhere (merged, accounts moved): look every sender up again."""
        self._people_cache.clear()

    def link_identity(self, twin_id: int, person_id: int, platform: str, external_id: str, name: str | None) -> None:
        """Record that this platform account belongs to the person (moving it there if it was someone else's)."""
        with Session(self.engine) as session:
            identity = self._identity(session, twin_id, platform, external_id, name, person_id)
            if identity.person_id != person_id:
                identity.person_id = person_id
                session.add(identity)
            session.commit()
        self._people_cache[(twin_id, platform, external_id)] = person_id

    def _identity(
        self, session: Session, twin_id: int, platform: str, external_id: str, name: str | None, person_id: int | None
    ) -> Identity:
        query = select(Identity).where(
            Identity.twin_id == twin_id, Identity.platform == platform, Identity.external_id == external_id
        )
        identity = session.scalars(query).first()
        if identity is None:
            if person_id is None:
                person = Person(twin_id=twin_id, display_name=name or external_id)
                session.add(person)
                session.flush()
                person_id = person.id
            identity = Identity(
                twin_id=twin_id, person_id=person_id, platform=platform, external_id=external_id, display_name=name
            )
            session.add(identity)
            session.flush()
        return identity

    def _people(self, session: Session, twin_id: int, batch: list[NewItem]) -> dict[tuple[str, str], int]:
        """The person id of every sender in the batch, creating people for new accounts."""
        people: dict[tuple[str, str], int] = {}
        for item in batch:
            key = (item.source, item.sender_id or item.sender)
            if key in people:
                continue
            cached = self._people_cache.get((twin_id, *key))
            if cached is None:
                cached = self._identity(session, twin_id, key[0], key[1], item.sender, None).person_id
            people[key] = cached
        return people

    # -- appending ---------------------------------------------------------------------------------

    def add(
        self, twin_id: int, items: Iterable[NewItem], default_visibility: Visibility = Visibility.private,
        batch_size: int = 512, index: bool = True, match_forgotten_text: bool = True,
    ) -> AddResult:
        """Append items; those whose (source, source_id) is already stored are skipped. Returns what was new.

        With index=False only the SQL rows are written (the source of truth); the caller indexes them later
        with `index_ids`, and `sync_index` at start-up covers a crash in between.
        """
        result = AddResult(added_ids=[], duplicates=0)
        owner_id = self.owner(twin_id).id
        for batch in _batches(map(writable, items), batch_size):
            try:
                rows, forgotten = self._insert(twin_id, owner_id, batch, default_visibility, match_forgotten_text)
            except IntegrityError:  # a concurrent writer created one of these senders first, or merged a person
                self._people_cache.clear()  # away (its id is gone): look every sender up again
                rows, forgotten = self._insert(twin_id, owner_id, batch, default_visibility, match_forgotten_text)
            result.added_ids.extend(row.id for row in rows)
            result.rows.extend(rows)
            result.forgotten += forgotten
            result.duplicates += len(batch) - len(rows) - forgotten
            if index:
                self._index(rows)
        return result

    def index_ids(self, ids: list[int]) -> None:
        """Embed and index stored items that were added with index=False."""
        rows = self.get(ids)
        self._index([rows[id] for id in sorted(rows)])

    def _insert(
        self, twin_id: int, owner_id: int, batch: list[NewItem], default_visibility: Visibility, match_text: bool
    ) -> tuple[list[L0Item], int]:
        with Session(self.engine, expire_on_commit=False) as session:
            keys = [(item.source, item.source_id, item.text) for item in batch]
            buried = self.tombstones.buried(session, twin_id, keys, match_text)
            kept = [item for item, gone in zip(batch, buried, strict=True) if not gone]
            if not kept:
                return [], len(batch)
            batch = kept
            people = self._people(session, twin_id, batch)
            values = [self._row(twin_id, owner_id, people, item, default_visibility) for item in batch]
            inserted = self._insert_ignoring_duplicates(session, values)
            session.commit()
        # Only committed people are cached: a rolled-back batch must not leave ids that do not exist.
        self._people_cache.update({(twin_id, *key): person for key, person in people.items()})
        by_key = {(row["source"], row["source_id"]): row for row in values}
        return [L0Item.model_construct(id=id, **by_key[key]) for id, key in sorted(inserted)], sum(buried)

    @staticmethod
    def _row(
        twin_id: int, owner_id: int, people: dict[tuple[str, str], int], item: NewItem, default: Visibility
    ) -> dict:
        person_id = people[(item.source, item.sender_id or item.sender)]
        return dict(
            twin_id=twin_id, source=item.source, source_id=item.source_id, kind=item.kind, chat=item.chat,
            chat_title=item.chat_title, sender_id=person_id, sender_name=item.sender, text=item.text,
            occurred_at=item.occurred_at, raw=item.raw, ingested_at=datetime.now(UTC),
            direction=item.direction or (Direction.outbound if person_id == owner_id else Direction.inbound),
            visibility=item.visibility or default,
        )

    def _insert_ignoring_duplicates(self, session: Session, values: list[dict]) -> list[tuple[int, tuple[str, str]]]:
        if self.engine.dialect.name == "postgresql":  # the dialect's insert loads here: a reader never needs it
            from sqlalchemy.dialects import postgresql as dialect
        else:
            from sqlalchemy.dialects import sqlite as dialect
        seen: set[tuple[str, str]] = set()
        unique = []
        for row in values:  # the same source id twice in one batch counts once
            key = (row["source"], row["source_id"])
            if key not in seen:
                seen.add(key)
                unique.append(row)
        statement = (
            dialect.insert(L0Item)
            .on_conflict_do_nothing(index_elements=["twin_id", "source", "source_id"])
            .returning(L0Item.id, L0Item.source, L0Item.source_id)
        )
        return [(id, (source, source_id)) for id, source, source_id in session.execute(statement, unique).all()]

    def _index(self, rows: list[L0Item]) -> None:
        if not rows:
            return
        turns = self._turns(rows)
        # A neighbour not in the index yet (stored just before these, its own batch still to come) is indexed
        # whole here: its next turn cannot be patched onto a point that does not exist.
        new = {row.id for row in rows}
        neighbours = [id for id in turns if id not in new]
        missing = set(neighbours) - self.index.present(neighbours)
        rows = [*rows, *(turns[id].item for id in sorted(missing))]
        dense = self._dense(rows, turns)
        self.index.upsert(
            [
                IndexedPoint(
                    id=row.id, dense=vector, sparse=self._sparse(row, turns[row.id]), twin_id=row.twin_id,
                    visibility=row.visibility, chat=row.chat, timestamp=epoch(row.occurred_at),
                    follows=turns[row.id].follows,
                )
                for row, vector in zip(rows, dense, strict=True)
            ]
        )
        # The message just before each run of new ones now has a next turn: only its BM25 fields change.
        new |= missing
        self.index.update_sparse({id: self._sparse(turn.item, turn) for id, turn in turns.items() if id not in new})

    def _dense(self, rows: list[L0Item], turns: dict[int, Turn]) -> list[list[float]]:
        """Each row's dense vector: the model on the message with its day and its earlier turns, as one text."""
        return self.embedder.embed(self.dense_texts(rows, turns)).tolist()  # one conversion for the batch

    def dense_texts(self, rows: list[L0Item], turns: dict[int, Turn] | None = None) -> list[str]:
        """The texts the model embeds for these stored rows (their turns read when not given)."""
        turns = turns if turns is not None else self._turns(rows)
        return [index_text(row, turns[row.id].earlier) for row in rows]

    def _sparse(self, row: L0Item, turn: Turn) -> SparseVector:
        """BM25 of the item itself plus, weighted down, of the messages around it (fields, as in BM25F)."""
        own = self.lexical.document(index_text(row))
        weights = dict(zip(own.indices, own.values, strict=True))
        fields = [(turn.earlier, CONTEXT_WEIGHT), ([turn.next] if turn.next else [], NEXT_WEIGHT)]
        for items, field_weight in fields:
            if not items:
                continue
            context = self.lexical.document("\n".join(item.text for item in items))
            for index, value in zip(context.indices, context.values, strict=True):
                weights[index] = weights.get(index, 0.0) + field_weight * value
        return SparseVector(list(weights), list(weights.values()))

    def _turns(self, rows: list[L0Item]) -> dict[int, Turn]:
        """Each row's place in its chat (by time, then id), read in SQL: the CONTEXT_TURNS items before it and
        the one after; plus the same for the item just before each chat's first row, whose next turn is new.

        The twin's own words (its replies, expert relays) are nobody's context: a model's mistake must not make
        a message findable by words nobody said. They get their own entry only, and change no neighbour."""
        by_chat: dict[tuple[int, str], list[L0Item]] = defaultdict(list)
        for row in rows:
            by_chat[(row.twin_id, row.chat)].append(row)
        turns: dict[int, Turn] = {}
        with Session(self.engine, expire_on_commit=False) as session:
            for (twin_id, chat), members in by_chat.items():
                said = [row for row in members if row.kind not in TWIN_WORDS]
                turns |= {row.id: Turn(row, [], None) for row in members if row.kind in TWIN_WORDS}
                if not said:
                    continue
                first, last = min(r.occurred_at for r in said), max(r.occurred_at for r in said)
                in_chat = (L0Item.twin_id == twin_id) & (L0Item.chat == chat) & L0Item.kind.notin_(TWIN_WORDS)
                before = select(L0Item).where(in_chat, L0Item.occurred_at < first)
                before = before.order_by(L0Item.occurred_at.desc(), L0Item.id.desc()).limit(CONTEXT_TURNS + 1)
                during = select(L0Item).where(in_chat, L0Item.occurred_at.between(first, last))
                after = select(L0Item).where(in_chat, L0Item.occurred_at > last)
                after = after.order_by(L0Item.occurred_at, L0Item.id).limit(1)
                found = [*session.scalars(before), *session.scalars(during), *session.scalars(after)]
                timeline = sorted(found, key=lambda r: (r.occurred_at, r.id))
                position = {r.id: i for i, r in enumerate(timeline)}
                wanted = {position[row.id] for row in said}
                wanted |= {at - 1 for at in wanted if at > 0 and at - 1 not in wanted}
                for at in wanted:
                    earlier = timeline[max(0, at - CONTEXT_TURNS) : at]
                    later = timeline[at + 1] if at + 1 < len(timeline) else None
                    turns[timeline[at].id] = Turn(timeline[at], earlier, later)
        return turns

    def optimize_index(self) -> None:
        """Build the index's search graph over what was added (after a bulk import, or now and then)."""
        self.index.compact()

    # -- reading -----------------------------------------------------------------------------------

    def get(self, ids: list[int]) -> dict[int, L0Item]:
        """Items by id (missing ids are left out)."""
        if not ids:
            return {}
        with Session(self.engine, expire_on_commit=False) as session:
            rows = session.scalars(select(L0Item).where(L0Item.id.in_(ids))).all()
            return {row.id: row for row in rows}

    def by_source(self, twin_id: int, source: str, source_id: str) -> L0Item | None:
        """The item with this source id, if stored."""
        query = select(L0Item).where(
            L0Item.twin_id == twin_id, L0Item.source == source, L0Item.source_id == source_id
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).first()

    def recent_in_chat(self, twin_id: int, source: str, chat: str, before_id: int, limit: int) -> list[L0Item]:
        """The last `limit` items of a chat stored before the given item, oldest first."""
        query = (
            select(L0Item)
            .where(L0Item.twin_id == twin_id, L0Item.source == source, L0Item.chat == chat, L0Item.id < before_id)
            .order_by(L0Item.id.desc())
            .limit(limit)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(reversed(session.scalars(query).all()))

    def reindex(self, batch_size: int = 512, progress=None) -> int:  # noqa: ANN001 - a callable(n)
        """Rebuild the vector index from SQL; returns the number of items indexed."""
        self.index.clear()
        done = 0
        with Session(self.engine, expire_on_commit=False) as session:
            last_id = 0
            while True:
                query = select(L0Item).where(L0Item.id > last_id).order_by(L0Item.id).limit(batch_size)
                rows = session.scalars(query).all()
                if not rows:
                    break
                self._index(list(rows))
                last_id = rows[-1].id
                done += len(rows)
                if progress:
                    progress(len(rows))
        self.index.compact()
        return done

    def sync_index(self) -> int:
        """Index the SQL rows the vector index lacks (after a crash between commit and upsert)."""
        with Session(self.engine) as session:
            total = session.scalar(select(func.count()).select_from(L0Item)) or 0
        if total == self.index.count():
            return 0
        missing = set(self._all_ids()) - self.index.ids()
        for start in range(0, len(missing), 512):
            self._index(list(self.get(sorted(missing)[start : start + 512]).values()))
        return len(missing)

    def _all_ids(self) -> list[int]:
        with Session(self.engine) as session:
            return list(session.scalars(select(L0Item.id)))

    def count_by_source(self, twin_id: int | None = None) -> dict[str, int]:
        """L0 item counts per source."""
        query = select(L0Item.source, func.count()).group_by(L0Item.source)
        if twin_id is not None:
            query = query.where(L0Item.twin_id == twin_id)
        with Session(self.engine) as session:
            return {source: count for source, count in session.execute(query).all()}

    def count(self, twin_id: int | None = None) -> int:
        """All L0 items (of one twin)."""
        return sum(self.count_by_source(twin_id).values())

    def name_sender(self, twin_id: int, source: str, source_id: str, name: str) -> L0Item | None:
        """The stored item's sender name set (it was stored before the platform said who wrote it); the item, or None
        when it is not stored. Its index entry holds the name: the caller re-indexes it."""
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.scalars(select(L0Item).where(L0Item.twin_id == twin_id, L0Item.source == source,
                                                       L0Item.source_id == source_id)).first()
            if row is not None:
                row.sender_name = name[:200]
                session.add(row)
                session.commit()
            return row

    def revise(self, twin_id: int, source: str, source_id: str, text: str, raw: dict | None) -> L0Item | None:
        """An edited message: the stored item's text and raw payload replaced in place, then the item and the
        neighbours whose index entries hold its words (the one before it, the CONTEXT_TURNS after) re-indexed.
        None, and nothing written, when the item was never stored or was forgotten (a tombstone matches)."""
        with Session(self.engine, expire_on_commit=False) as session:
            if self.tombstones.buried(session, twin_id, [(source, source_id, text)], match_text=False)[0]:
                return None
            query = select(L0Item).where(L0Item.twin_id == twin_id, L0Item.source == source,
                                         L0Item.source_id == source_id)
            row = session.scalars(query).first()
            if row is None:
                return None
            row.text, row.raw = encodable_text(text), raw
            session.add(row)
            session.commit()
            neighbours = self.holding_words_of(session, row)
        self.index_ids([row.id, *neighbours])
        return row

    @staticmethod
    def holding_words_of(session: Session, item: L0Item) -> list[int]:
        """The items whose index fields hold this item's words: the CONTEXT_TURNS said after it in its chat (their
        earlier turns) and the one said before it (its next turn). The twin's own words are no one's context."""
        said = (L0Item.twin_id == item.twin_id) & (L0Item.chat == item.chat) & L0Item.kind.notin_(TWIN_WORDS)
        after = (L0Item.occurred_at > item.occurred_at) | (
            (L0Item.occurred_at == item.occurred_at) & (L0Item.id > item.id))
        before = (L0Item.occurred_at < item.occurred_at) | (
            (L0Item.occurred_at == item.occurred_at) & (L0Item.id < item.id))
        later = select(L0Item.id).where(said, after).order_by(L0Item.occurred_at, L0Item.id).limit(CONTEXT_TURNS)
        earlier = select(L0Item.id).where(said, before).order_by(L0Item.occurred_at.desc(), L0Item.id.desc()).limit(1)
        return [*session.scalars(later), *session.scalars(earlier)]
