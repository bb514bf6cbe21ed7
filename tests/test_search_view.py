"""`twin search` shows what people said (not the twin's replies or /commands, unless --all) and chat titles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app

ROWS = [{"id": 1, "chat": "c-77", "chat_title": "Family trip", "sender": "Bob",
         "text": "We should book the ferry to Hydra for June", "timestamp": "2024-03-01T09:05:00Z"}]


@pytest.fixture
def runner(twin_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "400")
    runner = CliRunner()
    source = tmp_path / "h.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    assert runner.invoke(app, ["import", str(source)]).exit_code == 0
    # the recording model answers with its prompt: the twin's reply quotes the ferry message
    said = "when is the ferry to Hydra?\n/remember the ferry to Hydra leaves at 9\n"
    result = runner.invoke(app, ["chat"], input=said)
    assert result.exit_code == 0, result.output
    return runner


def found(runner: CliRunner, *extra: str) -> list[dict]:
    result = runner.invoke(app, ["search", "ferry to Hydra", "--k", "10", "--layer", "l0", "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_search_hides_the_twins_replies_and_commands_unless_all(runner: CliRunner) -> None:
    shown = found(runner)
    assert {hit["kind"] for hit in shown} == {"message"}
    assert not any(hit["text"].startswith("/") for hit in shown)
    assert {hit["text"] for hit in shown} == {ROWS[0]["text"], "when is the ferry to Hydra?"}
    everything = found(runner, "--all")
    assert "reply" in {hit["kind"] for hit in everything}
    assert any(hit["text"].startswith("/remember") for hit in everything)


def test_search_shows_the_chat_title(runner: CliRunner) -> None:
    [hit] = [hit for hit in found(runner) if hit["sender"] == "Bob"]
    assert hit["chat_title"] == "Family trip" and hit["chat"] == "c-77"
    table = runner.invoke(app, ["search", "ferry to Hydra"]).stdout
    assert "Family trip (c-77)" in table
