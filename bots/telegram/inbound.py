"""Telegram updates (Bot API JSON) translated into core messages: pure functions over the update dict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.messages import InboundMessage, clean_inbound

PLATFORM = "telegram"
GROUP_CHATS = ("group", "supergroup")
Update = dict[str, Any]
Translate = Callable[[dict[str, Any], str], InboundMessage | None]


@dataclass(frozen=True)
class ReplyTarget:
    """Where the answer to an update goes."""

    chat_id: int
    business_connection_id: str | None = None  # answer as the owner, through their business account
    reply_to: int | None = None  # in groups the answer quotes the message it answers
    thread_id: int | None = None  # forum topic


@dataclass(frozen=True)
class BusinessConnection:
    """The owner's Telegram Business account connected to the bot (or disconnected)."""

    id: str
    user_id: str
    enabled: bool
    can_reply: bool


def update_kind(update: Update) -> str | None:
    """The update's one payload field ('message', 'business_message', ...)."""
    return next((key for key in update if key != "update_id"), None)


def to_inbound(update: Update, bot_username: str) -> InboundMessage | None:
    """The core message for an update, or None when the twin should not see it."""
    kind = update_kind(update)
    translate = UPDATE_KINDS.get(kind or "", _ignored)
    return translate(update[kind], bot_username) if kind else None


def _from_message(message: dict[str, Any], bot_username: str) -> InboundMessage | None:
    """A message to the bot: every private one; in groups only what is addressed to the bot."""
    text = message_text(message)
    chat = message["chat"]
    if text is None or _from_a_bot(message):
        return None
    if chat["type"] in GROUP_CHATS:
        text = addressed_text(message, text, bot_username)
    elif chat["type"] != "private":
        return None
    if text is None:
        return None
    text = "/help" if _is_start(text) else text
    return _inbound(message, text, chat_id=str(chat["id"]), message_id=f"{chat['id']}:{message['message_id']}")


def _is_start(text: str) -> bool:
    """Telegram's /start, sent when someone opens the bot: the twin introduces its commands."""
    return text.split(" ", 1)[0].split("@", 1)[0].lower() == "/start"


def _from_business_message(message: dict[str, Any], _bot_username: str) -> InboundMessage | None:
    """A message in one of the owner's own private chats, reaching the bot through Telegram Business."""
    text = message_text(message)
    if text is None or _from_a_bot(message) or message.get("sender_business_bot"):
        return None  # the bot's own answers come back with sender_business_bot set
    chat_id = message["chat"]["id"]
    # The owner's chat with a person has the same id as the bot's chat with them: keep the two apart.
    return _inbound(message, text, chat_id=f"business:{chat_id}",
                    message_id=f"business:{chat_id}:{message['message_id']}", to_owner=True)


def _ignored(_payload: dict[str, Any], _bot_username: str) -> None:
    return None


UPDATE_KINDS: dict[str, Translate] = {
    "message": _from_message,
    "business_message": _from_business_message,
    # An edit does not ask again: it revises the stored original in place (see to_edit), unanswered.
    "edited_message": _ignored,
    "edited_business_message": _ignored,
    "channel_post": _ignored,
    "edited_channel_post": _ignored,
    "business_connection": _ignored,  # state, not a message: see business_connection_of
    "deleted_business_messages": _ignored,
}


@dataclass(frozen=True)
class EditedMessage:
    """A message edited after it was sent: the new text for the item stored under the same message id."""

    message: InboundMessage  # message_id, chat_id and sender as the original's; text and raw the edited ones
    edited_at: datetime


def to_edit(update: Update, bot_username: str) -> EditedMessage | None:
    """The edit an `edited_message` / `edited_business_message` update carries, or None for other updates and
    for edits the twin would not have stored the original of (a bot's, a channel's, one without words)."""
    kind = update_kind(update)
    translate = EDIT_KINDS.get(kind or "")
    payload = update[kind] if kind else None
    message = translate(payload, bot_username) if translate and payload else None
    if message is None:
        return None
    edited_at = datetime.fromtimestamp(payload.get("edit_date") or payload["date"], UTC)
    return EditedMessage(message=message, edited_at=edited_at)


def _from_edited_message(message: dict[str, Any], bot_username: str) -> InboundMessage | None:
    """Like _from_message, except that a group message needs no address: only one stored before is revised, and
    an edit that drops the @mention keeps the message the bot's."""
    text = message_text(message)
    chat = message["chat"]
    if text is None or _from_a_bot(message) or chat["type"] not in ("private", *GROUP_CHATS):
        return None
    if chat["type"] in GROUP_CHATS:
        text = addressed_text(message, text, bot_username) or text
    text = "/help" if _is_start(text) else text
    return _inbound(message, text, chat_id=str(chat["id"]), message_id=f"{chat['id']}:{message['message_id']}")


EDIT_KINDS: dict[str, Translate] = {
    "edited_message": _from_edited_message,
    "edited_business_message": _from_business_message,  # the same ids and checks as the original
}


def message_text(message: dict[str, Any]) -> str | None:
    """The text, or a media caption; None for stickers, voice and other messages without words."""
    text = message.get("text", message.get("caption"))
    return text if isinstance(text, str) else None


def addressed_text(message: dict[str, Any], text: str, bot_username: str) -> str | None:
    """A group message's text for the bot (its @mention cut out), or None when it is not for the bot."""
    bot = bot_username.lower().lstrip("@")
    for entity in _entities(message):
        part = utf16_slice(text, entity["offset"], entity["length"])
        if entity["type"] == "bot_command" and entity["offset"] == 0:
            _, at, target = part.partition("@")
            return text if not at or target.lower() == bot else None  # bare /commands go to every bot
        if entity["type"] == "mention" and part.lower() == f"@{bot}":
            return _without(text, entity["offset"], entity["length"])
    replied = (message.get("reply_to_message") or {}).get("from") or {}
    if replied.get("is_bot") and str(replied.get("username", "")).lower() == bot:
        return text
    return None


def utf16_slice(text: str, offset: int, length: int) -> str:
    """The part of `text` an entity covers: Telegram counts offsets in UTF-16 code units."""
    data = text.encode("utf-16-le")
    return data[offset * 2:(offset + length) * 2].decode("utf-16-le")


def _without(text: str, offset: int, length: int) -> str:
    """The text with the entity cut out: '@bot, what is up?' -> 'what is up?'."""
    data = text.encode("utf-16-le")
    before = data[:offset * 2].decode("utf-16-le").rstrip()
    after = data[(offset + length) * 2:].decode("utf-16-le").lstrip()
    if not before or not after:
        return before or after.lstrip(",: ")
    return before + ("" if after[0] in ",.;:!?" else " ") + after


def _entities(message: dict[str, Any]) -> list[dict[str, Any]]:
    return list(message.get("entities") or message.get("caption_entities") or [])


def _from_a_bot(message: dict[str, Any]) -> bool:
    return bool((message.get("from") or {}).get("is_bot"))


def _inbound(message: dict[str, Any], text: str, chat_id: str, message_id: str, to_owner: bool = False
             ) -> InboundMessage:
    sender = message.get("from") or {}
    return clean_inbound(InboundMessage(
        platform=PLATFORM, message_id=message_id, chat_id=chat_id, sender_id=str(sender.get("id", "")),
        sender_name=person_name(sender), text=text, sent_at=datetime.fromtimestamp(message["date"], UTC),
        chat_title=message["chat"].get("title") or person_name(message["chat"]), raw=message, to_owner=to_owner,
    ))


def person_name(user: dict[str, Any]) -> str:
    """'First Last', else the @username, else the id."""
    full = " ".join(part for part in (user.get("first_name"), user.get("last_name")) if part)
    return full or (f"@{user['username']}" if user.get("username") else str(user.get("id", "unknown")))


def reply_target(update: Update) -> ReplyTarget | None:
    """Where to answer the update's message, or None for updates that are not messages."""
    kind = update_kind(update)
    if kind not in ("message", "business_message"):
        return None
    message = update[kind]
    in_group = message["chat"]["type"] in GROUP_CHATS
    return ReplyTarget(
        chat_id=int(message["chat"]["id"]), business_connection_id=message.get("business_connection_id"),
        reply_to=message["message_id"] if in_group else None,
        thread_id=message.get("message_thread_id") if message.get("is_topic_message") else None,
    )


def business_connection_of(update: Update) -> BusinessConnection | None:
    """The connection a `business_connection` update announces, else None."""
    payload = update.get("business_connection")
    if not payload:
        return None
    rights = payload.get("rights") or {}
    can_reply = bool(rights.get("can_reply", payload.get("can_reply", False)))
    return BusinessConnection(id=str(payload["id"]), user_id=str(payload["user"]["id"]),
                              enabled=bool(payload.get("is_enabled")), can_reply=can_reply)
