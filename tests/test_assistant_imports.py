"""ChatGPT and Claude data exports end to end on the real store: the seen branch, owner, idempotence, bad files."""

from __future__ import annotations

import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from storage.errors import ImportFormatError
from storage.importers import detect_format, import_path
from storage.memory import MemoryStore
from storage.models import L0Item, Twin

FIXTURES = Path(__file__).parent / "fixtures"
CHATGPT = FIXTURES / "chatgpt"
CLAUDE = FIXTURES / "claude"


def rows(store: MemoryStore, twin: Twin) -> list[L0Item]:
    """The twin's L0 rows in import order."""
    with Session(store.engine) as session:
        return list(session.scalars(select(L0Item).where(L0Item.twin_id == twin.id).order_by(L0Item.id)))


def zipped(folder: Path, target: Path, wrap: str = "") -> Path:
    """An export folder as the zip the service mails out."""
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, wrap + file.name)
    return target


def test_chatgpt_export_keeps_the_branch_the_person_saw(store: MemoryStore, twin: Twin) -> None:
    report = import_path(store, twin.id, CHATGPT / "export")

    items = rows(store, twin)
    assert report.format == "chatgpt" and report.added == 4
    assert [(item.sender_name, item.direction, item.text) for item in items] == [
        ("Ada", "out", "I booked the ferry to Hydra for 14 June. What should I pack for the island?"),
        ("ChatGPT", "in", "Hydra has no cars, so pack light: sandals, a sun hat and a swimsuit."),
        ("Ada", "out", "My sourdough starter is called Bubbles and it smells like nail polish. Is it dead?"),
        ("ChatGPT", "in", "Not dead, just hungry: the acetone smell means it needs feeding more often."),
    ]  # not the edited-away Aegina prompt, its answer, the hidden system turn, the tool call or its output
    assert {item.chat_title for item in items} == {"Ferry to Hydra", "Sourdough starter"}
    assert len({item.chat for item in items}) == 2
    assert items[0].occurred_at.replace(tzinfo=UTC) == datetime.fromtimestamp(1717232470.0, UTC)
    owner = store.owner(twin.id).id
    assert {item.sender_id for item in items if item.direction == "out"} == {owner}


def test_claude_export_keeps_the_branch_the_person_saw(store: MemoryStore, twin: Twin) -> None:
    report = import_path(store, twin.id, CLAUDE / "export" / "conversations.json")

    items = rows(store, twin)
    assert report.format == "claude" and report.added == 4
    assert [(item.sender_name, item.direction, item.text[:40]) for item in items] == [
        ("Ada", "out", "I'm running the Lisbon marathon on 6 Oct"),
        ("Claude", "in", "Cut your weekly distance by a third from"),
        ("Ada", "out", "My sister Ines turns 30 in December and "),
        ("Claude", "in", "A wheel-throwing class at a local studio"),
    ]  # the answer's content blocks when its text is empty; not the regenerated-away answer nor a bare file
    assert items[0].occurred_at.replace(tzinfo=UTC) == datetime(2024, 9, 3, 7, 12, 44, 991000, tzinfo=UTC)
    assert {item.chat_title for item in items} == {"Marathon training plan", "Gift for my sister"}


@pytest.mark.parametrize("export", [CHATGPT / "export", CLAUDE / "export"], ids=["chatgpt", "claude"])
def test_the_zip_reads_like_the_folder_and_reimporting_adds_nothing(
    store: MemoryStore, twin: Twin, tmp_path: Path, export: Path
) -> None:
    first = import_path(store, twin.id, export)
    archive = zipped(export, tmp_path / "export.zip", wrap="data-2024-12-01/")

    again = import_path(store, twin.id, archive)

    assert first.added == 4
    assert (again.format, again.added, again.duplicates) == (first.format, 0, 4)
    assert store.count(twin.id) == 4 and store.index.count() == 4


@pytest.mark.parametrize(
    ("export", "conversation", "problem"),
    [
        (CHATGPT, "conversation 1 (66826b00-1a2b-8004-8c3d-4e5f6a7b8c9d)", "is not in 'mapping'"),
        (CLAUDE, "conversation 1 (8e9f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b)", "'20 November' is not an ISO 8601 time"),
    ],
    ids=["chatgpt", "claude"],
)
def test_a_malformed_export_names_the_file_and_the_conversation_and_writes_nothing(
    store: MemoryStore, twin: Twin, tmp_path: Path, export: Path, conversation: str, problem: str
) -> None:
    broken = shutil.copytree(export / "broken", tmp_path / "broken")

    with pytest.raises(ImportFormatError) as raised:
        import_path(store, twin.id, broken, format=export.name)

    assert str(raised.value).startswith(f"{broken / 'conversations.json'}: {conversation}: ")
    assert problem in str(raised.value)
    assert store.count(twin.id) == 0 and store.index.count() == 0


def test_each_export_is_detected_as_its_own_format(tmp_path: Path) -> None:
    found = {
        path: detect_format(path).name
        for export in (CHATGPT / "export", CLAUDE / "export")
        for path in (export, export / "conversations.json", zipped(export, tmp_path / f"{export.parent.name}.zip"))
    }
    assert list(found.values()) == ["chatgpt"] * 3 + ["claude"] * 3
