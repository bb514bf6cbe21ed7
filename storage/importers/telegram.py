"""Telegram Desktop's JSON export (`result.json`): one chat, or the full export of every chat."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.errors import ImportFormatError
from storage.importers.base import Entry, Rejected, as_utc
from storage.items import NewItem

EXPORT_FILE = "result.json"
PEEK_CHARS = 64 * 1024  # the top-level keys come before the first chat's messages
OWNER = re.compile(r'"personal_information"\s*:\s*\{[^}]*?"user_id"\s*:\s*(\d+)')
TOP_LEVEL_MARKERS = ('"messages"', '"personal_information"', '"chats"')
CHAT_SECTIONS = ("chats", "left_chats")  # a full export's sections, each {"about": ..., "list": [chat, ...]}
TEXT_FIELDS = ("text", "caption")  # where a message's words are, in order; media captions live in "text"


@dataclass(frozen=True)
class Chat:
    """The chat a message belongs to."""

    id: str
    title: str | None


class TelegramImporter:
    """Reads a Telegram Desktop JSON export: `result.json`, or the folder holding it."""

    name = "telegram"

    def detect(self, path: Path) -> bool:
        file = export_file(path)
        if file.name != EXPORT_FILE or not file.is_file():
            return False
        try:
            with file.open(encoding="utf-8", errors="replace") as handle:
                head = handle.read(PEEK_CHARS)
        except OSError:
            return False
        return head.lstrip().startswith("{") and any(marker in head for marker in TOP_LEVEL_MARKERS)

    def owner_ids(self, path: Path) -> tuple[str, ...]:
        """A full export names its owner (personal_information.user_id, near the top): their from_id."""
        try:
            with export_file(path).open(encoding="utf-8", errors="replace") as handle:
                head = handle.read(PEEK_CHARS)
        except OSError:
            return ()
        found = OWNER.search(head)
        return (f"user{found.group(1)}",) if found else ()

    def read(self, path: Path) -> Iterator[Entry]:
        file = export_file(path)
        export = load_export(file)
        for where, chat in chats(file, export):
            yield from chat_entries(file, where, chat)


def export_file(path: Path) -> Path:
    """The `result.json` a path names, directly or as the folder holding it."""
    return path / EXPORT_FILE if path.is_dir() else path


def load_export(file: Path) -> dict[str, Any]:
    """The parsed export; ImportFormatError if it is not a JSON object."""
    try:
        export = json.loads(file.read_bytes().decode("utf-8-sig"))
    except OSError as error:
        raise ImportFormatError(str(file), "file", str(error)) from error
    except UnicodeDecodeError as error:
        raise ImportFormatError(
            str(file), f"byte {error.start}", f"not UTF-8 text ({error.reason})"
        ) from error
    except json.JSONDecodeError as error:
        raise ImportFormatError(
            str(file), f"line {error.lineno}", f"invalid JSON: {error.msg} at column {error.colno}"
        ) from error
    if not isinstance(export, dict):
        raise ImportFormatError(str(file), "top level", "expected a JSON object")
    return export


def chats(file: Path, export: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Each chat with the JSON path prefix of its messages: the export itself, or a full export's lists."""
    if "messages" in export:
        yield "", export
        return
    if "chats" not in export:
        raise ImportFormatError(
            str(file), "top level", "neither a chat export ('messages') nor a full export ('chats')"
        )
    for section in CHAT_SECTIONS:
        block = export.get(section)
        if block is None:
            continue
        listed = block.get("list") if isinstance(block, dict) else None
        if not isinstance(listed, list):
            raise ImportFormatError(str(file), section, "expected an object with a 'list' of chats")
        for index, chat in enumerate(listed):
            yield f"{section}.list[{index}].", chat


def chat_entries(file: Path, where: str, chat: Any) -> Iterator[Entry]:
    """The content messages of one chat; service and media-only messages are left out."""
    if not isinstance(chat, dict) or "id" not in chat or not isinstance(chat.get("messages"), list):
        raise ImportFormatError(
            str(file), where.rstrip(".") or "top level", "a chat needs an 'id' and a 'messages' list"
        )
    context = Chat(id=str(chat["id"]), title=chat.get("name"))
    for index, message in enumerate(chat["messages"]):
        location = f"{where}messages[{index}]"
        if not isinstance(message, dict):
            yield Rejected(str(file), location, "expected a JSON object")
            continue
        reader = MESSAGE_KINDS.get(message.get("type"))
        entry = reader(str(file), location, context, message) if reader else None
        if entry is not None:
            yield entry


def message_entry(file: str, location: str, chat: Chat, message: dict[str, Any]) -> Entry | None:
    """One ordinary message as an item; None when it carries no words (a sticker, a bare photo)."""
    try:
        text = message_text(message)
        if not text.strip():
            return None
        occurred_at = message_time(message)
    except ValueError as error:
        return Rejected(file, location, f"message {message.get('id', '?')}: {error}")
    sender_id = message.get("from_id")
    sender = message.get("from") or sender_id
    if "id" not in message or not sender:
        return Rejected(file, location, "a message needs an 'id' and a 'from' or 'from_id'")
    return NewItem(
        source="telegram",
        source_id=f"{chat.id}:{message['id']}",
        chat=chat.id,
        chat_title=chat.title,
        sender=str(sender),
        sender_id=str(sender_id) if sender_id is not None else None,
        text=text,
        occurred_at=occurred_at,
        raw=message,
    )


def skip(file: str, location: str, chat: Chat, message: dict[str, Any]) -> Entry | None:
    """Not content: a join, a pin, a call, a title change."""
    return None


MessageReader = Callable[[str, str, Chat, dict[str, Any]], Entry | None]
MESSAGE_KINDS: dict[Any, MessageReader] = {"message": message_entry, "service": skip}


def message_text(message: dict[str, Any]) -> str:
    """The words of a message: its text, or its caption; rich text is a list of strings and entities."""
    for field in TEXT_FIELDS:
        text = joined_text(message.get(field), field)
        if text.strip():
            return text
    return ""


def joined_text(value: Any, field: str) -> str:
    """A Telegram text value as plain text; ValueError if it is neither a string nor a list of parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ValueError(f"{field} is neither a string nor a list")
    parts = []
    for index, part in enumerate(value):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            part = part["text"]
        if not isinstance(part, str):
            raise ValueError(f"{field}[{index}] is neither a string nor an entity with text")
        parts.append(part)
    return "".join(parts)


def message_time(message: dict[str, Any]) -> datetime:
    """When a message was sent, in UTC: `date_unixtime` if present, else `date` (local time, taken as UTC)."""
    unixtime = message.get("date_unixtime")
    if unixtime is not None:
        try:
            return datetime.fromtimestamp(int(unixtime), UTC)
        except (TypeError, ValueError, OverflowError, OSError) as error:
            raise ValueError(f"date_unixtime {unixtime!r} is not seconds since the epoch") from error
    date = message.get("date")
    if date is None:
        raise ValueError("missing date and date_unixtime")
    try:
        return as_utc(datetime.fromisoformat(date))
    except (TypeError, ValueError) as error:
        raise ValueError(f"date {date!r} is not an ISO 8601 time") from error
