"""The relational schema. Every row belongs to a twin, so one deployment can hold several owners."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite drops the offset; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Visibility(StrEnum):
    """Who may see an item: the owner only, the owner's contacts, or anyone."""

    private = "private"
    contacts = "contacts"
    public = "public"


class Audience(StrEnum):
    """Who an answer, a prompt or an adapter is for: the owner, a known contact, or a stranger (most trusted first).
    Each sees the visibilities in storage.items.AUDIENCE_VISIBILITY."""

    owner = "owner"
    contact = "contact"
    stranger = "stranger"


class Direction(StrEnum):
    """Whether the owner (or the twin for the owner) sent the item, or received it."""

    inbound = "in"
    outbound = "out"


class ItemKind(StrEnum):
    """What an L0 item is."""

    message = "message"
    document = "document"
    reply = "reply"  # written by the twin itself
    expert = "expert"  # a request relayed to an expert model, or its answer


class Twin(SQLModel, table=True):
    """One owner and everything the twin keeps for them."""

    __tablename__ = "twins"

    id: int | None = Field(default=None, primary_key=True)
    handle: str = Field(unique=True, index=True, max_length=64)
    display_name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Person(SQLModel, table=True):
    """Someone the twin knows of: the owner, a contact, or a stranger; one person across platforms."""

    __tablename__ = "people"

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)
    display_name: str = Field(max_length=200)
    is_owner: bool = False
    trust: str = Field(default="stranger", max_length=16, description="owner, contact or stranger")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Identity(SQLModel, table=True):
    """A person's account on one platform (or in one import source)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("twin_id", "platform", "external_id", name="uq_identity_external"),)

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)
    person_id: int = Field(foreign_key="people.id", index=True)
    platform: str = Field(max_length=32)
    external_id: str = Field(max_length=255)
    display_name: str | None = Field(default=None, max_length=200)


class L0Item(SQLModel, table=True):
    """Raw memory: one message or document chunk, verbatim, with where and when it came from."""

    __tablename__ = "l0_items"
    __table_args__ = (
        UniqueConstraint("twin_id", "source", "source_id", name="uq_l0_source"),
        Index("ix_l0_twin_chat_time", "twin_id", "chat", "occurred_at"),
        Index("ix_l0_twin_time", "twin_id", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id")
    source: str = Field(max_length=32, description="telegram, slack, jsonl, notes, console, ...")
    source_id: str = Field(max_length=512, description="Unique within the source: redelivery adds nothing.")
    kind: ItemKind = Field(default=ItemKind.message, sa_type=String(16))
    chat: str = Field(max_length=255)
    chat_title: str | None = Field(default=None, max_length=255)
    sender_id: int | None = Field(default=None, foreign_key="people.id", index=True)
    sender_name: str = Field(max_length=200)
    direction: Direction = Field(default=Direction.inbound, sa_type=String(4))
    visibility: Visibility = Field(default=Visibility.private, sa_type=String(16))
    text: str = Field(sa_column=Column(Text, nullable=False))
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    ingested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    raw: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


# -- L1: facts with provenance and time of validity, versioned profiles ------------------------------------


class FactOrigin(StrEnum):
    """How a fact came to be: extracted from L0 by the model, or stated by the owner (/remember)."""

    extracted = "extracted"
    owner = "owner"


class Fact(SQLModel, table=True):
    """One thing the twin knows about its owner, valid from `valid_from` until `valid_to` (None: still true)."""

    __tablename__ = "facts"
    __table_args__ = (Index("ix_facts_twin_valid_to", "twin_id", "valid_to"),)

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    visibility: Visibility = Field(default=Visibility.private, sa_type=String(16))
    visibility_by_owner: bool = Field(default=False, description="The owner set it: inference leaves it alone.")
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    origin: FactOrigin = Field(default=FactOrigin.extracted, sa_type=String(16))
    valid_from: datetime = Field(sa_type=UTCDateTime)
    valid_to: datetime | None = Field(default=None, sa_type=UTCDateTime)
    superseded_by: int | None = Field(default=None, foreign_key="facts.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FactSource(SQLModel, table=True):
    """Provenance: an L0 item a fact was drawn from (the link goes when either side is deleted)."""

    __tablename__ = "fact_sources"

    fact_id: int = Field(foreign_key="facts.id", primary_key=True, ondelete="CASCADE")
    l0_item_id: int = Field(foreign_key="l0_items.id", primary_key=True, index=True, ondelete="CASCADE")
    twin_id: int = Field(foreign_key="twins.id", index=True)


class ProfileVersion(SQLModel, table=True):
    """The bio and topics written for one audience, from what that audience may see; one version per refresh."""

    __tablename__ = "profile_versions"
    __table_args__ = (UniqueConstraint("twin_id", "version", "audience", name="uq_profile_version_audience"),)

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)
    version: int
    audience: str = Field(max_length=16, description="owner, contact or stranger")
    global_bio: str = Field(sa_column=Column(Text, nullable=False))
    status_bio: str = Field(sa_column=Column(Text, nullable=False))
    topics: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    sources: dict[str, list[int]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False),
        description="What it was written from: {'facts': [...], 'items': [...]} (for forgetting).",
    )
    active: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MemoryCursor(SQLModel, table=True):
    """How far a background job has read L0 (the last item id it processed), per twin."""

    __tablename__ = "memory_cursors"

    twin_id: int = Field(foreign_key="twins.id", primary_key=True)
    name: str = Field(max_length=32, primary_key=True)
    position: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PlatformState(SQLModel, table=True):
    """Small durable state of the twin and its adapters: the autoreply switch, Telegram Business connections."""

    __tablename__ = "platform_state"
    __table_args__ = (UniqueConstraint("twin_id", "platform", "key", name="uq_platform_state_key"),)

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)
    platform: str = Field(max_length=32, description="'twin' for twin-wide switches, else the platform's name")
    key: str = Field(max_length=255)
    value: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
