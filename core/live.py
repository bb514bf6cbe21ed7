"""Replies as they are written: a channel that can show a reply while the model writes it listens here.

The console sets a listener around one message's handling; the responder, when one is set, streams the model's
answer and hands it each piece of text as it arrives. The reply that is stored and sent is still the whole,
guarded text: the pieces are only for showing progress. A context variable, so that concurrent messages (other
chats, other platforms) never see each other's listener."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Listener = Callable[[str], None]  # called with each piece of text the model writes

_listener: ContextVar[Listener | None] = ContextVar("reply_listener", default=None)


@contextmanager
def streaming_to(listener: Listener) -> Iterator[None]:
    """Within the block, a reply being written is handed to `listener` piece by piece."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def reply_listener() -> Listener | None:
    """Who wants the reply being written now, if anyone."""
    return _listener.get()
