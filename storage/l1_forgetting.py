"""Forgetting in L1: the facts drawn from forgotten L0 items (or named, or matching the words), and every
profile version written from them. A layer of the Forgetter: it runs before the L0 rows go."""

from __future__ import annotations

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlmodel import Session

from storage.database import contains_text
from storage.forget import ForgetQuery
from storage.models import Fact, FactSource, ProfileVersion


def matching_facts(session: Session, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[Fact]:
    """The facts a forget removes: named, drawn from the forgotten L0 items, or (words alone) saying the words."""
    drawn = select(FactSource.fact_id).where(FactSource.twin_id == twin_id, FactSource.l0_item_id.in_(l0_ids))
    matches = [Fact.id.in_(drawn), Fact.id.in_(query.fact_ids)]
    if query.text and not (query.message_ids or query.chat or query.before):  # words alone: facts saying them
        matches.append(contains_text(session.get_bind(), Fact.text, query.text))
    return list(session.scalars(select(Fact).where(Fact.twin_id == twin_id, or_(*matches)).order_by(Fact.id)))


class L1Forgetting:
    """Facts and profile versions that must go with what the owner forgets."""

    name = "facts and profile versions"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[str]:
        """The facts and profile versions that match or were drawn from these L0 items."""
        with Session(self.engine) as session:
            facts = self._facts(session, twin_id, query, l0_ids)
            versions = self._versions(session, twin_id, query, {fact.id for fact in facts}, l0_ids)
        return [f"fact {fact.id}: {fact.text}" for fact in facts] + [f"profile version {v}" for v in versions]

    def remove(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> int:
        """Delete them; the newest remaining profile version becomes the active one. Returns the rows removed."""
        with Session(self.engine) as session:
            fact_ids = [fact.id for fact in self._facts(session, twin_id, query, l0_ids)]
            versions = self._versions(session, twin_id, query, set(fact_ids), l0_ids)
            session.execute(update(Fact).where(Fact.superseded_by.in_(fact_ids)).values(superseded_by=None))
            session.execute(delete(FactSource).where(FactSource.fact_id.in_(fact_ids)))
            gone = session.execute(delete(Fact).where(Fact.id.in_(fact_ids))).rowcount
            gone += session.execute(delete(ProfileVersion).where(
                ProfileVersion.twin_id == twin_id, ProfileVersion.version.in_(versions))).rowcount
            self._reactivate(session, twin_id)
            session.commit()
        return gone

    @staticmethod
    def _facts(session: Session, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[Fact]:
        return matching_facts(session, twin_id, query, l0_ids)

    @staticmethod
    def _versions(
        session: Session, twin_id: int, query: ForgetQuery, fact_ids: set[int], l0_ids: set[int]
    ) -> list[int]:
        """Versions written from any of these facts or items, or whose text holds the words (a bio that goes is
        cheap: the next refresh writes another, so the words match whatever else the query says)."""
        found: set[int] = set()
        for row in session.scalars(select(ProfileVersion).where(ProfileVersion.twin_id == twin_id)):
            sources = row.sources or {}
            used = set(sources.get("facts", [])) & fact_ids or set(sources.get("items", [])) & l0_ids
            text = f"{row.global_bio}\n{row.status_bio}\n{row.topics}".casefold()
            if used or (query.text and query.text.strip().casefold() in text):
                found.add(row.version)
        return sorted(found)

    @staticmethod
    def _reactivate(session: Session, twin_id: int) -> None:
        """If the active version went, the newest one left takes over (none left: the next refresh writes one)."""
        active = select(ProfileVersion.id).where(ProfileVersion.twin_id == twin_id, ProfileVersion.active)
        if session.scalars(active).first() is not None:
            return
        newest = session.scalar(select(func.max(ProfileVersion.version)).where(ProfileVersion.twin_id == twin_id))
        if newest is not None:
            session.execute(update(ProfileVersion).where(
                ProfileVersion.twin_id == twin_id, ProfileVersion.version == newest).values(active=True))
