"""The JSONL format anyone can convert their history to: one message object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from storage.errors import ImportFormatError
from storage.importers.base import Entry, Rejected, as_utc, describe_validation_error
from storage.items import NewItem
from storage.models import ItemKind, Visibility


class JsonlMessage(BaseModel):
    """One line of a JSONL import."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Unique within its chat (and source).")
    chat: str = Field(min_length=1)
    sender: str = Field(min_length=1)
    text: str
    timestamp: datetime = Field(description="ISO 8601; without an offset it is taken as UTC.")
    visibility: Visibility | None = None
    chat_title: str | None = None
    sender_id: str | None = None
    source: str = Field(default="jsonl", min_length=1, max_length=32)
    kind: ItemKind = ItemKind.message

    @field_validator("id", "chat", "sender", "sender_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return value


class JsonlImporter:
    """Reads `*.jsonl` files of JsonlMessage objects."""

    name = "jsonl"

    def detect(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson")

    def owner_ids(self, path: Path) -> tuple[str, ...]:
        """This format does not say who exported it."""
        return ()

    def read(self, path: Path) -> Iterator[Entry]:
        try:
            handle = path.open(encoding="utf-8")
        except OSError as error:
            raise ImportFormatError(str(path), "file", str(error)) from error
        with handle:
            try:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        yield self._entry(path, number, line)
            except UnicodeDecodeError as error:
                raise ImportFormatError(str(path), f"line {number + 1}", f"not UTF-8 text ({error.reason})") from error

    @staticmethod
    def _entry(path: Path, number: int, line: str) -> Entry:
        location = f"line {number}"
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as error:
            return Rejected(str(path), location, f"invalid JSON: {error.msg} at column {error.colno}")
        if not isinstance(payload, dict):
            return Rejected(str(path), location, "expected a JSON object")
        try:
            message = JsonlMessage.model_validate(payload)
        except ValidationError as error:
            return Rejected(str(path), location, describe_validation_error(error))
        return NewItem(
            source=message.source,
            source_id=f"{message.chat}/{message.id}",
            chat=message.chat,
            chat_title=message.chat_title,
            sender=message.sender,
            sender_id=message.sender_id,
            text=message.text,
            occurred_at=as_utc(message.timestamp),
            kind=message.kind,
            visibility=message.visibility,
            raw=payload,
        )
