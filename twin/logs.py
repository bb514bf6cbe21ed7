"""Where the twin's logs go: a rotating file under the data dir, and the terminal only when asked for.

Without a handler Python prints every warning to stderr, which lands in the middle of a console conversation;
so each command sends the log to `<data_dir>/logs/twin.log` and, with `twin --verbose` (or a platform run, which
has no conversation in its terminal), to stderr too."""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_FILE = "twin.log"
LOG_BYTES = 5_000_000  # per file; with the backups at most about 20 MB of logs
LOG_BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FILE_HANDLER = "twin-file"
_TERMINAL_HANDLER = "twin-terminal"
QUIET_LIBRARIES = ("httpx", "httpcore")  # a line per request (and per long poll) otherwise


class ReopeningFileHandler(RotatingFileHandler):
    """A rotating file handler that reopens its file when another process replaced or rotated it (a forget
    rewrites the log without the forgotten lines; another twin command rotates it), as WatchedFileHandler does."""

    def emit(self, record: logging.LogRecord) -> None:
        self._reopen_if_replaced()
        super().emit(record)

    def _reopen_if_replaced(self) -> None:
        if self.stream is None:
            return
        try:
            on_disk = os.stat(self.baseFilename)
        except FileNotFoundError:
            on_disk = None
        held = os.fstat(self.stream.fileno())
        if on_disk is None or (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino):
            self.stream.close()
            self.stream = None  # emit opens the file again by its name


def configure_logging(logs_dir: Path, verbose: bool = False) -> Path:
    """Log INFO and above to the rotating file (and to stderr when verbose); returns the file's path."""
    root = logging.getLogger()
    _remove(root, _FILE_HANDLER)
    logs_dir.mkdir(parents=True, exist_ok=True)
    path = logs_dir / LOG_FILE
    handler = ReopeningFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    handler.set_name(_FILE_HANDLER)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    _quiet_libraries()
    logging.captureWarnings(True)  # library warnings go to the log too, not into the conversation
    if verbose:
        log_to_terminal()
    else:
        _remove(root, _TERMINAL_HANDLER)
    return path


def log_to_terminal() -> None:
    """Also log to stderr (once, however often it is called)."""
    root = logging.getLogger()
    _remove(root, _TERMINAL_HANDLER)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_TERMINAL_HANDLER)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    _quiet_libraries()


def _quiet_libraries() -> None:
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def _remove(root: logging.Logger, name: str) -> None:
    for handler in [h for h in root.handlers if h.get_name() == name]:
        root.removeHandler(handler)
        handler.close()
