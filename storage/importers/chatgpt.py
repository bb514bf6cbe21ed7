"""ChatGPT's data export: `conversations.json` (or the export zip), each conversation a tree of messages.

A conversation's `mapping` holds every node (a message, its parent, its children): edited prompts and
regenerated answers are branches. What the person saw is the branch ending at `current_node`, read from
there up to the root. Only the person's and the assistant's words are kept: system prompts, tool calls and
their output, hidden context and non-text parts (images, files) are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from storage.importers.assistants import OWNER_SENDER, Malformed, entries, load, looks_like, unix_time
from storage.importers.base import Entry
from storage.items import NewItem

SOURCE = "chatgpt"
OWNER_ID = "user"  # the sender id of the person's messages
ASSISTANT_ID, ASSISTANT_NAME = "assistant", "ChatGPT"
WORDS = ("text", "multimodal_text")  # content types that hold what was said; code, browsing, thoughts do not
SPEAKERS = {"user": (OWNER_ID, OWNER_SENDER), "assistant": (ASSISTANT_ID, ASSISTANT_NAME)}


class ChatGptImporter:
    """Reads a ChatGPT data export: conversations.json, the folder holding it, or the zip."""

    name = "chatgpt"

    def detect(self, path: Path) -> bool:
        return looks_like(path, "mapping")

    def owner_ids(self, path: Path) -> tuple[str, ...]:
        """The person who exported it wrote every `user` message."""
        return (OWNER_ID,)

    def read(self, path: Path) -> Iterator[Entry]:
        return entries(load(path), conversation_items, "id")


def conversation_items(conversation: dict[str, Any]) -> list[Entry]:
    """The messages on the branch the person saw, oldest first."""
    mapping = conversation.get("mapping")
    if not isinstance(mapping, dict):
        raise Malformed("'mapping' is not an object of message nodes")
    chat = str(conversation.get("conversation_id") or conversation.get("id") or "")
    if not chat:
        raise Malformed("neither 'id' nor 'conversation_id'")
    started = unix_time(conversation.get("create_time"), "create_time")
    title = conversation.get("title") if isinstance(conversation.get("title"), str) else None
    items: list[Entry] = []
    for node in seen_branch(mapping, conversation.get("current_node")):
        item = node_item(chat, title, started, node)
        if item is not None:
            items.append(item)
    return items


def seen_branch(mapping: dict[str, Any], current: Any) -> list[dict[str, Any]]:
    """The nodes from the root to the current node; without one, to the newest leaf."""
    if current is None:
        current = newest_leaf(mapping)
    branch: list[dict[str, Any]] = []
    visited: set[str] = set()
    while current is not None:
        node = mapping.get(current)
        if not isinstance(node, dict):
            raise Malformed(f"node {current!r} is not in 'mapping'")
        if current in visited:
            raise Malformed(f"node {current!r} is its own ancestor")
        visited.add(current)
        branch.append(node)
        current = node.get("parent")
    return branch[::-1]


def newest_leaf(mapping: dict[str, Any]) -> str | None:
    """The childless node with the latest message (an export without `current_node`)."""
    leaves = [key for key, node in mapping.items() if isinstance(node, dict) and not node.get("children")]

    def created(key: str) -> float:
        message = mapping[key].get("message")
        stamp = message.get("create_time") if isinstance(message, dict) else None
        return float(stamp) if isinstance(stamp, int | float) else 0.0

    return max(leaves, key=created) if leaves else None


def node_item(chat: str, title: str | None, started: datetime | None, node: dict[str, Any]) -> NewItem | None:
    """One node's message as an item; None for the root, system and tool turns, hidden or wordless ones."""
    message = node.get("message")
    if message is None:
        return None
    if not isinstance(message, dict):
        raise Malformed(f"node {node.get('id')!r}: 'message' is not an object")
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    if not isinstance(role, str):
        raise Malformed(f"message {message.get('id')!r}: no author.role")
    metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
    if role not in SPEAKERS or metadata.get("is_visually_hidden_from_conversation"):
        return None
    if message.get("recipient", "all") != "all":  # a call to a tool (browser, python), not words to the person
        return None
    text = message_text(message)
    if not text.strip():
        return None
    occurred_at = unix_time(message.get("create_time"), f"message {message.get('id')!r}: create_time") or started
    if occurred_at is None or not message.get("id"):
        raise Malformed(f"message {message.get('id')!r}: needs an 'id' and a create_time (its own or the chat's)")
    sender_id, sender = SPEAKERS[role]
    return NewItem(
        source=SOURCE, source_id=f"{chat}/{message['id']}", chat=chat, chat_title=title, sender=sender,
        sender_id=sender_id, text=text, occurred_at=occurred_at, raw=message,
    )


def message_text(message: dict[str, Any]) -> str:
    """The words of a message: its text parts joined (images and files are object parts, left out)."""
    content = message.get("content")
    if not isinstance(content, dict):
        raise Malformed(f"message {message.get('id')!r}: 'content' is not an object")
    if content.get("content_type", "text") not in WORDS:
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        raise Malformed(f"message {message.get('id')!r}: content.parts is not a list")
    return "\n".join(part for part in parts if isinstance(part, str) and part.strip())
