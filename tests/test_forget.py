"""Forgetting is complete: rows, vectors, neighbours' index context, disk bytes; a tombstone blocks re-imports."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bots.console import CONSOLE, CONSOLE_OWNER_ID
from core.messages import InboundMessage
from twin.app import open_twin
from twin.cli import app
from twin.conversation import open_pipeline
from twin.settings import Settings

SECRET = "Quixotrand"  # a word that exists nowhere else, so every byte of it can be searched for
MESSAGES = [
    {"id": 1, "chat": "family", "sender": "Ada", "text": "Did anyone water the tomatoes?",
     "timestamp": "2024-03-01T09:00:00Z"},
    {"id": 2, "chat": "family", "sender": "Ada", "text": f"The vault combination is {SECRET}-7781, keep it safe",
     "timestamp": "2024-03-01T09:01:00Z"},
    {"id": 3, "chat": "family", "sender": "Bob", "text": "Got it, thanks a lot", "timestamp": "2024-03-01T09:02:00Z"},
    {"id": 4, "chat": "family", "sender": "Bob", "text": "Tomatoes are watered", "timestamp": "2024-03-01T09:03:00Z"},
    {"id": 1, "chat": "work", "sender": "Cleo", "text": "The quarterly report draft is in the shared folder",
     "timestamp": "2024-03-02T14:00:00Z"},
]


@pytest.fixture
def data_dir(twin_env: Path) -> Path:
    """The data dir `twin` commands use here (the recording model answers)."""
    return twin_env


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def files_containing(folder: Path, needle: bytes) -> list[str]:
    """Every file under the folder holding the bytes (SQLite file, WAL, vector segments, logs...)."""
    return [str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file() and needle in f.read_bytes()]


def lexical_hits(runner: CliRunner, query: str) -> list[dict]:
    result = runner.invoke(app, ["search", query, "--mode", "lexical", "--json", "--all"])  # replies too
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def say(texts: list[tuple[str, str]]) -> list:
    """Messages through the pipeline as (sender id, text), in one chat per sender; the replies."""
    async def go() -> list:
        with open_twin(Settings()) as twin:
            async with open_pipeline(twin, twin.settings.llm_url) as pipeline:
                replies = []
                for sender, text in texts:
                    message = InboundMessage(platform=CONSOLE, message_id=uuid.uuid4().hex, chat_id=f"chat-{sender}",
                                             sender_id=sender, sender_name=sender, text=text)
                    replies.append(await pipeline.handle(message))
                return replies

    return asyncio.run(go())


def test_forget_removes_every_trace_and_blocks_reimport(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    source = write_jsonl(tmp_path / "history.jsonl", MESSAGES)
    assert runner.invoke(app, ["import", str(source)]).exit_code == 0
    say([(CONSOLE_OWNER_ID, f"what is the vault combination, the {SECRET} one?")])  # a message and a reply quoting it
    assert len(lexical_hits(runner, SECRET)) >= 3  # the item, the chat turns after it, the live exchange
    stats_before = json.loads(runner.invoke(app, ["stats", "--json"]).stdout)

    preview = runner.invoke(app, ["forget", SECRET])  # no terminal and no --yes: shows, removes nothing
    assert preview.exit_code == 1 and "--yes" in preview.output and "3 messages or notes" in preview.output
    result = runner.invoke(app, ["forget", SECRET, "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == 3  # the note, the question, the reply quoting it

    assert lexical_hits(runner, SECRET) == []  # neighbours were re-indexed without the forgotten context
    assert files_containing(data_dir, SECRET.encode()) == []
    stats = json.loads(runner.invoke(app, ["stats", "--json"]).stdout)
    assert stats["l0"]["total"] == stats_before["l0"]["total"] - 3
    assert stats["vectors"]["points"] == stats["l0"]["total"]
    again = json.loads(runner.invoke(app, ["import", str(source), "--json"]).stdout)
    assert again == again | {"added": 0, "duplicates": 4, "forgotten": 1}
    copied = write_jsonl(tmp_path / "copy.jsonl", [MESSAGES[1] | {"id": 99, "chat": "elsewhere"}])
    assert json.loads(runner.invoke(app, ["import", str(copied), "--json"]).stdout)["forgotten"] == 1
    assert files_containing(data_dir, SECRET.encode()) == []


def test_forget_in_chat_needs_the_owner_and_a_confirmation(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(write_jsonl(tmp_path / "h.jsonl", MESSAGES))]).exit_code == 0
    refused, = say([("eve", f"/forget {SECRET}")])
    assert refused.text == "Only Ada can use /forget."
    plan, cancelled = say([(CONSOLE_OWNER_ID, f"/forget {SECRET}"), (CONSOLE_OWNER_ID, "/forget no")])
    assert "Send /forget yes" in plan.text and SECRET in plan.text
    assert cancelled.text == "Nothing was forgotten."
    assert len(lexical_hits(runner, SECRET)) >= 1
    plan, done = say([(CONSOLE_OWNER_ID, f"/forget {SECRET}"), (CONSOLE_OWNER_ID, "/forget yes")])
    assert done.text.startswith("Forgotten: ")
    assert lexical_hits(runner, SECRET) == []
    assert files_containing(data_dir, SECRET.encode()) == []  # the commands and the plan that quoted it went too


def test_forget_by_chat_and_date_keeps_everything_else(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(write_jsonl(tmp_path / "h.jsonl", MESSAGES))]).exit_code == 0
    result = runner.invoke(app, ["forget", "--chat", "family", "--before", "2024-03-01T09:02:00Z", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == 2
    remaining = {hit["text"] for hit in lexical_hits(runner, "tomatoes watered thanks quarterly")}
    assert remaining == {"Got it, thanks a lot", "Tomatoes are watered",
                         "The quarterly report draft is in the shared folder"}
    assert runner.invoke(app, ["forget", "--yes"]).exit_code == 2  # nothing named: refused, nothing removed


def test_forget_matches_any_script_in_any_case_and_inside_raw_payloads(store, twin) -> None:  # noqa: ANN001
    from datetime import UTC, datetime

    from storage.facts import FactStore, NewFact
    from storage.forget import ForgetQuery, L0Forgetting
    from storage.items import NewItem
    from storage.l1_forgetting import L1Forgetting

    at = datetime(2024, 3, 1, tzinfo=UTC)
    store.add(twin.id, [
        NewItem(source="t", source_id="1", chat="c", sender="Ada", text="Termin bei Frau ÖZTÜRK-MÜLLER am Montag",
                occurred_at=at),
        NewItem(source="t", source_id="2", chat="c", sender="Ada", text="[photo]", occurred_at=at,
                raw={"caption": "Ærøskøbing harbour at dawn"}),
        NewItem(source="t", source_id="3", chat="c", sender="Ada", text="Lunch with Bob", occurred_at=at),
    ])
    FactStore(store.engine).add(twin.id, NewFact("Ada sees Öztürk-Müller every Monday"))
    l0, l1 = L0Forgetting(store), L1Forgetting(store.engine)
    raw_match = [item.source_id for item in l0.find(twin.id, ForgetQuery(text="Ærøskøbing"))]
    assert raw_match == ["2"]  # stored as UTF-8 text, not \u escapes, so the words are found where they are
    if store.engine.dialect.name == "sqlite":  # PostgreSQL folds by its locale: the test cluster's is C
        query = ForgetQuery(text="öztürk-müller")
        assert [item.source_id for item in l0.find(twin.id, query)] == ["1"]
        assert len(l1.find(twin.id, query, set())) == 1


def test_forget_reindexes_every_message_that_held_its_words_past_the_twins_replies(store, twin) -> None:  # noqa: ANN001
    from datetime import UTC, datetime, timedelta

    from storage.forget import ForgetQuery, L0Forgetting
    from storage.items import NewItem
    from storage.models import ItemKind
    from storage.search import HybridSearcher, SearchScope

    at = datetime(2024, 3, 1, tzinfo=UTC)
    lines = [("a", "Bea", "my locker code is Zyqvorth", ItemKind.message), ("a:reply", "twin", "Noted", ItemKind.reply),
             ("b", "Bea", "thanks", ItemKind.message), ("b:reply", "twin", "Anytime", ItemKind.reply),
             ("c", "Bea", "see you tomorrow", ItemKind.message)]
    store.add(twin.id, [
        NewItem(source="t", source_id=sid, chat="c", sender=who, text=text, kind=kind,
                occurred_at=at + timedelta(minutes=n))
        for n, (sid, who, text, kind) in enumerate(lines)
    ])
    searcher = HybridSearcher(store)
    held = {r.item.source_id for r in searcher.search("Zyqvorth", SearchScope(twin.id), mode="lexical")}
    assert held == {"a", "b", "c"}  # b and c carry it as an earlier turn, across the twin's replies
    forgetting = L0Forgetting(store)
    forgetting.remove(twin.id, forgetting.find(twin.id, ForgetQuery(text="Zyqvorth")))
    assert searcher.search("Zyqvorth", SearchScope(twin.id), mode="lexical") == []
