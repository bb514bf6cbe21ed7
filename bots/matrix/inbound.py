"""Matrix room events (as the client-server API delivers them, decrypted) translated into core messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.messages import InboundMessage, clean_inbound

PLATFORM = "matrix"
DIRECT_MEMBERS = 2  # a room of two (the twin and one person) is a DM: every message in it is for the twin
ANSWERED_MSGTYPES = ("m.text", "m.emote")  # m.notice is what bots send: answering it would start a bot loop
Event = dict[str, Any]


@dataclass(frozen=True)
class RoomContext:
    """What the event alone does not say: the room's size and name, the twin's id and names as shown in it."""

    room_id: str
    members: int
    bot_user_id: str
    bot_name: str | None = None
    sender_name: str | None = None
    room_name: str | None = None

    @property
    def is_direct(self) -> bool:
        """The twin and one other person."""
        return self.members <= DIRECT_MEMBERS


Translate = Callable[[Event, RoomContext], InboundMessage | None]


def to_inbound(event: Event, room: RoomContext) -> InboundMessage | None:
    """The core message for a room event, or None when the twin should not see it."""
    translate = EVENT_KINDS.get(str(event.get("type")), _ignored)
    return translate(event, room)


def _from_message(event: Event, room: RoomContext) -> InboundMessage | None:
    """A person's new text message: everything in a DM, a mention of the twin in a group room."""
    content = event.get("content") or {}
    if not _from_a_person(event, room) or content.get("msgtype") not in ANSWERED_MSGTYPES or _is_edit(content):
        return None
    text = str(content.get("body") or "")
    if room.is_direct:
        return _inbound(event, room, text)
    if not mentions(content, room):
        return None
    return _inbound(event, room, without_mention(text, room))


def _ignored(_event: Event, _room: RoomContext) -> None:
    return None


EVENT_KINDS: dict[str, Translate] = {
    "m.room.message": _from_message,
    "m.room.encrypted": _ignored,  # still encrypted: the keys never arrived (the adapter logs it)
    "m.room.member": _ignored,  # invites are decided by the adapter from the invite itself
    "m.reaction": _ignored,
    "m.room.redaction": _ignored,
    "m.sticker": _ignored,
}


def _from_a_person(event: Event, room: RoomContext) -> bool:
    """Someone else's event with an id and a sender: never the twin's own."""
    return bool(event.get("event_id")) and bool(event.get("sender")) and event.get("sender") != room.bot_user_id


def _is_edit(content: dict[str, Any]) -> bool:
    """An edit of an earlier message ('* new text'): the original was answered already."""
    relation = content.get("m.relates_to") or {}
    return relation.get("rel_type") == "m.replace" or "m.new_content" in content


def mentions(content: dict[str, Any], room: RoomContext) -> bool:
    """Whether the message mentions the twin: intentional mentions when the sender's client sets them, else
    the legacy signs (the user id, a matrix.to pill, or the display name leading the body)."""
    if "m.mentions" in content:  # the spec: with m.mentions present, the body must not be searched
        return room.bot_user_id in ((content.get("m.mentions") or {}).get("user_ids") or [])
    body, formatted = str(content.get("body") or ""), str(content.get("formatted_body") or "")
    return (room.bot_user_id in body or f"matrix.to/#/{room.bot_user_id}" in formatted
            or bool(room.bot_name and _leading_name(room.bot_name).match(body)))


def without_mention(text: str, room: RoomContext) -> str:
    """'Twin: what is up?' or '@twin:example.org what is up?' -> 'what is up?'."""
    cut = text.replace(room.bot_user_id, " ")
    if room.bot_name:
        cut = _leading_name(room.bot_name).sub(" ", cut.lstrip(), count=1)
    return re.sub(r"\s+", " ", cut).strip(" ,:")


def _leading_name(name: str) -> re.Pattern[str]:
    """The display name at the start of a body, as clients write a pill in plain text ('Twin: ...')."""
    return re.compile(rf"^\s*{re.escape(name)}\s*[:,]?(?=\s|$)", re.IGNORECASE)


def _inbound(event: Event, room: RoomContext, text: str) -> InboundMessage:
    sender = str(event["sender"])
    content = event.get("content") or {}
    if content.get("msgtype") == "m.emote":
        text = f"* {room.sender_name or sender} {text}"
    return clean_inbound(InboundMessage(
        platform=PLATFORM, message_id=str(event["event_id"]), chat_id=room.room_id, sender_id=sender,
        sender_name=room.sender_name or sender, text=text, sent_at=_sent_at(event),
        chat_title=None if room.is_direct else room.room_name,
        raw={"event_id": event["event_id"], "room_id": room.room_id, "type": event.get("type"),
             "content": content, "direct": room.is_direct},
    ))


def _sent_at(event: Event) -> datetime:
    """origin_server_ts is milliseconds since the epoch; now when a server left it out."""
    stamp = event.get("origin_server_ts")
    return datetime.fromtimestamp(stamp / 1000, UTC) if isinstance(stamp, int | float) else datetime.now(UTC)


def invite_accepted(inviter: str, allowed: frozenset[str]) -> bool:
    """Whether an invite from this user is joined (only allowed users' are; the rest are rejected)."""
    return inviter in allowed
