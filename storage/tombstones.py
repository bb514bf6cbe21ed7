"""Tombstones: salted hashes of what was forgotten, so a later import cannot bring it back. Never the text."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String, UniqueConstraint, select
from sqlmodel import Field, Session, SQLModel

from storage.models import UTCDateTime, utcnow

MIN_TEXT_CHARS = 16  # shorter texts ("ok", "thanks!") are too common to block by content


class TwinSalt(SQLModel, table=True):
    """A random salt per twin: tombstone hashes cannot be matched across twins or guessed from a word list."""

    __tablename__ = "twin_salts"

    twin_id: int = Field(sa_column=Column(Integer, ForeignKey("twins.id"), primary_key=True))
    salt: str = Field(max_length=64)


class Tombstone(SQLModel, table=True):
    """One forgotten thing: the hash of a source id ('source') or of a normalized text ('text')."""

    __tablename__ = "tombstones"
    __table_args__ = (UniqueConstraint("twin_id", "digest", name="uq_tombstone_digest"),)

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)
    kind: str = Field(sa_type=String(8))
    digest: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def normalized(text: str) -> str:
    """Text as it is compared: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def source_key(source: str, source_id: str) -> str:
    return f"{source}\x00{source_id}"


class Tombstones:
    """Writes and checks tombstones inside the caller's session (so they commit with the deletion)."""

    def salt(self, session: Session, twin_id: int) -> bytes:
        """The twin's salt, created on first use."""
        row = session.get(TwinSalt, twin_id)
        if row is None:
            row = TwinSalt(twin_id=twin_id, salt=secrets.token_hex(32))
            session.add(row)
            session.flush()
        return bytes.fromhex(row.salt)

    @staticmethod
    def digest(salt: bytes, kind: str, value: str) -> str:
        return hashlib.sha256(salt + kind.encode() + b"\x00" + value.encode("utf-8", "replace")).hexdigest()

    def bury(self, session: Session, twin_id: int, items: Iterable[tuple[str, str, str]]) -> int:
        """Tombstones for (source, source_id, text) triples; returns how many are new."""
        salt = self.salt(session, twin_id)
        digests = {}
        for source, source_id, text in items:
            digests[self.digest(salt, "source", source_key(source, source_id))] = "source"
            if len(normalized(text)) >= MIN_TEXT_CHARS:
                digests[self.digest(salt, "text", normalized(text))] = "text"
        known = self._existing(session, twin_id, list(digests))
        for digest, kind in digests.items():
            if digest not in known:
                session.add(Tombstone(twin_id=twin_id, kind=kind, digest=digest))
        return len(set(digests) - known)

    def buried(
        self, session: Session, twin_id: int, items: Sequence[tuple[str, str, str]], match_text: bool
    ) -> list[bool]:
        """For each (source, source_id, text): was it forgotten? Text matches only when match_text (imports)."""
        if not items or session.get(TwinSalt, twin_id) is None:
            return [False] * len(items)
        salt = self.salt(session, twin_id)
        keys = []
        for source, source_id, text in items:
            mine = [self.digest(salt, "source", source_key(source, source_id))]
            if match_text and len(normalized(text)) >= MIN_TEXT_CHARS:
                mine.append(self.digest(salt, "text", normalized(text)))
            keys.append(mine)
        known = self._existing(session, twin_id, [d for mine in keys for d in mine])
        return [any(d in known for d in mine) for mine in keys]

    @staticmethod
    def _existing(session: Session, twin_id: int, digests: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            query = select(Tombstone.digest).where(Tombstone.twin_id == twin_id, Tombstone.digest.in_(chunk))
            found.update(session.scalars(query))
        return found

    def count(self, session: Session, twin_id: int) -> int:
        """Tombstones of one twin."""
        return len(session.scalars(select(Tombstone.id).where(Tombstone.twin_id == twin_id)).all())
