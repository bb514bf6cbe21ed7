"""Secrets kept out of logs: the Bot API puts the token in every URL, and libraries log URLs."""

from __future__ import annotations

import logging
import re
import threading

MASK = "<token>"
# Tokens logged before anyone could register them: nio logs the login response (with the new access token) at
# DEBUG before it returns. Any value under these keys, in a dict repr, JSON or a URL query, is masked.
TOKEN_FIELD = re.compile(r"""(['"]?\b(?:access_token|refresh_token)['"]?\s*[:=]\s*['"]?)([^'"&\s,}]+)""")
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
    masked = text
    if any(secret in masked for secret in _secrets):
        for secret in _secrets:
            masked = masked.replace(secret, MASK)
    if "_token" in masked:
        masked = TOKEN_FIELD.sub(lambda match: match.group(1) + MASK, masked)
    if masked != text:
        record.msg, record.args = masked, None
    return record
