"""Versioned profiles: the bio, status bio and topics, one per audience per version, so a bad one can be undone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from storage.errors import StorageError
from storage.facts import MEMORY_KINDS, owner_authored
from storage.fence import ForgottenMeanwhile, check_unforgotten
from storage.items import AUDIENCE_VISIBILITY
from storage.models import L0Item, ProfileVersion


@dataclass(frozen=True)
class ProfileDraft:
    """One audience's profile as generated, before it is stored."""

    global_bio: str
    status_bio: str
    topics: list[dict[str, str]] = field(default_factory=list)
    fact_ids: tuple[int, ...] = ()
    item_ids: tuple[int, ...] = ()


class ProfileStore:
    """Saves each regeneration as a new version (all audiences at once), activates it, rolls it back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, twin_id: int, drafts: Mapping[str, ProfileDraft]) -> int:
        """Store the drafts (by audience) as the next version and make it the active one; returns the version."""
        unknown = set(drafts) - set(AUDIENCE_VISIBILITY)
        if unknown:
            raise StorageError(f"unknown audiences {sorted(unknown)}")
        with Session(self.engine) as session:
            self._check_sources(session, twin_id, drafts)
            last = session.scalar(select(func.max(ProfileVersion.version)).where(ProfileVersion.twin_id == twin_id))
            version = (last or 0) + 1
            session.add_all(_row(twin_id, version, audience, draft) for audience, draft in drafts.items())
            self._activate(session, twin_id, version)
            session.commit()
            return version

    @staticmethod
    def _check_sources(session: Session, twin_id: int, drafts: Mapping[str, ProfileDraft]) -> None:
        """A draft written from a fact or an item forgotten since is not saved (ForgottenMeanwhile)."""
        fact_ids = sorted({fact_id for draft in drafts.values() for fact_id in draft.fact_ids})
        item_ids = sorted({item_id for draft in drafts.values() for item_id in draft.item_ids})
        items = list(session.scalars(select(L0Item).where(L0Item.twin_id == twin_id, L0Item.id.in_(item_ids))))
        if len(items) < len(item_ids):
            missing = sorted(set(item_ids) - {item.id for item in items})
            raise ForgottenMeanwhile(f"the profile's source items {missing} were forgotten")
        check_unforgotten(session, twin_id, items=items, fact_ids=fact_ids)

    def active(self, twin_id: int, audience: str) -> ProfileVersion | None:
        """The profile this audience is shown now, if any."""
        query = select(ProfileVersion).where(
            ProfileVersion.twin_id == twin_id, ProfileVersion.audience == audience, ProfileVersion.active
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).first()

    def active_version(self, twin_id: int) -> int | None:
        """The number of the active version, if any."""
        query = select(ProfileVersion.version).where(ProfileVersion.twin_id == twin_id, ProfileVersion.active)
        with Session(self.engine) as session:
            return session.scalars(query).first()

    def versions(self, twin_id: int) -> list[int]:
        """Every stored version number, oldest first."""
        query = select(ProfileVersion.version).where(ProfileVersion.twin_id == twin_id).distinct()
        with Session(self.engine) as session:
            return sorted(session.scalars(query))

    def rollback(self, twin_id: int, to_version: int | None = None) -> int:
        """Activate an earlier version (default: the one before the active one); returns it."""
        versions = self.versions(twin_id)
        current = self.active_version(twin_id)
        if to_version is None:
            earlier = [v for v in versions if current is not None and v < current]
            if not earlier:
                raise StorageError("there is no earlier profile version to roll back to")
            to_version = earlier[-1]
        if to_version not in versions:
            raise StorageError(f"no profile version {to_version}; versions: {versions or 'none'}")
        with Session(self.engine) as session:
            self._activate(session, twin_id, to_version)
            session.commit()
        return to_version

    @staticmethod
    def _activate(session: Session, twin_id: int, version: int) -> None:
        session.execute(update(ProfileVersion).where(ProfileVersion.twin_id == twin_id).values(active=False))
        session.execute(
            update(ProfileVersion)
            .where(ProfileVersion.twin_id == twin_id, ProfileVersion.version == version)
            .values(active=True)
        )

    def recent_items(self, twin_id: int, audience: str, limit: int, owner_only: bool = True) -> list[L0Item]:
        """The latest L0 items the audience may see (the owner's own by default), oldest first: the status bio's."""
        visible = [str(v) for v in AUDIENCE_VISIBILITY[audience]]
        query = select(L0Item).where(
            L0Item.twin_id == twin_id, L0Item.visibility.in_(visible), L0Item.kind.in_(MEMORY_KINDS)
        )
        if owner_only:
            query = query.where(owner_authored())
        query = query.order_by(L0Item.occurred_at.desc(), L0Item.id.desc()).limit(limit)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(reversed(session.scalars(query).all()))


def _row(twin_id: int, version: int, audience: str, draft: ProfileDraft) -> ProfileVersion:
    return ProfileVersion(
        twin_id=twin_id, version=version, audience=audience, global_bio=draft.global_bio,
        status_bio=draft.status_bio, topics=list(draft.topics),
        sources={"facts": list(draft.fact_ids), "items": list(draft.item_ids)},
    )
