"""Importers for the formats people export their history in, and the one path every import takes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from storage.errors import ImportFormatError
from storage.importers.assistants import OWNER_SENDER
from storage.importers.base import Importer, Rejected
from storage.importers.jsonl import JsonlImporter
from storage.items import NewItem
from storage.memory import MemoryStore
from storage.models import Visibility

NOTES_AUTHOR = "notes"  # the sender id the notes importer gives every chunk: the owner


def registry() -> dict[str, Importer]:
    """Every importer by format name, in detection order."""
    from storage.importers.chatgpt import ChatGptImporter
    from storage.importers.claude import ClaudeImporter
    from storage.importers.notes import NotesImporter
    from storage.importers.slack import SlackImporter
    from storage.importers.telegram import TelegramImporter

    importers: list[Importer] = [
        TelegramImporter(), SlackImporter(), ChatGptImporter(), ClaudeImporter(), JsonlImporter(), NotesImporter()
    ]
    return {importer.name: importer for importer in importers}


def detect_format(path: Path) -> Importer:
    """The importer whose format the path is in; ImportFormatError if none recognises it."""
    if not path.exists():
        raise ImportFormatError(str(path), "path", "no such file or folder")
    for importer in registry().values():
        if importer.detect(path):
            return importer
    raise ImportFormatError(
        str(path), "format",
        "not a JSONL file, a Telegram, Slack, ChatGPT or Claude export or a folder of notes; pass --format",
    )


@dataclass
class ImportReport:
    """The counts an import ends with."""

    path: str
    format: str
    added: int = 0
    duplicates: int = 0
    forgotten: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    owner_known: bool = True  # whether any of the file's senders is the owner (else their messages look inbound)
    senders: list[tuple[str, str, str]] = field(default_factory=list)  # (platform, id, name), the most frequent first
    reattributed: list[int] = field(default_factory=list)  # stored messages that became the owner's with this import


def read_all(path: Path, importer: Importer, skip_invalid: bool) -> tuple[list[NewItem], list[Rejected]]:
    """Parse the whole file before anything is written: a malformed entry raises unless skip_invalid."""
    items: list[NewItem] = []
    rejected: list[Rejected] = []
    for entry in importer.read(path):
        if isinstance(entry, Rejected):
            if not skip_invalid:
                raise ImportFormatError(entry.path, entry.location, entry.problem)
            rejected.append(entry)
        else:
            items.append(entry)
    return items, rejected


def import_path(
    store: MemoryStore,
    twin_id: int,
    path: Path,
    format: str = "auto",
    visibility: Visibility | None = None,
    default_visibility: Visibility = Visibility.private,
    skip_invalid: bool = False,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 512,
    owner_ids: tuple[str, ...] = (),
) -> ImportReport:
    """Import a file or folder into L0; re-importing adds nothing; a malformed file writes nothing.

    `owner_ids` are the owner's sender ids in this file (its messages are then outbound); notes are
    always the owner's own writing.
    """
    importers = registry()
    if format == "auto":
        importer = detect_format(path)
    elif format in importers:
        importer = importers[format]
    else:
        raise ImportFormatError(str(path), "format", f"unknown format {format!r}; one of {', '.join(importers)}")
    items, rejected = read_all(path, importer, skip_invalid)
    if visibility is not None:  # an explicit --visibility wins over what the file says
        items = [_with_visibility(item, visibility) for item in items]
    report = ImportReport(path=str(path), format=importer.name, rejected=rejected)
    exporter_ids = importer.owner_ids(path)
    items = _name_owner(items, exporter_ids, store.owner(twin_id).display_name)
    report.reattributed, report.owner_known = _link_owner(store, twin_id, items, tuple(owner_ids) + exporter_ids)
    report.senders = _senders(items)
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        result = store.add(twin_id, batch, default_visibility=default_visibility, batch_size=batch_size)
        report.added += result.added
        report.duplicates += result.duplicates
        report.forgotten += result.forgotten
        if progress:
            progress(len(batch), len(items))
    if report.added:
        store.optimize_index()
    return report


def _link_owner(
    store: MemoryStore, twin_id: int, items: list[NewItem], owner_ids: tuple[str, ...]
) -> tuple[list[int], bool]:
    """Give the owner their accounts in this file, and the messages already stored from them (a re-import with
    --me, or a full export after a single chat); returns those messages' ids and whether the owner was found."""
    from storage.people import PeopleDirectory, account_aliases

    directory = PeopleDirectory(store.engine)
    accounts = {(item.source, item.sender_id or item.sender): item.sender for item in items}
    moved: list[int] = []
    found = not accounts
    for (source, sender), name in accounts.items():
        names = [sender, *account_aliases(source, sender)]
        named = any(n in owner_ids or f"{source}:{n}" in owner_ids for n in names)
        if named or (source == "notes" and sender == NOTES_AUTHOR):
            moved += directory.claim_for_owner(twin_id, source, sender, name)
            found = True
    store.forget_cached_people()  # a merged person's id is gone
    return sorted(moved), found


def _senders(items: list[NewItem], shown: int = 5) -> list[tuple[str, str, str]]:
    counts = Counter((item.source, item.sender_id or item.sender, item.sender) for item in items)
    return [sender for sender, _ in counts.most_common(shown)]


def _name_owner(items: list[NewItem], exporter_ids: tuple[str, ...], name: str) -> list[NewItem]:
    """The exporter's messages that an export leaves unnamed (an assistant chat's "me") carry the owner's name."""
    return [
        replace(item, sender=name) if item.sender == OWNER_SENDER and item.sender_id in exporter_ids else item
        for item in items
    ]


def _with_visibility(item: NewItem, visibility: Visibility) -> NewItem:
    return replace(item, visibility=visibility)
