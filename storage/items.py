"""What importers and adapters hand to the store: one new L0 item, before it has an id."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from storage.models import Audience, Direction, ItemKind, Visibility
from storage.text import UNWRITABLE, encodable_text

AUDIENCE_VISIBILITY: dict[str, tuple[str, ...]] = {
    Audience.owner: (Visibility.private, Visibility.contacts, Visibility.public),
    Audience.contact: (Visibility.contacts, Visibility.public),
    Audience.stranger: (Visibility.public,),
}


@dataclass(frozen=True)
class NewItem:
    """A message or document chunk as it arrives; `source_id` is unique within `source`."""

    source: str
    source_id: str
    chat: str
    sender: str
    text: str
    occurred_at: datetime
    sender_id: str | None = None
    chat_title: str | None = None
    kind: ItemKind = ItemKind.message
    visibility: Visibility | None = None
    direction: Direction | None = None  # default: outbound when the sender is the owner
    raw: dict[str, Any] | None = field(default=None, compare=False)


def writable(item: NewItem) -> NewItem:
    """The item with what no encoding can write (lone surrogates, NUL) replaced in its words and names; its raw
    payload is made writable where JSON is written (storage.database)."""
    changed = {name: encodable_text(value) for name in ("sender", "text", "chat", "chat_title", "sender_id")
               if (value := getattr(item, name)) is not None and UNWRITABLE.search(value)}
    return replace(item, **changed) if changed else item


def reply_source_id(message_id: str) -> str:
    """The L0 source id of the twin's reply to a message: its existence means 'answered'."""
    return f"{message_id}:reply"
