"""What the ChatGPT and Claude data exports share: a `conversations.json` list, alone, in a folder or in the zip."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from storage.errors import ImportFormatError
from storage.importers.base import Entry, Rejected, as_utc

CONVERSATIONS_FILE = "conversations.json"
PEEK_CHARS = 64 * 1024  # enough to see the first conversation's keys
OWNER_SENDER = "me"  # the sender name of the owner's messages; the import names the owner's account instead


@dataclass(frozen=True)
class Export:
    """The file a path names (for messages) and the parsed conversations."""

    file: str
    conversations: list[Any]


class Malformed(ValueError):
    """A conversation that cannot be read; the message says what was wrong."""


def member_name(archive: zipfile.ZipFile) -> str | None:
    """The `conversations.json` in a zip, at the top or in the shallowest folder; None if absent."""
    found = [name for name in archive.namelist() if PurePosixPath(name).name == CONVERSATIONS_FILE]
    return min(found, key=lambda name: name.count("/")) if found else None


def head(path: Path) -> str:
    """The first characters of the export's conversations.json, or '' when the path holds none."""
    try:
        if path.is_dir():
            path = path / CONVERSATIONS_FILE
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = member_name(archive)
                if name is None:
                    return ""
                with archive.open(name) as member:
                    return member.read(PEEK_CHARS).decode("utf-8", errors="replace")
        if path.is_file() and path.name == CONVERSATIONS_FILE:
            with path.open(encoding="utf-8", errors="replace") as handle:
                return handle.read(PEEK_CHARS)
    except (OSError, zipfile.BadZipFile):
        return ""
    return ""


def looks_like(path: Path, marker: str) -> bool:
    """Whether the export's conversations.json starts as a list and has this key early on."""
    text = head(path)
    return text.lstrip().startswith("[") and f'"{marker}"' in text


def load(path: Path) -> Export:
    """The parsed conversations.json of a file, folder or zip; ImportFormatError if it is not a JSON list."""
    file = path / CONVERSATIONS_FILE if path.is_dir() else path
    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                name = member_name(archive)
                if name is None:
                    raise ImportFormatError(str(file), CONVERSATIONS_FILE, "missing from the zip")
                label, data = f"{file}:{name}", archive.read(name)
        else:
            label, data = str(file), file.read_bytes()
    except (OSError, zipfile.BadZipFile) as error:
        raise ImportFormatError(str(file), "file", str(error)) from error
    try:
        conversations = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise ImportFormatError(label, f"byte {error.start}", f"not UTF-8 text ({error.reason})") from error
    except json.JSONDecodeError as error:
        raise ImportFormatError(
            label, f"line {error.lineno}", f"invalid JSON: {error.msg} at column {error.colno}"
        ) from error
    if not isinstance(conversations, list):
        raise ImportFormatError(label, "top level", "expected a list of conversations")
    return Export(label, conversations)


def entries(export: Export, read: Callable[[dict[str, Any]], list[Entry]], id_field: str) -> Iterator[Entry]:
    """Every conversation's items; a conversation that cannot be read is one Rejected naming it."""
    for index, conversation in enumerate(export.conversations):
        where = f"conversation {index}"
        if isinstance(conversation, dict) and conversation.get(id_field):
            where += f" ({conversation[id_field]})"
        try:
            if not isinstance(conversation, dict):
                raise Malformed("expected a JSON object")
            yield from read(conversation)
        except Malformed as error:
            yield Rejected(export.file, where, str(error))


def unix_time(value: Any, what: str) -> datetime | None:
    """Seconds since the epoch (ChatGPT's times) as UTC; None stays None."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError) as error:
        raise Malformed(f"{what} {value!r} is not seconds since the epoch") from error


def iso_time(value: Any, what: str) -> datetime | None:
    """An ISO 8601 time (Claude's times) as UTC; None stays None."""
    if value is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except (TypeError, ValueError) as error:
        raise Malformed(f"{what} {value!r} is not an ISO 8601 time") from error
