"""Text from people, models and memory is printed as written by every command: never Rich markup, never emoji codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.testing import RecordingLLM

MARKUP_LIKE = "closing [/b] early, [public] tag, [bold red]loud[/bold red] and :fire: here"


@pytest.fixture
def runner(twin_env: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: table cells are not wrapped across lines
    return CliRunner()


def test_a_fact_with_markup_is_listed_as_written(runner: CliRunner) -> None:
    assert runner.invoke(app, ["remember", f"Ada says {MARKUP_LIKE}", "--visibility", "public"]).exit_code == 0
    listed = runner.invoke(app, ["facts"])
    assert listed.exit_code == 0, listed.output
    assert f"Ada says {MARKUP_LIKE}" in listed.stdout
    assert "🔥" not in listed.stdout


def test_help_facts_and_a_reply_in_the_console_are_text(runner: CliRunner, llm: RecordingLLM) -> None:
    runner.invoke(app, ["remember", MARKUP_LIKE, "--visibility", "public"])
    llm.script.append(f"My reply: {MARKUP_LIKE} [/]")
    result = runner.invoke(app, ["chat"], input="/help\n/facts\nsay something\n")
    assert result.exit_code == 0, result.output
    assert "/remember [private:|contacts:|public:] TEXT" in result.stdout
    assert f"[public] {MARKUP_LIKE}" in result.stdout  # the /facts line keeps its visibility tag
    assert f"My reply: {MARKUP_LIKE} [/]" in result.stdout


def test_ask_prints_a_reply_with_markup_as_written(runner: CliRunner, llm: RecordingLLM) -> None:
    llm.script.append(f"[/b]{MARKUP_LIKE}")
    result = runner.invoke(app, ["ask", "hello"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"[/b]{MARKUP_LIKE}"


def test_search_and_people_show_markup_like_messages_as_written(runner: CliRunner, tmp_path: Path) -> None:
    rows = [{"id": 1, "chat": "[/b]crew", "sender": "[bold]Zed[/bold]", "text": f"hazelnut talk {MARKUP_LIKE}",
             "timestamp": "2024-03-01T09:00:00Z"}]
    source = tmp_path / "h.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    assert runner.invoke(app, ["import", str(source)]).exit_code == 0

    found = runner.invoke(app, ["search", "hazelnut talk"])
    assert found.exit_code == 0, found.output
    assert f"hazelnut talk {MARKUP_LIKE}" in found.stdout and "[/b]crew" in found.stdout
    people = runner.invoke(app, ["people", "list"])
    assert people.exit_code == 0, people.output
    assert "[bold]Zed[/bold]" in people.stdout
