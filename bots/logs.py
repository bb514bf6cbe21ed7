"""Secrets kept out of logs: the Bot API puts the token in every URL, and libraries log URLs."""

from __future__ import annotations

import logging
import threading

MASK = "<token>"
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def redact_in_logs(secret: str) -> None:
    """From now on no log record of this process shows the secret, whichever library logs it."""
    global _installed
    with _lock:
        _secrets.add(secret)
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            return redacted(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True


def redacted(record: logging.LogRecord) -> logging.LogRecord:
    """The record with every registered secret in its message masked."""
    try:
        text = record.getMessage()
    except (TypeError, ValueError):  # a malformed record: logging reports it itself
        return record
    if any(secret in text for secret in _secrets):
        for secret in _secrets:
            text = text.replace(secret, MASK)
        record.msg, record.args = text, None
    return record
