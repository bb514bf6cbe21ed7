"""People the twin knows, their platform accounts, and how far each is trusted (owner, contact, stranger)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, or_, select, update
from sqlmodel import Session

from storage.errors import StorageError
from storage.models import Audience, Direction, Identity, ItemKind, L0Item, Person

TRUST_LEVELS = tuple(Audience)  # a speaker's trust is the audience they belong to


@dataclass(frozen=True)
class Speaker:
    """A person as the core sees them: who they are and how far they are trusted."""

    person_id: int | None
    name: str
    trust: str


class PeopleDirectory:
    """Reads and changes people and identities; the owner is never created or demoted here."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def by_identity(self, twin_id: int, platform: str, external_id: str) -> Speaker | None:
        """The person who holds this platform account, if the twin has seen it."""
        query = (
            select(Person)
            .join(Identity, Identity.person_id == Person.id)
            .where(Identity.twin_id == twin_id, Identity.platform == platform, Identity.external_id == external_id)
        )
        with Session(self.engine) as session:
            person = session.scalars(query).first()
            return _speaker(person) if person else None

    def name_account(self, twin_id: int, platform: str, external_id: str, name: str) -> None:
        """A display name learnt after the account was stored under its id (a lookup that came later): the
        account takes it, and so does its person while the person is still called by that id."""
        where = (Identity.twin_id == twin_id, Identity.platform == platform, Identity.external_id == external_id)
        with Session(self.engine) as session:
            identity = session.scalars(select(Identity).where(*where)).first()
            if identity is None:
                return
            identity.display_name = name[:200]
            session.execute(update(Person).where(Person.id == identity.person_id, Person.display_name == external_id)
                            .values(display_name=name[:200]))
            session.add(identity)
            session.commit()

    def find(self, twin_id: int, name_or_id: str) -> Speaker | None:
        """The one person matching (see `matches`), or None when none or several do."""
        found = self.matches(twin_id, name_or_id)
        return found[0] if len(found) == 1 else None

    def matches(self, twin_id: int, name_or_id: str) -> list[Speaker]:
        """People by id, 'platform:account', display name or account id (names case-insensitive)."""
        with Session(self.engine) as session:
            if name_or_id.isdigit():
                person = session.get(Person, int(name_or_id))
                if person and person.twin_id == twin_id:
                    return [_speaker(person)]
            platform, _, account = name_or_id.partition(":")
            if account:
                exact = self.by_identity(twin_id, platform, account)
                if exact is not None:
                    return [exact]
            handle = name_or_id.lstrip("@").lower()
            query = (
                select(Person)
                .outerjoin(Identity, Identity.person_id == Person.id)
                .where(Person.twin_id == twin_id)
                .where(or_(Person.display_name.ilike(handle), Identity.external_id.ilike(handle),
                           Identity.display_name.ilike(handle)))
                .order_by(Person.id)
                .distinct()
            )
            return [_speaker(person) for person in session.scalars(query)]

    def add(self, twin_id: int, name: str, trust: str, platform: str, external_id: str) -> Speaker:
        """A new person with one account (or the account's existing holder, with the trust given)."""
        found = self.by_identity(twin_id, platform, external_id)
        if found is not None and found.person_id is not None:
            return found if found.trust == "owner" else self.set_trust(twin_id, found.person_id, trust)
        if trust not in ("contact", "stranger"):
            raise StorageError(f"trust must be 'contact' or 'stranger', got {trust!r}")
        with Session(self.engine, expire_on_commit=False) as session:
            person = Person(twin_id=twin_id, display_name=name, trust=trust)
            session.add(person)
            session.flush()
            session.add(Identity(twin_id=twin_id, person_id=person.id, platform=platform, external_id=external_id,
                                 display_name=name))
            session.commit()
            return _speaker(person)

    def set_trust(self, twin_id: int, person_id: int, trust: str) -> Speaker:
        """Make a person a contact or a stranger."""
        if trust not in ("contact", "stranger"):
            raise StorageError(f"trust must be 'contact' or 'stranger', got {trust!r}")
        with Session(self.engine, expire_on_commit=False) as session:
            person = session.get(Person, person_id)
            if person is None or person.twin_id != twin_id:
                raise StorageError(f"no person with id {person_id}")
            if person.is_owner:
                raise StorageError("the owner's trust cannot be changed")
            person.trust = trust
            session.add(person)
            session.commit()
            return _speaker(person)

    def link(self, twin_id: int, person_id: int, platform: str, external_id: str) -> Speaker:
        """Give a person this platform account (moving it from whoever held it: that one is merged in if left
        with no other account)."""
        with Session(self.engine, expire_on_commit=False) as session:
            person = self._person(session, twin_id, person_id)
            query = select(Identity).where(Identity.twin_id == twin_id, Identity.platform == platform,
                                           Identity.external_id == external_id)
            identity = session.scalars(query).first()
            if identity is None:
                session.add(Identity(twin_id=twin_id, person_id=person_id, platform=platform,
                                     external_id=external_id, display_name=person.display_name))
                session.commit()
                return _speaker(person)
            previous = identity.person_id
        if previous != person_id:
            self.merge(twin_id, person_id, previous)
        return self.find(twin_id, str(person_id)) or _speaker(person)

    def claim_for_owner(self, twin_id: int, platform: str, external_id: str, name: str | None = None) -> list[int]:
        """The owner's own account: it becomes the owner's, and so does every message already stored from it
        (outbound, the owner's words), under each id it is known by; returns the ids of the messages that moved."""
        moved = self._claim(twin_id, platform, external_id, name, create=True)
        for alias in account_aliases(platform, external_id):
            moved += self._claim(twin_id, platform, alias, name, create=False)
        return sorted(moved)

    def _claim(self, twin_id: int, platform: str, external_id: str, name: str | None, create: bool) -> list[int]:
        with Session(self.engine, expire_on_commit=False) as session:
            owner = session.scalars(select(Person).where(Person.twin_id == twin_id, Person.is_owner)).one()
            query = select(Identity).where(Identity.twin_id == twin_id, Identity.platform == platform,
                                           Identity.external_id == external_id)
            identity = session.scalars(query).first()
            if identity is None:
                if create:
                    session.add(Identity(twin_id=twin_id, person_id=owner.id, platform=platform,
                                         external_id=external_id, display_name=name or owner.display_name))
                    session.commit()
                return []
            holder = identity.person_id
            moved = list(session.scalars(select(L0Item.id).where(
                L0Item.twin_id == twin_id, L0Item.sender_id == holder, L0Item.kind == ItemKind.message,
                L0Item.direction != Direction.outbound)))
        if holder != owner.id:
            self.merge(twin_id, owner.id, holder)
        elif moved:  # the account was the owner's already, its messages not yet marked as theirs
            with Session(self.engine) as session:
                session.execute(update(L0Item).where(L0Item.id.in_(moved)).values(direction=Direction.outbound))
                session.commit()
        return moved

    def merge(self, twin_id: int, keep_id: int, other_id: int) -> Speaker:
        """One person seen under two names: the other's accounts and messages move to `keep`, the other goes."""
        if keep_id == other_id:
            raise StorageError("a person cannot be merged with themself")
        with Session(self.engine, expire_on_commit=False) as session:
            keep, other = self._person(session, twin_id, keep_id), self._person(session, twin_id, other_id)
            if other.is_owner:
                raise StorageError(f"merge {other.display_name} the other way round: the owner is kept")
            if TRUST_LEVELS.index(other.trust) < TRUST_LEVELS.index(keep.trust):
                keep.trust = other.trust  # the merged person is trusted as the more trusted of the two was
            moved = {"sender_id": keep_id}
            if keep.is_owner:
                moved["direction"] = Direction.outbound
            session.execute(update(Identity).where(Identity.person_id == other_id).values(person_id=keep_id))
            session.execute(update(L0Item).where(L0Item.sender_id == other_id).values(**moved))
            session.delete(other)
            session.add(keep)
            session.commit()
            return _speaker(keep)

    @staticmethod
    def _person(session: Session, twin_id: int, person_id: int) -> Person:
        person = session.get(Person, person_id)
        if person is None or person.twin_id != twin_id:
            raise StorageError(f"no person with id {person_id}")
        return person

    def all(self, twin_id: int) -> list[tuple[Speaker, list[str]]]:
        """Every person with their accounts as 'platform:id'."""
        with Session(self.engine) as session:
            people = session.scalars(select(Person).where(Person.twin_id == twin_id).order_by(Person.id)).all()
            identities = session.scalars(select(Identity).where(Identity.twin_id == twin_id)).all()
            accounts: dict[int, list[str]] = {}
            for identity in identities:
                accounts.setdefault(identity.person_id, []).append(f"{identity.platform}:{identity.external_id}")
            return [(_speaker(person), sorted(accounts.get(person.id, []))) for person in people]


def account_aliases(platform: str, external_id: str) -> list[str]:
    """Other ids of the same account: a Telegram export writes `user123` for the Bot API's `123`."""
    if platform != "telegram":
        return []
    if external_id.isdigit():
        return [f"user{external_id}"]
    if external_id.startswith("user") and external_id[4:].isdigit():
        return [external_id[4:]]
    return []


def _speaker(person: Person) -> Speaker:
    return Speaker(person_id=person.id, name=person.display_name, trust="owner" if person.is_owner else person.trust)
