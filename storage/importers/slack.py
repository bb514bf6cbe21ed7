"""Slack's workspace export: a folder or zip of users, conversations and one JSON file per channel per day."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from storage.errors import ImportFormatError
from storage.importers.base import Entry, Rejected
from storage.items import NewItem

USERS_FILE = "users.json"
CHANNELS_FILE = "channels.json"
# Each conversation list, and the field that names its folder: direct messages are filed under their id.
CONVERSATION_LISTS = {"channels.json": "name", "groups.json": "name", "mpims.json": "name", "dms.json": "id"}
DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")
TS = re.compile(r"^(\d+)(?:\.(\d+))?$")
# <@U123>, <@U123|name>, <#C123|general>, <!here>, <!subteam^S1|@team>, <https://x|label>
CONTROL = re.compile(r"<([@#!]?)([^<>|]+)(?:\|([^<>]*))?>")
ESCAPES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))  # the only three Slack escapes; &amp; last


class Tree(Protocol):
    """The files of an export, wherever they are kept."""

    def text(self, name: str) -> str | None:
        """A file's text by its path in the export; None if absent."""
        ...

    def files(self, folder: str) -> list[str]:
        """The names of the files directly in a folder, sorted."""
        ...


@dataclass(frozen=True)
class FolderTree:
    """An export unpacked into a folder."""

    root: Path

    def text(self, name: str) -> str | None:
        file = self.root / name
        return file.read_bytes().decode("utf-8-sig") if file.is_file() else None

    def files(self, folder: str) -> list[str]:
        directory = self.root / folder
        return sorted(p.name for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


@dataclass(frozen=True)
class ZipTree:
    """An export still in its zip, read without extracting; `prefix` is a wrapping folder, if any."""

    archive: zipfile.ZipFile
    prefix: str

    def text(self, name: str) -> str | None:
        try:
            return self.archive.read(self.prefix + name).decode("utf-8-sig")
        except KeyError:
            return None

    def files(self, folder: str) -> list[str]:
        inside = f"{self.prefix}{folder}/"
        names = (name[len(inside) :] for name in self.archive.namelist() if name.startswith(inside))
        return sorted(name for name in names if name and "/" not in name)


@dataclass(frozen=True)
class Conversation:
    """A channel, private channel, group DM or DM, and the folder its days are in."""

    id: str
    title: str
    folder: str


@dataclass(frozen=True)
class Directory:
    """Names for the ids that messages carry."""

    users: dict[str, str]
    channels: dict[str, str]


class SlackImporter:
    """Reads a Slack workspace export, as a folder or as the zip Slack hands out."""

    name = "slack"

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return (path / USERS_FILE).is_file() and (path / CHANNELS_FILE).is_file()
        if not (path.is_file() and zipfile.is_zipfile(path)):
            return False
        try:
            with zipfile.ZipFile(path) as archive:
                return zip_prefix(archive) is not None
        except (zipfile.BadZipFile, OSError):
            return False

    def owner_ids(self, path: Path) -> tuple[str, ...]:
        """This format does not say who exported it."""
        return ()

    def read(self, path: Path) -> Iterator[Entry]:
        with open_tree(path) as tree:
            users = {
                user["id"]: person_name(user) or user["id"] for user in load_list(path, tree, USERS_FILE)
            }
            conversations = [
                c for name in CONVERSATION_LISTS for c in load_conversations(path, tree, name, users)
            ]
            directory = Directory(users=users, channels={c.id: c.title for c in conversations})
            for conversation in conversations:
                for day in tree.files(conversation.folder):
                    if DAY_FILE.match(day):
                        yield from day_entries(path, tree, conversation, day, directory)


@contextmanager
def open_tree(path: Path) -> Iterator[Tree]:
    """The export's files: the folder itself, or the zip opened for reading."""
    if path.is_dir():
        yield FolderTree(path)
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ImportFormatError(str(path), "file", f"not a Slack export folder or zip ({error})") from error
    with archive:
        prefix = zip_prefix(archive)
        if prefix is None:
            raise ImportFormatError(str(path), USERS_FILE, "missing from the zip")
        yield ZipTree(archive, prefix)


def zip_prefix(archive: zipfile.ZipFile) -> str | None:
    """The folder in the zip holding users.json and channels.json ('' at the top); None if none does."""
    names = set(archive.namelist())
    candidates = [str(PurePosixPath(n).parent) for n in names if PurePosixPath(n).name == USERS_FILE]
    prefixes = ["" if folder == "." else f"{folder}/" for folder in candidates]
    found = sorted((p for p in prefixes if p + CHANNELS_FILE in names), key=lambda p: p.count("/"))
    return found[0] if found else None


def decode(tree: Tree, name: str) -> Any:
    """A JSON file of the export; ValueError saying what is wrong; None if absent."""
    try:
        text = tree.text(name)
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text ({error.reason} at byte {error.start})") from error
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from error


def load_list(path: Path, tree: Tree, name: str, required: bool = True) -> list[dict[str, Any]]:
    """A top-level list of objects with ids (users, channels, ...); ImportFormatError if malformed."""
    try:
        entries = decode(tree, name)
    except ValueError as error:
        raise ImportFormatError(str(path), name, str(error)) from error
    if entries is None and not required:
        return []
    if entries is None:
        raise ImportFormatError(str(path), name, "missing: not a Slack export")
    if not isinstance(entries, list):
        raise ImportFormatError(str(path), name, "expected a JSON list")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ImportFormatError(str(path), f"{name}: [{index}]", "expected an object with an 'id'")
    return entries


def load_conversations(path: Path, tree: Tree, name: str, users: dict[str, str]) -> list[Conversation]:
    """The conversations one list file names; a DM is titled by its members."""
    folder_field = CONVERSATION_LISTS[name]
    conversations = []
    for index, entry in enumerate(load_list(path, tree, name, required=name == CHANNELS_FILE)):
        folder = entry.get(folder_field)
        if not isinstance(folder, str) or not folder:
            raise ImportFormatError(str(path), f"{name}: [{index}]", f"expected a '{folder_field}'")
        members = ", ".join(users.get(member, member) for member in entry.get("members") or [])
        conversations.append(
            Conversation(id=entry["id"], title=entry.get("name") or members or entry["id"], folder=folder)
        )
    return conversations


def day_entries(
    path: Path, tree: Tree, conversation: Conversation, day: str, directory: Directory
) -> Iterator[Entry]:
    """The content messages of one channel's day; a day file that is not a list is rejected whole."""
    file = f"{conversation.folder}/{day}"
    try:
        messages = decode(tree, file)
    except ValueError as error:
        yield Rejected(str(path), file, str(error))
        return
    if not isinstance(messages, list):
        yield Rejected(str(path), file, "expected a JSON list of messages")
        return
    for index, message in enumerate(messages):
        entry = message_entry(str(path), f"{file}: [{index}]", conversation, message, directory)
        if entry is not None:
            yield entry


def message_entry(
    path: str, location: str, conversation: Conversation, message: Any, directory: Directory
) -> Entry | None:
    """One message as an item; None for joins, topic changes and shared files without words."""
    if not isinstance(message, dict):
        return Rejected(path, location, "expected a JSON object")
    sender_of = SENDERS.get(message.get("subtype"))
    text = message.get("text", "")
    if message.get("type", "message") != "message" or sender_of is None:
        return None
    if not isinstance(text, str):
        return Rejected(path, location, "text is not a string")
    if not text.strip():
        return None
    ts = message.get("ts")
    try:
        occurred_at = ts_time(ts)
    except ValueError as error:
        return Rejected(path, location, str(error))
    sender_id, sender = sender_of(message, directory)
    if not sender_id or not sender:
        return Rejected(path, location, "a message needs a 'user'")
    return NewItem(
        source="slack",
        source_id=f"{conversation.id}:{ts}",
        chat=conversation.id,
        chat_title=conversation.title,
        sender=sender,
        sender_id=sender_id,
        text=plain_text(text, directory),
        occurred_at=occurred_at,
        raw=message,
    )


def person_name(user: dict[str, Any]) -> str | None:
    """The name a person goes by: real name, else display name, else handle (users.json or user_profile)."""
    profile = user.get("profile") or {}
    candidates = (profile.get("real_name"), user.get("real_name"), profile.get("display_name"))
    return next((name for name in (*candidates, user.get("display_name"), user.get("name")) if name), None)


def user_sender(message: dict[str, Any], directory: Directory) -> tuple[str | None, str | None]:
    """A person's message: their id and name from users.json, else from the message's own profile."""
    user = message.get("user")
    name = directory.users.get(user) or person_name(message.get("user_profile") or {}) or user
    return user, name


def bot_sender(message: dict[str, Any], directory: Directory) -> tuple[str | None, str | None]:
    """An integration's message: the bot's id and the name it posted under."""
    bot = message.get("bot_id") or message.get("user")
    name = (
        message.get("username") or (message.get("bot_profile") or {}).get("name") or directory.users.get(bot)
    )
    return bot, name or bot


# The subtypes that carry content, and who sent them; every other subtype (channel_join, channel_leave,
# channel_topic, bot_add, pinned_item, tombstone, ...) is a system notice and is left out.
Sender = Callable[[dict[str, Any], Directory], tuple[str | None, str | None]]
SENDERS: dict[str | None, Sender] = {
    None: user_sender,
    "thread_broadcast": user_sender,
    "file_share": user_sender,
    "me_message": user_sender,
    "bot_message": bot_sender,
}


def ts_time(ts: Any) -> datetime:
    """A Slack `ts` ("1704189600.000200", seconds.microseconds) as a UTC time."""
    match = TS.match(ts) if isinstance(ts, str) else None
    if match is None:
        raise ValueError(f"ts {ts!r} is not seconds since the epoch")
    seconds, fraction = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime.fromtimestamp(int(seconds), UTC) + timedelta(microseconds=micros)


def plain_text(text: str, directory: Directory) -> str:
    """Slack's markup as people read it: mentions and channel links by name, escapes undone."""

    def readable(match: re.Match[str]) -> str:
        sigil, target, label = match.groups()
        return CONTROL_FORMS[sigil](target, label, directory)

    text = CONTROL.sub(readable, text)
    for escaped, character in ESCAPES:
        text = text.replace(escaped, character)
    return text


def user_mention(target: str, label: str | None, directory: Directory) -> str:
    return "@" + (directory.users.get(target) or label or target)


def channel_mention(target: str, label: str | None, directory: Directory) -> str:
    return "#" + (directory.channels.get(target) or label or target)


def special_mention(target: str, label: str | None, directory: Directory) -> str:
    return label or "@" + target.split("^")[0]  # <!here>, <!channel>, <!subteam^S1|@team>, <!date^...|label>


def link(target: str, label: str | None, directory: Directory) -> str:
    return label or target


CONTROL_FORMS: dict[str, Callable[[str, str | None, Directory], str]] = {
    "@": user_mention,
    "#": channel_mention,
    "!": special_mention,
    "": link,
}
