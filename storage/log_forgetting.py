"""Forgetting in the log files: every line under the logs folder that holds the forgotten text goes.

A model's error, a warning quoting a message, or a crash's traceback can carry what the owner forgets into
`<data_dir>/logs/` (the twin's rotating log and the local vLLM's). A layer of the Forgetter: the lines that hold
the text, case-insensitively in any script (as the database layers match), are dropped and the rest kept byte
for byte. A file is rewritten into a temporary file beside it and put in place with one rename, so a crash
leaves the old file or the new one, never half of either. The live `vllm.log` is the exception: the model
server appends to it through a handle it cannot reopen, so it is rewritten in place (its handle appends at the
new end); the twin's own handlers reopen a log another process replaced (twin.logs)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import Engine, select
from sqlmodel import Session

from storage.forget import ForgetQuery
from storage.models import L0Item

HELD_OPEN = ("vllm.log",)  # appended to by a server process that does not reopen it: rewritten in place
MIN_NEEDLE = 3  # as ForgetQuery: shorter texts would strike unrelated lines


class LogForgetting:
    """Log lines that must go with what the owner forgets."""

    name = "log lines"

    def __init__(self, logs_dir: Path, engine: Engine, also: Sequence[Path] = ()) -> None:
        self.logs_dir = logs_dir
        self.engine = engine
        self.also = list(also)  # other files of lines, such as the console's history

    def find(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[str]:
        """Where the matching lines are: file and line number (not the line, which may quote far more)."""
        needles = self._needles(twin_id, query, l0_ids)
        return [f"{path.name} line {number}" for path in self._files()
                for number, line in enumerate(_lines(path), start=1) if _holds(line, needles)]

    def remove(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> int:
        """Drop the matching lines from every log file; returns how many lines went."""
        needles = self._needles(twin_id, query, l0_ids)
        return sum(scrub(path, needles) for path in self._files()) if needles else 0

    def _files(self) -> list[Path]:
        logs = sorted(self.logs_dir.rglob("*")) if self.logs_dir.is_dir() else []
        return [path for path in [*logs, *self.also] if path.is_file() and not path.is_symlink()]

    def _needles(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[str]:
        """The forgotten words, or (a forget by id, chat or date) the texts of the forgotten items."""
        if query.text:
            return [query.text.strip().casefold()]
        if not l0_ids:
            return []
        with Session(self.engine) as session:
            texts = session.scalars(select(L0Item.text).where(L0Item.twin_id == twin_id, L0Item.id.in_(l0_ids)))
            return sorted({text.strip().casefold() for text in texts if len(text.strip()) >= MIN_NEEDLE})


def scrub(path: Path, needles: list[str]) -> int:
    """Rewrite the file without the lines holding any needle; returns how many lines went."""
    lines = list(_lines(path))
    kept = [line for line in lines if not _holds(line, needles)]
    if len(kept) == len(lines):
        return 0
    data = b"".join(kept)
    if path.name in HELD_OPEN:
        _rewrite_in_place(path, data)
    else:
        _replace_atomically(path, data)
    return len(lines) - len(kept)


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as file:
            yield from file
    except FileNotFoundError:  # rotated away meanwhile
        return


def _holds(line: bytes, needles: list[str]) -> bool:
    text = line.decode("utf-8", errors="replace").casefold()
    return any(needle in text for needle in needles)


def _replace_atomically(path: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _rewrite_in_place(path: Path, data: bytes) -> None:
    with path.open("r+b") as file:
        file.write(data)
        file.truncate()
        file.flush()
        os.fsync(file.fileno())
