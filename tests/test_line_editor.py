"""The console in a terminal edits lines, keeps a history under the data dir (scrubbed by a forget) and completes
`/` commands with Tab; piped input is read as before (tests/test_live_reply.py)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_live_reply import ROOT, _environment, _read_until, leave
from typer.testing import CliRunner

from core.commands import COMMANDS
from twin.cli import app
from twin.cli.line_editor import command_words, completions_for
from twin.testing import RecordingLLM

UP = b"\x1b[A"


def test_tab_completes_only_a_first_word_that_starts_with_a_slash() -> None:
    words = command_words(spec.name for spec in COMMANDS)
    assert completions_for("/rem", words) == ["/remember"]
    assert "/help" in completions_for("/", words)
    assert completions_for("/remember that", words) == [] and completions_for("rem", words) == []


def _session(keys: list[list[bytes]], until: list[str]) -> str:
    """A `twin chat` in a terminal: each line's keys typed (a person's pauses between them) once the previous
    text showed; everything the terminal showed."""
    pytest.importorskip("prompt_toolkit")
    leader, follower = pty.openpty()
    twin = subprocess.Popen([sys.executable, "-m", "twin.cli", "chat"], env=_environment(), cwd=ROOT,
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    seen: list[tuple[float, str]] = []
    try:
        _read_until(leader, "Ctrl-D", 120, seen)
        for line, wanted in zip(keys, until, strict=True):
            for typed in line:
                os.write(leader, typed)
                time.sleep(0.5)  # completion runs in the background: a person's pause
            _read_until(leader, wanted, 60, seen)
        leave(twin, leader)
    finally:
        if twin.poll() is None:
            twin.kill()
        os.close(leader)
    assert twin.returncode == 0
    return "".join(chunk for _, chunk in seen)


def test_history_and_completion_in_a_terminal(llm: RecordingLLM, twin_env: Path) -> None:
    shown = _session([[b"/he", b"\t", b"\r"], [b"my locker code is Quillsage\r"]], ["/remember", "Quillsage"])
    assert "/forget" in shown  # Tab made "/he" the /help command, which listed the commands
    history = twin_env / "console_history"
    assert "/help" in history.read_text() and "Quillsage" in history.read_text()

    asked = len(llm.requests)
    _session([[UP, b"\r"]], ["Quillsage"])  # a new session: Up brings back the last line
    assert len(llm.requests) > asked
    assert llm.requests[-1]["messages"][-1]["content"].endswith("my locker code is Quillsage")

    forgotten = CliRunner().invoke(app, ["forget", "Quillsage", "--yes", "--json"])
    assert forgotten.exit_code == 0, forgotten.output
    assert json.loads(forgotten.stdout)["log lines"] >= 1
    assert "Quillsage" not in history.read_text() and "/help" in history.read_text()
