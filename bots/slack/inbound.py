"""Slack events (Events API envelopes) and slash commands translated into core messages: pure functions."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.messages import InboundMessage, clean_inbound

PLATFORM = "slack"
DIRECT = ("im",)  # a direct message between two people (the bot being one of them, or the owner)
ANSWERED_SUBTYPES = (None, "file_share", "thread_broadcast")  # new words; edits, deletions, joins are not
MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
Envelope = dict[str, Any]
Translate = Callable[[Envelope, dict[str, Any], str, frozenset[str]], InboundMessage | None]


@dataclass(frozen=True)
class ReplyTarget:
    """Where the answer to a message goes: a channel (or a user id: the bot's DM with them), maybe a thread."""

    channel: str
    thread_ts: str | None = None


def to_inbound(envelope: Envelope, bot_user_id: str, owner_user_ids: frozenset[str] = frozenset()
               ) -> InboundMessage | None:
    """The core message for an `event_callback` envelope, or None when the twin should not see it."""
    event = envelope.get("event") or {}
    translate = EVENT_KINDS.get(str(event.get("type")), _ignored)
    return translate(envelope, event, bot_user_id, owner_user_ids)


def _from_message(envelope: Envelope, event: dict[str, Any], bot_user_id: str, owners: frozenset[str]
                  ) -> InboundMessage | None:
    """A DM to the bot; a DM to the owner or a channel message naming the owner (answered while autoreply is on)."""
    if not _from_a_person(event, bot_user_id):
        return None
    text = str(event.get("text") or "")
    if event.get("channel_type") in DIRECT:
        return _inbound(envelope, event, text, to_owner=_delivered_for_owner(envelope, owners))
    mentioned = set(MENTION.findall(text))
    if bot_user_id in mentioned or not mentioned & owners:
        return None  # the bot's mentions come as app_mention; other channel talk is not for the twin
    return _inbound(envelope, event, text, to_owner=True)


def _from_mention(envelope: Envelope, event: dict[str, Any], bot_user_id: str, _owners: frozenset[str]
                  ) -> InboundMessage | None:
    """Someone @-mentions the bot in a channel: the mention is cut out of the text."""
    if not _from_a_person(event, bot_user_id):
        return None
    return _inbound(envelope, event, without_mention(str(event.get("text") or ""), bot_user_id))


def _ignored(_envelope: Envelope, _event: dict[str, Any], _bot_user_id: str, _owners: frozenset[str]) -> None:
    return None


EVENT_KINDS: dict[str, Translate] = {
    "message": _from_message,
    "app_mention": _from_mention,
    "reaction_added": _ignored,
    "member_joined_channel": _ignored,
    "app_home_opened": _ignored,
}


def _from_a_person(event: dict[str, Any], bot_user_id: str) -> bool:
    """A person's new message: not a bot's (the twin's own included), not an edit, a deletion or a join."""
    return (event.get("subtype") in ANSWERED_SUBTYPES and not event.get("bot_id")
            and bool(event.get("user")) and event.get("user") != bot_user_id)


def _delivered_for_owner(envelope: Envelope, owners: frozenset[str]) -> bool:
    """A DM the owner received, delivered through the owner's user-token subscription (not to the bot)."""
    authorizations = envelope.get("authorizations") or []
    return any(not entry.get("is_bot") and entry.get("user_id") in owners for entry in authorizations)


def without_mention(text: str, user_id: str) -> str:
    """'<@UBOT> what is up?' -> 'what is up?'."""
    cut = re.sub(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>", " ", text)
    return re.sub(r"\s+", " ", cut).strip(" ,:")


def _inbound(envelope: Envelope, event: dict[str, Any], text: str, to_owner: bool = False) -> InboundMessage:
    channel, ts = str(event["channel"]), str(event["ts"])
    profile = event.get("user_profile") or {}
    return clean_inbound(InboundMessage(
        platform=PLATFORM, message_id=f"{channel}:{ts}", chat_id=channel, sender_id=str(event["user"]),
        sender_name=str(profile.get("real_name") or profile.get("display_name") or event["user"]), text=text,
        sent_at=datetime.fromtimestamp(float(ts), UTC), chat_title=None, to_owner=to_owner,
        raw={"event": event, "event_id": envelope.get("event_id"), "team_id": envelope.get("team_id")},
    ))


def reply_target(message: InboundMessage) -> ReplyTarget:
    """Channels: a thread under the message. DMs to the bot: the same DM. DMs to the owner: the bot's DM with them."""
    event = (message.raw or {}).get("event") or {}
    if event.get("channel_type") in DIRECT:
        channel = message.sender_id if message.to_owner else message.chat_id
        return ReplyTarget(channel=channel, thread_ts=event.get("thread_ts"))
    return ReplyTarget(channel=message.chat_id, thread_ts=event.get("thread_ts") or event.get("ts"))


def command_to_inbound(body: dict[str, Any]) -> InboundMessage:
    """`/twin remember X` -> the core's `/remember X`; a bare `/twin` asks for help."""
    words = str(body.get("text") or "").strip()
    return clean_inbound(InboundMessage(
        platform=PLATFORM, message_id=f"command:{body['trigger_id']}", chat_id=str(body["channel_id"]),
        sender_id=str(body["user_id"]), sender_name=str(body.get("user_name") or body["user_id"]),
        text=f"/{words}" if words else "/help", chat_title=body.get("channel_name"),
        raw={key: body.get(key) for key in ("command", "text", "channel_id", "team_id", "trigger_id")},
    ))
