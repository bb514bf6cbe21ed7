"""Claude's data export: `conversations.json` (or the export zip), each conversation a list of `chat_messages`.

Messages are in order; an export that records branches (`parent_message_uuid` on the messages and
`current_leaf_message_uuid` on the conversation) is read along the branch ending at that leaf, the one the
person saw. The `text` of a message is used, else its text content blocks; attachments are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.importers.assistants import OWNER_SENDER, Malformed, entries, iso_time, load, looks_like
from storage.importers.base import Entry
from storage.items import NewItem

SOURCE = "claude"
OWNER_ID = "human"  # the sender id of the person's messages
SPEAKERS = {"human": (OWNER_ID, OWNER_SENDER), "assistant": ("assistant", "Claude")}


class ClaudeImporter:
    """Reads a Claude data export: conversations.json, the folder holding it, or the zip."""

    name = "claude"

    def detect(self, path: Path) -> bool:
        return looks_like(path, "chat_messages")

    def owner_ids(self, path: Path) -> tuple[str, ...]:
        """The person who exported it wrote every `human` message."""
        return (OWNER_ID,)

    def read(self, path: Path) -> Iterator[Entry]:
        return entries(load(path), conversation_items, "uuid")


def conversation_items(conversation: dict[str, Any]) -> list[Entry]:
    """The messages of the branch the person saw, in order."""
    messages = conversation.get("chat_messages")
    if not isinstance(messages, list):
        raise Malformed("'chat_messages' is not a list")
    chat = conversation.get("uuid")
    if not isinstance(chat, str) or not chat:
        raise Malformed("no 'uuid'")
    started = iso_time(conversation.get("created_at"), "created_at")
    title = conversation.get("name") if isinstance(conversation.get("name"), str) and conversation["name"] else None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Malformed(f"chat_messages[{index}] is not an object")
    items: list[Entry] = []
    for message in seen_branch(messages, conversation.get("current_leaf_message_uuid")):
        item = message_item(chat, title, started, message)
        if item is not None:
            items.append(item)
    return items


def seen_branch(messages: list[dict[str, Any]], leaf: Any) -> list[dict[str, Any]]:
    """All messages in order; with a leaf and parent links, only the leaf and its ancestors."""
    by_id = {message.get("uuid"): message for message in messages}
    if leaf is None or leaf not in by_id or not any("parent_message_uuid" in m for m in messages):
        return messages
    branch: list[dict[str, Any]] = []
    current = leaf
    while current in by_id:
        if len(branch) > len(messages):
            raise Malformed(f"message {current!r} is its own ancestor")
        branch.append(by_id[current])
        current = by_id[current].get("parent_message_uuid")
    return branch[::-1]


def message_item(chat: str, title: str | None, started: datetime | None, message: dict[str, Any]) -> NewItem | None:
    """One message as an item; None when it holds no words."""
    where = f"message {message.get('uuid')!r}"
    sender = message.get("sender")
    if sender not in SPEAKERS:
        raise Malformed(f"{where}: sender {sender!r} is neither 'human' nor 'assistant'")
    text = message_text(message, where)
    if not text.strip():
        return None
    occurred_at = iso_time(message.get("created_at"), f"{where}: created_at") or started
    if occurred_at is None or not message.get("uuid"):
        raise Malformed(f"{where}: needs a 'uuid' and a created_at (its own or the chat's)")
    sender_id, name = SPEAKERS[sender]
    return NewItem(
        source=SOURCE, source_id=f"{chat}/{message['uuid']}", chat=chat, chat_title=title, sender=name,
        sender_id=sender_id, text=text, occurred_at=occurred_at, raw=message,
    )


def message_text(message: dict[str, Any], where: str) -> str:
    """The message's `text`, else its text content blocks joined."""
    text = message.get("text")
    if text is not None and not isinstance(text, str):
        raise Malformed(f"{where}: 'text' is not a string")
    if text and text.strip():
        return text
    blocks = message.get("content")
    if blocks is None:
        return ""
    if not isinstance(blocks, list):
        raise Malformed(f"{where}: 'content' is not a list")
    parts = [block.get("text") for block in blocks if isinstance(block, dict) and block.get("type") == "text"]
    return "\n".join(part for part in parts if isinstance(part, str) and part.strip())
