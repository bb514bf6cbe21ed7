"""The delivery ledger: every live message from received to delivered (answered = its reply row in L0), so a
restart finishes what a crash interrupted, and nothing is answered twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, String, UniqueConstraint, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel

from storage.models import UTCDateTime, utcnow

RECEIVED, ANSWERED, DELIVERED, SKIPPED = "received", "answered", "delivered", "skipped"
UNFINISHED = (RECEIVED, ANSWERED)  # 'answered' is no longer written (the L0 reply row says it); kept for old rows


class Delivery(SQLModel, table=True):
    """One live message's progress; the text itself stays in L0 only."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("twin_id", "platform", "message_id", name="uq_delivery_message"),)

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)
    platform: str = Field(max_length=32)
    message_id: str = Field(max_length=512)
    chat_id: str = Field(max_length=255)
    sender_id: str = Field(max_length=255)
    sender_name: str = Field(max_length=200)
    to_owner: bool = False
    state: str = Field(default=RECEIVED, sa_type=String(16))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeliveryLedger:
    """Reads and moves deliveries; each call is its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def received(
        self, twin_id: int, platform: str, message_id: str, chat_id: str, sender_id: str, sender_name: str,
        to_owner: bool,
    ) -> None:
        """Record a new live message (a second call for the same message changes nothing)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        row = dict(twin_id=twin_id, platform=platform, message_id=message_id, chat_id=chat_id,
                   sender_id=sender_id, sender_name=sender_name[:200], to_owner=to_owner, state=RECEIVED,
                   received_at=utcnow(), updated_at=utcnow())
        statement = dialect.insert(Delivery).values(**row).on_conflict_do_nothing(
            index_elements=["twin_id", "platform", "message_id"])
        with Session(self.engine) as session:
            session.execute(statement)
            session.commit()

    def move(self, twin_id: int, platform: str, message_id: str, state: str) -> None:
        """Set a message's state."""
        statement = (
            update(Delivery)
            .where(Delivery.twin_id == twin_id, Delivery.platform == platform, Delivery.message_id == message_id)
            .values(state=state, updated_at=utcnow())
        )
        with Session(self.engine) as session:
            session.execute(statement)
            session.commit()

    def state(self, twin_id: int, platform: str, message_id: str) -> str | None:
        """Where a message is, or None for one the ledger never saw (stored before it existed)."""
        query = select(Delivery.state).where(
            Delivery.twin_id == twin_id, Delivery.platform == platform, Delivery.message_id == message_id)
        with Session(self.engine) as session:
            return session.scalars(query).first()

    def unfinished(self, twin_id: int, platform: str, since: datetime) -> list[Delivery]:
        """Messages received since then that were not answered, or answered and not delivered; oldest first."""
        query = (
            select(Delivery)
            .where(Delivery.twin_id == twin_id, Delivery.platform == platform, Delivery.state.in_(UNFINISHED),
                   Delivery.received_at >= since)
            .order_by(Delivery.id)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))
