"""Logs go to <data_dir>/logs/twin.log, never into the console conversation, and to the terminal with --verbose."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.testing import Fault, RecordingLLM

WARNING_TEXT = "unusable model output"  # core.pipeline logs it when the model answers with something not JSON


@pytest.fixture
def runner(twin_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("TWIN_LLM_RETRIES", "1")
    yield CliRunner()
    for handler in list(logging.getLogger().handlers):  # the file handler of this test's data dir
        if handler.get_name() in ("twin-file", "twin-terminal"):
            logging.getLogger().removeHandler(handler)
            handler.close()


def _broken_answer(llm: RecordingLLM) -> None:
    llm.script.append(Fault(status=200, body="this is not JSON"))


def test_a_warning_goes_to_the_log_file_not_into_the_conversation(llm: RecordingLLM, twin_env: Path) -> None:
    """A real process (pytest's own log capture would hide Python's print-to-stderr fallback)."""
    _broken_answer(llm)
    environment = {**os.environ, "TWIN_LLM_RETRIES": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-m", "twin.cli", "chat"], input="hello there\n", env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "model" in result.stdout  # the twin answered (saying the model's answer was unusable)
    assert WARNING_TEXT not in result.stdout + result.stderr
    log_file = twin_env / "logs" / "twin.log"
    assert f"WARNING core.pipeline: {WARNING_TEXT}" in log_file.read_text(encoding="utf-8")


def test_verbose_logs_to_the_terminal_too(runner: CliRunner, llm: RecordingLLM, twin_env: Path) -> None:
    _broken_answer(llm)
    result = runner.invoke(app, ["--verbose", "chat"], input="hello there\n")
    assert result.exit_code == 0, result.output
    assert WARNING_TEXT in result.stderr
    assert WARNING_TEXT in (twin_env / "logs" / "twin.log").read_text(encoding="utf-8")
    quiet = runner.invoke(app, ["stats"])  # the next command without --verbose is quiet again
    logging.getLogger("core.pipeline").warning("after the verbose run")
    assert quiet.exit_code == 0 and "after the verbose run" not in quiet.output
