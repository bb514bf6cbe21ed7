"""Small process helpers for a server running in its own session: liveness, stopping, its log's tail."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

TAIL_BYTES = 64 * 1024


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: trust kill(0)
    return state not in ("Z", "X")


def command_line(pid: int) -> str | None:
    """The process's command line, or None where /proc cannot tell."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def runs_module(pid: int, module: str) -> bool:
    """Whether the live process `pid` runs `python -m module` (a recycled pid does not)."""
    if not pid_alive(pid):
        return False
    line = command_line(pid)
    return line is None or module in line


def stop_group(pid: int, *, grace_seconds: float) -> None:
    """SIGTERM the process group led by `pid`, wait up to `grace_seconds`, then SIGKILL what is left."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not _reap_or_alive(pid):
            return
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    while _reap_or_alive(pid):
        time.sleep(0.1)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)  # the server leads its own session, so its engine workers go too
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signum)


def _reap_or_alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False  # our child, and it has exited now
    except ChildProcessError:
        pass  # not our child: its own parent reaps it
    return pid_alive(pid)


def log_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - TAIL_BYTES))
            text = file.read().decode(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])
