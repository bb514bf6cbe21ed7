"""L1 facts: what the twin knows about its owner, with provenance, a time of validity and a visibility."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Engine, func, select
from sqlmodel import Session

from storage.errors import StorageError
from storage.fence import ForgottenMeanwhile, check_unforgotten
from storage.items import AUDIENCE_VISIBILITY
from storage.models import Direction, Fact, FactOrigin, FactSource, ItemKind, L0Item, MemoryCursor, Visibility, utcnow

MEMORY_KINDS = (ItemKind.message, ItemKind.document)  # not the twin's replies, not expert relays
PRIVACY_ORDER = (Visibility.private, Visibility.contacts, Visibility.public)  # most private first


def most_private(visibilities: Iterable[str]) -> Visibility:
    """The most private of the visibilities (private when there are none): a fact is as private as its sources."""
    found = {Visibility(v) for v in visibilities}
    return next((v for v in PRIVACY_ORDER if v in found), Visibility.private)


def as_utc(moment: datetime) -> datetime:
    """An aggregate's datetime (SQLite returns it naive, or as text) as timezone-aware UTC."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def owner_authored() -> ColumnElement[bool]:
    """SQL condition: items the owner wrote themself (their messages) or imported (their documents)."""
    own_message = (L0Item.kind == ItemKind.message) & (L0Item.direction == Direction.outbound)
    return own_message | (L0Item.kind == ItemKind.document)


def is_owner_authored(item: L0Item) -> bool:
    """Whether an item is the owner's own word: only such items may ground a fact about the owner."""
    own_message = item.kind == ItemKind.message and item.direction == Direction.outbound
    return own_message or item.kind == ItemKind.document


@dataclass(frozen=True)
class NewFact:
    """A fact about to be stored: its text, where it came from and how sure the twin is."""

    text: str
    item_ids: tuple[int, ...] = ()
    confidence: float = 1.0
    origin: FactOrigin = FactOrigin.extracted
    visibility: Visibility | None = None  # None: the most private visibility among its sources
    valid_from: datetime | None = None  # None: when its latest source happened, else now


class FactStore:
    """Facts of every twin; a changed fact is closed (valid_to) and superseded, never overwritten or lost."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing -----------------------------------------------------------------------------------

    def add(self, twin_id: int, new: NewFact) -> Fact:
        """Store a new current fact with its provenance."""
        with Session(self.engine, expire_on_commit=False) as session:
            fact = self._insert(session, twin_id, new)
            session.commit()
            return fact

    def update(self, twin_id: int, fact_id: int, text: str, item_ids: Sequence[int] = (),
               confidence: float | None = None) -> Fact:
        """Refine a current fact in place (same truth, better wording); its new sources join its provenance."""
        with Session(self.engine, expire_on_commit=False) as session:
            fact = self._current(session, twin_id, fact_id)
            fact.text = text
            if confidence is not None:
                fact.confidence = max(fact.confidence, confidence)
            self._link(session, fact, item_ids)
            session.commit()
            return fact

    def supersede(self, twin_id: int, fact_id: int, new: NewFact) -> Fact:
        """Close the fact where the new one begins and store the new one in its place; returns the new fact."""
        with Session(self.engine, expire_on_commit=False) as session:
            old = self._current(session, twin_id, fact_id)
            fact = self._insert(session, twin_id, new)
            old.valid_to = max(fact.valid_from, old.valid_from)
            old.superseded_by = fact.id
            old.updated_at = utcnow()
            session.add(old)
            session.commit()
        # An adapter that learned the old value now answers wrong: every audience that could see it is retrained.
        from storage.retrain_requests import RetrainRequests

        audiences = [a for a, seen in AUDIENCE_VISIBILITY.items() if old.visibility in seen]
        RetrainRequests(self.engine).request(twin_id, f"fact {fact_id} was superseded", audiences)
        return fact

    def confirm(self, twin_id: int, fact_id: int, item_ids: Sequence[int]) -> Fact:
        """A duplicate was seen again: keep the fact, add the new sources to its provenance."""
        with Session(self.engine, expire_on_commit=False) as session:
            fact = self._current(session, twin_id, fact_id)
            self._link(session, fact, item_ids)
            session.commit()
            return fact

    def set_visibility(self, twin_id: int, fact_id: int, visibility: Visibility) -> Fact:
        """The owner decides who may see a fact; inference never changes it afterwards."""
        with Session(self.engine, expire_on_commit=False) as session:
            fact = self._owned(session, twin_id, fact_id)
            fact.visibility = Visibility(visibility)
            fact.visibility_by_owner = True
            fact.updated_at = utcnow()
            session.add(fact)
            session.commit()
            return fact

    def check_unforgotten(self, twin_id: int, read: Sequence[L0Item], fact_ids: Sequence[int] = ()) -> None:
        """Raise ForgottenMeanwhile if an item or fact a job read was forgotten since (call it under the fence)."""
        with Session(self.engine) as session:
            check_unforgotten(session, twin_id, items=read, fact_ids=fact_ids)

    def _insert(self, session: Session, twin_id: int, new: NewFact) -> Fact:
        items = self._sources(session, twin_id, new.item_ids)
        inferred = most_private(item.visibility for item in items)
        fact = Fact(
            twin_id=twin_id, text=new.text, confidence=new.confidence, origin=new.origin,
            visibility=new.visibility or inferred, visibility_by_owner=new.visibility is not None,
            valid_from=new.valid_from or max((item.occurred_at for item in items), default=utcnow()),
        )
        session.add(fact)
        session.flush()
        session.add_all(FactSource(fact_id=fact.id, l0_item_id=item.id, twin_id=twin_id) for item in items)
        return fact

    def _link(self, session: Session, fact: Fact, item_ids: Sequence[int]) -> None:
        """Add sources to a fact; an inferred visibility can only become more private by it."""
        known = set(session.scalars(select(FactSource.l0_item_id).where(FactSource.fact_id == fact.id)))
        items = [item for item in self._sources(session, fact.twin_id, item_ids) if item.id not in known]
        session.add_all(FactSource(fact_id=fact.id, l0_item_id=item.id, twin_id=fact.twin_id) for item in items)
        if not fact.visibility_by_owner:
            fact.visibility = most_private([fact.visibility, *(item.visibility for item in items)])
        fact.updated_at = utcnow()
        session.add(fact)

    def _sources(self, session: Session, twin_id: int, item_ids: Sequence[int]) -> list[L0Item]:
        """The items a fact is drawn from; one that is gone was forgotten after it was read: nothing is written."""
        items = self._items(session, twin_id, item_ids)
        if len(items) < len(set(item_ids)):
            missing = sorted(set(item_ids) - {item.id for item in items})
            raise ForgottenMeanwhile(f"the fact's sources {missing} were forgotten")
        return items

    @staticmethod
    def _items(session: Session, twin_id: int, item_ids: Sequence[int]) -> list[L0Item]:
        if not item_ids:
            return []
        query = select(L0Item).where(L0Item.twin_id == twin_id, L0Item.id.in_(list(item_ids)))
        return list(session.scalars(query))

    @staticmethod
    def _owned(session: Session, twin_id: int, fact_id: int) -> Fact:
        fact = session.get(Fact, fact_id)
        if fact is None or fact.twin_id != twin_id:
            raise StorageError(f"no fact with id {fact_id}")
        return fact

    def _current(self, session: Session, twin_id: int, fact_id: int) -> Fact:
        fact = self._owned(session, twin_id, fact_id)
        if fact.valid_to is not None:
            raise StorageError(f"fact {fact_id} was superseded and cannot change")
        return fact

    # -- reading -----------------------------------------------------------------------------------

    def get(self, twin_id: int, fact_id: int) -> Fact | None:
        """A fact by id, current or not."""
        with Session(self.engine, expire_on_commit=False) as session:
            fact = session.get(Fact, fact_id)
            return fact if fact is not None and fact.twin_id == twin_id else None

    def current(self, twin_id: int, audience: str = "owner") -> list[Fact]:
        """The facts true now that the audience may see, oldest first."""
        return self._select(twin_id, audience, Fact.valid_to.is_(None))

    def all(self, twin_id: int, audience: str = "owner") -> list[Fact]:
        """Every fact the audience may see, superseded ones included."""
        return self._select(twin_id, audience)

    def valid_at(self, twin_id: int, moment: datetime, audience: str = "owner") -> list[Fact]:
        """The facts that were true at a moment ("where did I live in 2023")."""
        closed_later = Fact.valid_to.is_(None) | (Fact.valid_to > moment)
        return self._select(twin_id, audience, Fact.valid_from <= moment, closed_later)

    def _select(self, twin_id: int, audience: str, *conditions: object) -> list[Fact]:
        visible = [str(v) for v in AUDIENCE_VISIBILITY[audience]]
        query = (
            select(Fact)
            .where(Fact.twin_id == twin_id, Fact.visibility.in_(visible), *conditions)
            .order_by(Fact.valid_from, Fact.id)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def provenance(self, twin_id: int, fact_ids: Sequence[int]) -> dict[int, list[int]]:
        """The L0 item ids each fact was drawn from."""
        found: dict[int, list[int]] = {fact_id: [] for fact_id in fact_ids}
        if not fact_ids:
            return found
        query = (
            select(FactSource.fact_id, FactSource.l0_item_id)
            .where(FactSource.twin_id == twin_id, FactSource.fact_id.in_(list(fact_ids)))
            .order_by(FactSource.l0_item_id)
        )
        with Session(self.engine) as session:
            for fact_id, item_id in session.execute(query):
                found[fact_id].append(item_id)
        return found

    def changed_since(self, twin_id: int, moment: datetime | None) -> int:
        """How many facts were added or changed after a moment (all of them for None)."""
        query = select(func.count()).select_from(Fact).where(Fact.twin_id == twin_id)
        if moment is not None:
            query = query.where(Fact.updated_at > moment)
        with Session(self.engine) as session:
            return session.scalar(query) or 0

    # -- the extraction cursor: which L0 items L1 has read -------------------------------------------

    def items_after(self, twin_id: int, after_id: int, limit: int) -> list[L0Item]:
        """L0 items stored after the given id, oldest first."""
        query = (
            select(L0Item)
            .where(L0Item.twin_id == twin_id, L0Item.id > after_id)
            .order_by(L0Item.id)
            .limit(limit)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def pending_span(self, twin_id: int, after_id: int) -> tuple[datetime, datetime] | None:
        """When the first and the last item after the id were stored; None when there are none."""
        query = select(func.min(L0Item.ingested_at), func.max(L0Item.ingested_at)).where(
            L0Item.twin_id == twin_id, L0Item.id > after_id
        )
        with Session(self.engine) as session:
            first, last = session.execute(query).one()
        return None if first is None else (as_utc(first), as_utc(last))

    def cursor(self, twin_id: int, name: str) -> int:
        """The last L0 item id the named job processed (0 before its first run)."""
        with Session(self.engine) as session:
            row = session.get(MemoryCursor, (twin_id, name))
            return row.position if row else 0

    def set_cursor(self, twin_id: int, name: str, position: int) -> None:
        """Record that the named job processed every item up to this id."""
        with Session(self.engine) as session:
            row = session.get(MemoryCursor, (twin_id, name)) or MemoryCursor(twin_id=twin_id, name=name)
            row.position = position
            row.updated_at = utcnow()
            session.add(row)
            session.commit()
