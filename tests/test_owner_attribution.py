"""The owner is never a stranger: a full export names its owner, an unknown owner is said at the end of the
import with the fix, and a later `--me` or `twin people link owner` makes the stored messages the owner's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.l1 import CURSOR
from storage.database import create_database_engine
from storage.facts import FactStore
from twin.cli import app
from twin.settings import Settings

MESSAGES = [
    {"id": 1, "type": "message", "date": "2024-03-01T09:00:00", "date_unixtime": "1709283600",
     "from": "Ada Lovelace", "from_id": "user111", "text": "I booked the ferry to Hydra for June"},
    {"id": 2, "type": "message", "date": "2024-03-01T09:01:00", "date_unixtime": "1709283660",
     "from": "Bob", "from_id": "user222", "text": "Great, I will bring the tent"},
]


@pytest.fixture
def runner(twin_env: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "400")
    return CliRunner()


def single_chat(folder: Path) -> Path:
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps({"name": "Bob", "type": "personal_chat", "id": 4242,
                                                    "messages": MESSAGES}), encoding="utf-8")
    return folder


def directions(runner: CliRunner) -> dict[str, str]:
    found = json.loads(runner.invoke(app, ["search", "ferry Hydra tent", "--k", "5", "--json"]).stdout)
    return {hit["sender"]: hit["direction"] for hit in found}


def people(runner: CliRunner) -> list[dict]:
    return json.loads(runner.invoke(app, ["people", "list", "--json"]).stdout)


def test_an_import_without_the_owner_says_so_and_a_later_me_repairs_it(runner: CliRunner, tmp_path: Path) -> None:
    export = single_chat(tmp_path / "chat")
    first = runner.invoke(app, ["import", str(export)])
    assert first.exit_code == 0, first.output
    assert "none of the senders in this file is known as you" in first.stderr
    assert "--me ID" in first.stderr and "twin people link owner telegram:ID" in first.stderr
    assert "user111 (Ada Lovelace)" in first.stderr
    assert directions(runner) == {"Ada Lovelace": "in", "Bob": "in"}

    again = runner.invoke(app, ["import", str(export), "--me", "user111"])
    assert again.exit_code == 0, again.output
    assert "1 messages already stored are now marked as yours" in again.stderr
    assert "none of the senders" not in again.stderr
    assert directions(runner) == {"Ada Lovelace": "out", "Bob": "in"}
    listed = people(runner)
    assert [p["name"] for p in listed if p["trust"] == "stranger"] == ["Bob"]  # no empty stranger left behind
    owner = next(p for p in listed if p["trust"] == "owner")
    assert "telegram:user111" in owner["accounts"]


def test_people_link_owner_repairs_stored_messages_and_has_them_read_again(
    runner: CliRunner, tmp_path: Path, twin_env: Path
) -> None:
    assert runner.invoke(app, ["import", str(single_chat(tmp_path / "chat"))]).exit_code == 0
    engine = create_database_engine(Settings().resolved_database_url)
    facts = FactStore(engine)
    twin_id = 1
    facts.set_cursor(twin_id, CURSOR, 2)  # the extraction read both as someone else's words

    linked = runner.invoke(app, ["people", "link", "owner", "telegram:111"])  # the Bot API id; the export: user111
    assert linked.exit_code == 0, linked.output
    assert "1 messages already stored are now marked as yours" in linked.stdout
    assert directions(runner) == {"Ada Lovelace": "out", "Bob": "in"}
    assert facts.cursor(twin_id, CURSOR) == 0  # read again, now as the owner's words
    engine.dispose()


def test_a_full_export_names_its_owner(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "full"
    folder.mkdir()
    export = {"personal_information": {"user_id": 111, "first_name": "Ada"},
              "chats": {"about": "", "list": [{"name": "Bob", "type": "personal_chat", "id": 4242,
                                               "messages": MESSAGES}]}}
    (folder / "result.json").write_text(json.dumps(export), encoding="utf-8")
    result = runner.invoke(app, ["import", str(folder)])
    assert result.exit_code == 0, result.output
    assert "none of the senders" not in result.stderr
    assert directions(runner) == {"Ada Lovelace": "out", "Bob": "in"}


def test_the_console_owner_is_listed_once(runner: CliRunner) -> None:
    assert runner.invoke(app, ["ask", "hello"]).exit_code == 0
    listed = people(runner)
    owners = [p for p in listed if p["trust"] == "owner"]
    assert len(owners) == 1 and "console:@owner" in owners[0]["accounts"]
    assert not any("console:@owner" in p["accounts"] for p in listed if p["trust"] != "owner")
    assert [p["name"] for p in listed if p["name"] == "Ada"] == ["Ada"]
