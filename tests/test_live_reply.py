"""Replies show life: in a terminal the console says the twin is thinking and shows the answer while the model
is still writing it; piped, it prints only the finished reply."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from twin.testing import RecordingLLM

ROOT = Path(__file__).parents[1]
ANSWER = "Tomatoes want water early in the morning, before the sun is high, twice a week in summer."


def _environment() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}


def _read_until(fd: int, wanted: str, timeout: float, seen: list[tuple[float, str]], times: int = 1) -> None:
    """Read the terminal, noting when each chunk arrived, until `wanted` was shown `times` times or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and "".join(chunk for _, chunk in seen).count(wanted) < times:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen.append((time.monotonic(), os.read(fd, 65536).decode(errors="replace")))
            except OSError:  # the process closed the terminal
                return


def leave(twin: subprocess.Popen, fd: int, timeout: float = 60) -> None:
    """Ctrl-D until the console exits (one pressed while the answer is still drawn may not reach the prompt)."""
    deadline = time.monotonic() + timeout
    while twin.poll() is None and time.monotonic() < deadline:
        os.write(fd, b"\x04")
        try:
            twin.wait(timeout=2)
        except subprocess.TimeoutExpired:
            continue


def _first_seen(seen: list[tuple[float, str]], text: str) -> float:
    shown = ""
    for moment, chunk in seen:
        shown += chunk
        if text in shown:
            return moment
    raise AssertionError(f"{text!r} never shown; the terminal got {shown!r}")


def test_the_console_shows_the_answer_while_it_is_written(llm: RecordingLLM, twin_env: Path) -> None:
    llm.word_delay = 0.25  # 17 words: about 4 s of writing
    llm.script.append(ANSWER)
    leader, follower = pty.openpty()
    twin = subprocess.Popen([sys.executable, "-m", "twin.cli", "chat"], env=_environment(), cwd=ROOT,
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    seen: list[tuple[float, str]] = []
    try:
        _read_until(leader, "Ctrl-D", 120, seen)  # the banner: ready
        os.write(leader, b"how should I water the tomatoes?\r")
        _read_until(leader, "twice a week in summer.", 60, seen)
        leave(twin, leader)
    finally:
        if twin.poll() is None:
            twin.kill()
        os.close(leader)
    assert llm.requests[-1].get("stream") is True
    assert _first_seen(seen, "thinking") < llm.stream_ended[0]
    assert _first_seen(seen, "Tomatoes want water") < llm.stream_ended[0] - 1.0  # shown while still being written
    assert twin.returncode == 0


def test_piped_input_gets_the_finished_reply_only(llm: RecordingLLM, twin_env: Path) -> None:
    llm.script.append(ANSWER)
    result = subprocess.run([sys.executable, "-m", "twin.cli", "chat"], input="how should I water them?\n",
                            env=_environment(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert ANSWER in result.stdout and "thinking" not in result.stdout
    assert not llm.requests[-1].get("stream")
