"""Exactly one answer per message across crashes: the ledger says what was received, answered, delivered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

from core.messages import InboundMessage, Mode, Reply
from storage.deliveries import DELIVERED, SKIPPED, UNFINISHED, DeliveryLedger
from storage.memory import MemoryStore
from storage.models import L0Item

RECOVERY_WINDOW = timedelta(days=1)  # older unanswered messages are left alone: an answer days late confuses


class DeliveryHooks(Protocol):
    """What an adapter tells the core on arrival and after sending, and asks it at start."""

    async def accept(self, message: InboundMessage) -> None: ...

    async def delivered(self, message: InboundMessage) -> None: ...

    async def unfinished(self, platform: str) -> list[InboundMessage]: ...


class Deliveries:
    """The pipeline's view of the ledger for one twin."""

    def __init__(self, ledger: DeliveryLedger, store: MemoryStore, twin_id: int) -> None:
        self.ledger = ledger
        self.store = store
        self.twin_id = twin_id

    async def received(self, message: InboundMessage) -> None:
        """A live message is in L0 and waits for its answer."""
        await asyncio.to_thread(
            self.ledger.received, self.twin_id, message.platform, message.message_id, message.chat_id,
            message.sender_id, message.sender_name, message.to_owner,
        )

    async def delivered(self, message: InboundMessage) -> None:
        """The platform accepted the reply."""
        await self._move(message, DELIVERED)

    async def skipped(self, message: InboundMessage) -> None:
        """Deliberately not answered (sent to the owner's own account while autoreply is off)."""
        await self._move(message, SKIPPED)

    async def awaits_delivery(self, message: InboundMessage) -> bool:
        """For a message whose reply is logged: was that reply never delivered (so it should go out again)?"""
        state = await asyncio.to_thread(self.ledger.state, self.twin_id, message.platform, message.message_id)
        return state in UNFINISHED  # answered = the L0 reply row; the ledger only learns of delivery

    async def unfinished(self, platform: str, window: timedelta = RECOVERY_WINDOW) -> list[InboundMessage]:
        """Messages a crash interrupted (received and not answered, or answered and not delivered), in the order
        they arrived: their L0 rows' (a chat's are written in arrival order; ledger rows are written alongside the
        answers, in any order, and a platform's timestamps tie within a second)."""
        since = datetime.now(UTC) - window
        rows = await asyncio.to_thread(self.ledger.unfinished, self.twin_id, platform, since)
        messages: list[tuple[int, InboundMessage]] = []
        for row in rows:
            item = await asyncio.to_thread(self.store.by_source, self.twin_id, platform, row.message_id)
            if item is not None:  # forgotten since: nothing to answer
                messages.append((item.id, InboundMessage(
                    platform=platform, message_id=row.message_id, chat_id=row.chat_id, sender_id=row.sender_id,
                    sender_name=row.sender_name, text=item.text, sent_at=item.occurred_at,
                    chat_title=item.chat_title, raw=item.raw, to_owner=row.to_owner,
                )))
        return [message for _, message in sorted(messages, key=lambda pair: pair[0])]

    async def _move(self, message: InboundMessage, state: str) -> None:
        await asyncio.to_thread(self.ledger.move, self.twin_id, message.platform, message.message_id, state)


def stored_reply(message: InboundMessage, row: L0Item) -> Reply:
    """The reply logged for a message, to send again."""
    raw = row.raw or {}
    return Reply(
        chat_id=message.chat_id, text=row.text, mode=Mode(raw.get("mode", Mode.assistant)),
        audience=raw.get("audience", "stranger"), in_reply_to=message.message_id, model=raw.get("model"),
        context_ids=tuple(raw.get("context_ids", ())),
        resent=True, draft=bool(raw.get("draft")),  # a draft resent stays a draft (the adapter asks if it is pending)
    )
