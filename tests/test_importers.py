"""Every import format end to end on the real store: fields, idempotence, bad files, detection, search."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from storage.errors import ImportFormatError
from storage.importers import detect_format, import_path, registry
from storage.importers.base import as_utc
from storage.importers.notes import CHUNK_CHARS, chunk_note
from storage.memory import MemoryStore
from storage.models import ItemKind, L0Item, Twin, Visibility
from storage.search import HybridSearcher, SearchScope

FIXTURES = Path(__file__).parent / "fixtures"
TELEGRAM = FIXTURES / "telegram"
SLACK = FIXTURES / "slack"
NOTES = FIXTURES / "notes"
JSONL = FIXTURES / "jsonl"
NOTES_MTIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def stored(store: MemoryStore, twin: Twin, source: str | None = None) -> dict[str, L0Item]:
    """The twin's L0 rows (of one source) by source id."""
    query = select(L0Item).where(L0Item.twin_id == twin.id)
    if source:
        query = query.where(L0Item.source == source)
    with Session(store.engine) as session:
        return {row.source_id: row for row in session.scalars(query)}


def zip_folder(folder: Path, target: Path, wrap: str = "") -> Path:
    """The folder zipped the way Slack hands it out (files at the top, or under a wrapping folder)."""
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                archive.write(file, wrap + file.relative_to(folder).as_posix())
    return target


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """A copy of the notes fixture with every file's mtime set to a known moment."""
    copy = shutil.copytree(NOTES / "vault", tmp_path / "vault")
    for file in copy.rglob("*"):
        os.utime(file, (NOTES_MTIME.timestamp(), NOTES_MTIME.timestamp()))
    return copy


@pytest.fixture
def slack_zip(tmp_path: Path) -> Path:
    """The Slack fixture export as a zip."""
    return zip_folder(SLACK / "export", tmp_path / "slack-export.zip")


# -- Telegram ---------------------------------------------------------------------------------------------


def test_telegram_single_chat_export(store: MemoryStore, twin: Twin) -> None:
    report = import_path(store, twin.id, TELEGRAM / "single")

    assert (report.format, report.added, report.duplicates, report.rejected) == ("telegram", 4, 0, [])
    rows = stored(store, twin, "telegram")
    # the service message (103), the photo without a caption (105) and the sticker (107) are not content
    assert set(rows) == {"4815162342:101", "4815162342:102", "4815162342:104", "4815162342:106"}
    first = rows["4815162342:101"]
    assert (first.chat, first.chat_title, first.sender_name) == ("4815162342", "Bob Smith", "Bob Smith")
    assert first.text == "Are we still on for the hike on Saturday?"
    assert as_utc(first.occurred_at) == datetime(
        2024, 1, 2, 10, 0, tzinfo=UTC
    )  # date_unixtime, not local date
    reply = rows["4815162342:102"]
    assert reply.text == "Yes! Meet at the Lakeside trailhead at 8. Route: https://example.org/lakeside-loop"
    assert reply.sender_name == "Ada Lovelace"
    assert reply.raw["reply_to_message_id"] == 101 and reply.raw["text_entities"][1]["type"] == "bold"
    assert rows["4815162342:104"].text == "The view from the ridge last autumn"
    assert rows["4815162342:104"].raw["photo"].startswith("photos/")
    assert {row.kind for row in rows.values()} == {ItemKind.message}


def test_telegram_full_export_reads_every_chat(store: MemoryStore, twin: Twin) -> None:
    report = import_path(store, twin.id, TELEGRAM / "full" / "result.json")

    assert report.added == 6 and report.rejected == []
    rows = stored(store, twin, "telegram")
    assert {row.chat: row.chat_title for row in rows.values()} == {
        "222": "Charles Babbage",
        "1987654321": "Analytical Engine Club",
        "1555000444": "Difference Engine News",  # from left_chats
    }
    assert set(rows) == {"222:1", "222:3", "1987654321:11", "1987654321:12", "1987654321:13", "1555000444:7"}
    assert rows["1987654321:11"].text == "Hello everyone, thanks @ada for the invite!"
    assert rows["1987654321:12"].sender_name == "user999"  # a deleted account has no name, only from_id
    # no date_unixtime (older exports): the local date string is taken as UTC
    assert as_utc(rows["1555000444:7"].occurred_at) == datetime(2019, 11, 20, 8, 15, tzinfo=UTC)
    # one from_id is one person, across chats
    assert rows["222:3"].sender_id == rows["1987654321:13"].sender_id != rows["222:1"].sender_id


# -- Slack ------------------------------------------------------------------------------------------------

SLACK_IDS = {
    "C01GENERAL:1704189600.000200",
    "C01GENERAL:1704189840.000300",
    "C01GENERAL:1704295800.000400",
    "C01GENERAL:1704296700.000600",
    "C02ENGINE:1704204000.000700",
    "C02ENGINE:1704204600.000900",
}


def test_slack_folder_export(store: MemoryStore, twin: Twin) -> None:
    report = import_path(store, twin.id, SLACK / "export")

    assert (report.format, report.added, report.rejected) == ("slack", 6, [])
    rows = stored(store, twin, "slack")
    assert (
        set(rows) == SLACK_IDS
    )  # the join, the purpose change and the file shared without words are left out
    welcome = rows["C01GENERAL:1704189600.000200"]
    assert (
        welcome.text
        == "Welcome @Charles Babbage! The design review of the mill is on Thursday & everyone is invited."
    )
    assert (welcome.chat, welcome.chat_title, welcome.sender_name) == (
        "C01GENERAL",
        "general",
        "Ada Lovelace",
    )
    assert as_utc(welcome.occurred_at) == datetime(2024, 1, 2, 10, 0, 0, 200, tzinfo=UTC)
    reply = rows["C01GENERAL:1704189840.000300"]
    assert reply.sender_name == "Charles Babbage" and reply.raw["thread_ts"] == "1704189600.000200"
    assert rows["C01GENERAL:1704296700.000600"].raw["subtype"] == "thread_broadcast"
    assert rows["C01GENERAL:1704295800.000400"].sender_name == "Mary S."  # no real name: the display name
    design = rows["C02ENGINE:1704204000.000700"]
    assert design.chat_title == "engine-design"
    assert design.text.endswith("see #general for the review date.")
    assert rows["C02ENGINE:1704204600.000900"].text == "Here are the gear ratios for the carriage mechanism"


@pytest.mark.parametrize("wrap", ["", "Analytical Slack export Jan 1 2024 - Jan 3 2024/"])
def test_slack_zip_reads_like_the_folder(store: MemoryStore, twin: Twin, tmp_path: Path, wrap: str) -> None:
    archive = zip_folder(SLACK / "export", tmp_path / "export.zip", wrap)

    report = import_path(store, twin.id, archive)

    assert (report.format, report.added) == ("slack", 6)
    from_folder = {item.source_id: item.text for item in registry()["slack"].read(SLACK / "export")}
    assert {row.source_id: row.text for row in stored(store, twin, "slack").values()} == from_folder


def test_slack_direct_messages_are_filed_by_id_and_titled_by_members(
    store: MemoryStore, twin: Twin, tmp_path: Path
) -> None:
    export = shutil.copytree(SLACK / "export", tmp_path / "export")
    (export / "dms.json").write_text(json.dumps([{"id": "D01PAIR", "members": ["U01ADA", "U02CHARLES"]}]))
    (export / "D01PAIR").mkdir()
    message = {
        "type": "message",
        "user": "U02CHARLES",
        "text": "Can <@U01ADA> review my notes?",
        "ts": "1704400000.000100",
    }
    (export / "D01PAIR" / "2024-01-04.json").write_text(json.dumps([message]))

    assert import_path(store, twin.id, export).added == 7
    dm = stored(store, twin, "slack")["D01PAIR:1704400000.000100"]
    assert (dm.chat_title, dm.text) == ("Ada Lovelace, Charles Babbage", "Can @Ada Lovelace review my notes?")


# -- Notes ------------------------------------------------------------------------------------------------


def test_notes_folder_is_chunked_by_heading_and_paragraph(
    store: MemoryStore, twin: Twin, vault: Path
) -> None:
    report = import_path(store, twin.id, vault)

    assert (report.format, report.added, report.rejected) == ("notes", 8, [])
    rows = list(stored(store, twin, "notes").values())
    assert {row.chat for row in rows} == {
        "notes:trips/hiking.md",
        "notes:ideas.md",
        "notes:todo.txt",
    }  # no hidden
    assert {(row.kind, row.sender_name) for row in rows} == {(ItemKind.document, "notes")}
    assert {as_utc(row.occurred_at) for row in rows} == {NOTES_MTIME}
    assert all(len(row.text) <= CHUNK_CHARS for row in rows)
    assert not any("tags:" in row.text for row in rows)  # front matter is not content
    hiking = sorted((r for r in rows if r.chat == "notes:trips/hiking.md"), key=lambda r: r.raw["chunk"])
    assert [r.raw["heading_path"] for r in hiking] == [
        ["Hiking"],
        ["Hiking", "Lakeside trail"],
        ["Hiking", "Gear"],
        ["Hiking", "Journal", "Autumn 2023"],
        ["Hiking", "Journal", "Autumn 2023"],
    ]
    assert [r.raw["start_line"] for r in hiking[:3]] == [5, 9, 16]
    assert hiking[1].chat_title == "hiking"
    assert hiking[1].text.startswith("## Lakeside trail\n\nStarts at") and hiking[1].text.endswith(
        "morning shade."
    )
    assert (
        hiking[1].source_id == f"trips/hiking.md#{hashlib.sha256(hiking[1].text.encode()).hexdigest()[:16]}"
    )
    # the long journal paragraph is split between sentences, and nothing is lost
    first, second = hiking[3].text, hiking[4].text
    assert first.startswith("### Autumn 2023\n\n") and first.endswith(".") and second[0].isupper()
    paragraph = (vault / "trips" / "hiking.md").read_text().splitlines()[-1]
    assert first.removeprefix("### Autumn 2023\n\n") + " " + second == paragraph
    [code] = [r for r in rows if "def differences" in r.text]
    assert (
        "# not a heading inside the fence" in code.text
        and code.raw["heading_path"][-1] == "Difference engine replica"
    )
    [todo] = [r for r in rows if r.chat == "notes:todo.txt"]
    assert todo.raw["heading_path"] == [] and todo.text.startswith("Call the plumber")
    assert "# 3 things" in todo.text and todo.chat_title == "todo"


def test_a_single_note_file_imports_alone(store: MemoryStore, twin: Twin, vault: Path) -> None:
    report = import_path(store, twin.id, vault / "ideas.md")

    assert (report.format, report.added) == ("notes", 2)
    assert {row.chat for row in stored(store, twin).values()} == {"notes:ideas.md"}


def test_editing_a_note_adds_only_the_changed_chunk(store: MemoryStore, twin: Twin, vault: Path) -> None:
    import_path(store, twin.id, vault)
    ideas = vault / "ideas.md"
    ideas.write_text(ideas.read_text().replace("south wall", "greenhouse"))

    report = import_path(store, twin.id, vault)

    assert (report.added, report.duplicates) == (1, 7)
    assert any("greenhouse" in row.text for row in stored(store, twin, "notes").values())


def test_chunker_wraps_a_paragraph_without_sentence_ends() -> None:
    words = " ".join(f"word{n}" for n in range(400))

    chunks = chunk_note(f"# Only heading\n\n## Body\n\n{words}\n", markdown=True)

    assert len(chunks) > 1 and all(len(chunk.text) <= CHUNK_CHARS for chunk in chunks)
    assert {chunk.headings for chunk in chunks} == {("Only heading", "Body")}  # a heading alone is no chunk
    assert " ".join(chunk.text for chunk in chunks).removeprefix("## Body\n\n") == words


# -- Every format -----------------------------------------------------------------------------------------

FORMATS = [
    pytest.param(TELEGRAM / "single", 4, id="telegram-chat"),
    pytest.param(TELEGRAM / "full", 6, id="telegram-full"),
    pytest.param(SLACK / "export", 6, id="slack"),
    pytest.param(NOTES / "vault", 8, id="notes"),
    pytest.param(JSONL / "messages.jsonl", 3, id="jsonl"),
]


@pytest.mark.parametrize(("path", "count"), FORMATS)
def test_reimport_adds_nothing(store: MemoryStore, twin: Twin, path: Path, count: int) -> None:
    first = import_path(store, twin.id, path)
    again = import_path(store, twin.id, path)

    assert first.added == count
    assert (again.added, again.duplicates) == (0, count)
    assert store.count(twin.id) == count and store.index.count() == count


def test_reimporting_the_zip_after_the_folder_adds_nothing(
    store: MemoryStore, twin: Twin, slack_zip: Path
) -> None:
    import_path(store, twin.id, SLACK / "export")

    report = import_path(store, twin.id, slack_zip)

    assert (report.added, report.duplicates) == (0, 6)


MALFORMED = [
    pytest.param(
        JSONL / "bad_line.jsonl", JSONL / "bad_line.jsonl", "line 3", "invalid JSON", id="jsonl-json"
    ),
    pytest.param(
        JSONL / "missing_timestamp.jsonl",
        JSONL / "missing_timestamp.jsonl",
        "line 2",
        "timestamp",
        id="jsonl-timestamp",
    ),
    pytest.param(
        TELEGRAM / "broken_json",
        TELEGRAM / "broken_json" / "result.json",
        "line 18",
        "invalid JSON",
        id="telegram-json",
    ),
    pytest.param(
        TELEGRAM / "missing_date",
        TELEGRAM / "missing_date" / "result.json",
        "messages[1]",
        "missing date and date_unixtime",
        id="telegram-date",
    ),
    pytest.param(
        SLACK / "not_a_list",
        SLACK / "not_a_list",
        "general/2024-01-03.json",
        "expected a JSON list of messages",
        id="slack-day",
    ),
    pytest.param(NOTES / "broken", NOTES / "broken", "latin1.txt", "not UTF-8", id="notes-encoding"),
]


@pytest.mark.parametrize(("path", "named", "location", "problem"), MALFORMED)
def test_malformed_file_names_the_entry_and_writes_nothing(
    store: MemoryStore, twin: Twin, path: Path, named: Path, location: str, problem: str
) -> None:
    with pytest.raises(ImportFormatError) as empty_store:
        import_path(store, twin.id, path)
    assert store.count(twin.id) == 0
    import_path(store, twin.id, JSONL / "messages.jsonl")

    with pytest.raises(ImportFormatError) as error:
        import_path(store, twin.id, path)

    assert str(error.value).startswith(f"{named}: {location}: ") and problem in error.value.problem
    assert str(empty_store.value) == str(error.value)
    assert store.count(twin.id) == 3 and store.index.count() == 3


SKIPPABLE = [
    pytest.param(JSONL / "bad_line.jsonl", 3, ["line 3"], id="jsonl-json"),
    pytest.param(JSONL / "missing_timestamp.jsonl", 2, ["line 2"], id="jsonl-timestamp"),
    pytest.param(TELEGRAM / "missing_date", 2, ["messages[1]"], id="telegram-date"),
    pytest.param(SLACK / "not_a_list", 1, ["general/2024-01-03.json"], id="slack-day"),
    pytest.param(NOTES / "broken", 1, ["latin1.txt"], id="notes-encoding"),
]


@pytest.mark.parametrize(("path", "added", "locations"), SKIPPABLE)
def test_skip_invalid_reports_rejects_and_imports_the_rest(
    store: MemoryStore, twin: Twin, path: Path, added: int, locations: list[str]
) -> None:
    report = import_path(store, twin.id, path, skip_invalid=True)

    assert [rejected.location for rejected in report.rejected] == locations
    assert report.added == added and store.count(twin.id) == added


def test_a_file_that_cannot_be_parsed_raises_even_when_skipping(
    store: MemoryStore, twin: Twin, tmp_path: Path
) -> None:
    not_a_zip = tmp_path / "export.zip"
    not_a_zip.write_bytes(b"PK\x03\x04 but not really a zip")

    with pytest.raises(ImportFormatError, match=r"broken_json/result\.json: line 18: invalid JSON"):
        import_path(store, twin.id, TELEGRAM / "broken_json", skip_invalid=True)
    with pytest.raises(ImportFormatError, match=r"export\.zip: file: not a Slack export"):
        import_path(store, twin.id, not_a_zip, format="slack", skip_invalid=True)
    assert store.count(twin.id) == 0


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("telegram/single", "telegram"),
        ("telegram/full/result.json", "telegram"),
        ("slack/export", "slack"),
        ("jsonl/messages.jsonl", "jsonl"),
        ("notes/vault", "notes"),
        ("notes/vault/ideas.md", "notes"),
        ("notes/vault/todo.txt", "notes"),
    ],
)
def test_exactly_one_format_recognises_each_export(relative: str, expected: str) -> None:
    path = FIXTURES / relative

    assert [name for name, importer in registry().items() if importer.detect(path)] == [expected]
    assert detect_format(path).name == expected


def test_a_slack_zip_is_detected(slack_zip: Path) -> None:
    assert [name for name, importer in registry().items() if importer.detect(slack_zip)] == ["slack"]


def test_unknown_files_are_not_detected(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text("[1, 2, 3]")  # named like a Telegram export, shaped like nothing
    zip_folder(NOTES / "vault", tmp_path / "data.zip")  # a zip, but of notes, not of a Slack export

    for path in (tmp_path / "result.json", tmp_path / "data.zip", tmp_path):
        with pytest.raises(ImportFormatError, match="pass --format"):
            detect_format(path)


def test_explicit_visibility_overrides_the_file_and_the_default(store: MemoryStore, twin: Twin) -> None:
    import_path(store, twin.id, TELEGRAM / "single")
    import_path(store, twin.id, JSONL / "messages.jsonl", visibility=Visibility.public)
    import_path(store, twin.id, SLACK / "export", visibility=Visibility.contacts)

    assert {row.visibility for row in stored(store, twin, "telegram").values()} == {Visibility.private}
    jsonl = stored(store, twin, "jsonl")
    assert set(jsonl) == {"family/m1", "family/m2", "work/m3"}
    assert {row.visibility for row in jsonl.values()} == {Visibility.public}  # m2 said contacts
    assert {row.visibility for row in stored(store, twin, "slack").values()} == {Visibility.contacts}


@pytest.mark.parametrize(
    ("query", "source_id"),
    [
        ("are we still on for the hike on Saturday", "4815162342:101"),
        ("who has the punch card specification", "C01GENERAL:1704295800.000400"),
        ("we saw a red deer with her calf crossing the stream", None),
    ],
)
def test_imported_items_are_searchable(
    store: MemoryStore, twin: Twin, searcher: HybridSearcher, vault: Path, query: str, source_id: str | None
) -> None:
    for path in (TELEGRAM / "single", SLACK / "export", vault):
        import_path(store, twin.id, path)

    [best] = searcher.search(query, SearchScope(twin_id=twin.id), k=1)

    if source_id is None:  # the note chunk: its id is a hash, so find it by what it says
        assert best.item.chat == "notes:trips/hiking.md" and "red deer hind" in best.item.text
    else:
        assert best.item.source_id == source_id


def test_deeply_nested_note_fits_the_columns(store: MemoryStore, twin: Twin, tmp_path: Path) -> None:
    """A note path longer than the chat column (255) is shortened stably, on PostgreSQL too."""
    folder = tmp_path / "vault"
    deep = folder.joinpath(*[f"folder-with-a-long-name-{level:02d}" for level in range(12)])
    deep.mkdir(parents=True)
    (deep / "plan.md").write_text("# Plan\n\nRenew the passport before the Lisbon trip.\n", encoding="utf-8")

    first = import_path(store, twin.id, folder, format="notes")
    again = import_path(store, twin.id, folder, format="notes")

    assert (first.added, again.added, again.duplicates) == (1, 0, 1)
    [row] = store.get(first_ids(store, twin.id)).values()
    assert len(row.chat) <= 255 and row.chat.endswith("plan.md")
    assert len(row.source_id) <= 512


def first_ids(store: MemoryStore, twin_id: int) -> list[int]:
    with Session(store.engine) as session:
        return list(session.exec(select(L0Item.id).where(L0Item.twin_id == twin_id)))


def test_telegram_full_export_marks_its_owner_as_the_sender_of_outbound(store: MemoryStore, twin: Twin) -> None:
    import_path(store, twin.id, TELEGRAM / "full" / "result.json")
    rows = stored(store, twin, "telegram")
    owner = store.owner(twin.id).id
    assert {sid for sid, row in rows.items() if row.direction == "out"} == {
        sid for sid, row in rows.items() if row.raw.get("from_id") == "user111"
    } != set()
    assert all(row.sender_id == owner for row in rows.values() if row.direction == "out")
