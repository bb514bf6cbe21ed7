"""What importers and adapters hand to the store: one new L0 item, before it has an id."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.models import Audience, Direction, ItemKind, Visibility

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
