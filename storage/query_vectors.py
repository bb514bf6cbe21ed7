"""One embedding per message, shared by the callers that need it at about the same time.

A reply embeds its message twice otherwise: L0 search and the fact ranking of the prompt (core.fact_ranking) run
side by side, and on a 2-core machine two embeddings at once each take about twice as long. The first caller
computes; a caller asking for the same text meanwhile waits for that result. A vector is kept for a few seconds
only (the callers of one message), keyed by a digest of the text: no message text is held here.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np  # only for the annotations: quick commands load no numpy (tests/test_startup_imports.py)

KEEP_SECONDS = 5.0  # long enough for the callers of one message, short enough to hold nothing for long
KEEP_AT_MOST = 32


class QueryVectors:
    """`vector(text)`: the text's embedding, computed once for callers that ask at about the same time."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], clock: Callable[[], float] = time.monotonic) -> None:
        self._embed = embed
        self._clock = clock
        self._lock = threading.Lock()
        self._done: OrderedDict[str, tuple[float, np.ndarray]] = OrderedDict()
        self._pending: dict[str, threading.Event] = {}

    def vector(self, text: str) -> np.ndarray:
        key = text_digest(text)
        while True:
            with self._lock:
                self._expire()
                if key in self._done:
                    return self._done[key][1]
                waiting = self._pending.get(key)
                if waiting is None:
                    self._pending[key] = threading.Event()
                    break
            waiting.wait()  # another caller is embedding this text; then read its result (or try again)
        try:
            vector = self._embed([text])[0]
            with self._lock:
                self._done[key] = (self._clock(), vector)
            return vector
        finally:
            with self._lock:
                self._pending.pop(key).set()

    def _expire(self) -> None:
        now = self._clock()
        while self._done:
            oldest = next(iter(self._done.values()))[0]
            if len(self._done) <= KEEP_AT_MOST and now - oldest <= KEEP_SECONDS:
                return
            self._done.popitem(last=False)


def text_digest(text: str) -> str:
    """A key for a text that holds none of it (any str: lone surrogates from a platform are encoded as they are)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
