"""Forgetting reaches the log files: every line holding the text goes from twin.log, its rotated files and the
vLLM's logs, the other lines stay, and logging goes on into the rewritten file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storage.forget import ForgetQuery
from storage.log_forgetting import LogForgetting
from twin.cli import app
from twin.logs import configure_logging

SECRET = "Quixotrand"
KEPT = "2024-03-01 09:00:00 INFO core.l1: L1 extraction read 4 items\n"


@pytest.fixture
def file_logging() -> Iterator[None]:
    yield
    for handler in list(logging.getLogger().handlers):
        if handler.get_name() in ("twin-file", "twin-terminal"):
            logging.getLogger().removeHandler(handler)
            handler.close()


def _write_logs(logs: Path) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "twin.log.1").write_text(f"{KEPT}2024-03-01 WARNING core.pipeline: bad answer: {SECRET.upper()}-7781\n")
    (logs / "vllm.log").write_text(f"{KEPT}ERROR prompt was 'the vault is {SECRET.lower()}-7781'\nINFO ready\n")
    (logs / "vllm.log.1").write_bytes(b"\xff\xfe not utf-8 \n" + f"traceback: {SECRET}\n".encode())


def files_containing(folder: Path, needle: str) -> list[str]:
    """Files under the folder holding the text in any case."""
    return [str(f.relative_to(folder)) for f in folder.rglob("*")
            if f.is_file() and needle.casefold().encode() in f.read_bytes().lower()]


def test_forget_removes_every_log_line_holding_the_text(twin_env: Path, tmp_path: Path, file_logging: None) -> None:
    runner = CliRunner()
    source = tmp_path / "history.jsonl"
    source.write_text(json.dumps({"id": 1, "chat": "family", "sender": "Ada", "timestamp": "2024-03-01T09:00:00Z",
                                  "text": f"The vault combination is {SECRET}-7781"}) + "\n")
    assert runner.invoke(app, ["import", str(source)]).exit_code == 0
    logs = twin_env / "logs"
    _write_logs(logs)
    logging.getLogger("core.pipeline").warning("unusable model output: it said %s", SECRET)  # into twin.log
    assert len(files_containing(twin_env, SECRET)) >= 5  # the four log files and the database

    preview = runner.invoke(app, ["forget", SECRET])
    assert "log lines" in preview.output and "twin.log.1 line 2" in preview.output
    result = runner.invoke(app, ["forget", SECRET, "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["log lines"] == 4

    assert files_containing(twin_env, SECRET) == []
    assert (logs / "twin.log.1").read_text() == KEPT  # the other lines, byte for byte
    assert (logs / "vllm.log").read_text() == f"{KEPT}INFO ready\n"
    assert (logs / "vllm.log.1").read_bytes() == b"\xff\xfe not utf-8 \n"
    assert not [path for path in logs.iterdir() if path.name.startswith(".")]  # no temporary file left


def test_logging_goes_on_into_the_rewritten_file(tmp_path: Path, file_logging: None) -> None:
    """The handler of a twin process reopens the log a forget replaced (else its lines went to a deleted file)."""
    path = configure_logging(tmp_path / "logs")
    logging.getLogger("core.l1").warning("about %s", SECRET)
    logging.getLogger("core.l1").warning("kept line")
    removed = LogForgetting(tmp_path / "logs", engine=None).remove(1, ForgetQuery(text=SECRET.lower()), set())
    assert removed == 1
    logging.getLogger("core.l1").warning("after the forget")
    text = path.read_text()
    assert SECRET not in text and "kept line" in text and "after the forget" in text


def test_the_live_vllm_log_keeps_its_writers_handle(tmp_path: Path) -> None:
    """The model server appends through a handle opened before the forget: its next line lands in the file."""
    logs = tmp_path / "logs"
    _write_logs(logs)
    with (logs / "vllm.log").open("ab") as server_output:
        LogForgetting(logs, engine=None).remove(1, ForgetQuery(text=SECRET), set())
        server_output.write(b"INFO next request\n")
    assert (logs / "vllm.log").read_text() == f"{KEPT}INFO ready\nINFO next request\n"
