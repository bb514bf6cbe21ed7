"""One asyncio lock per key (a chat, a draft): work on one key runs in turn, in the order it asked."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar
from weakref import WeakValueDictionary

K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    """The lock of each key, made on first use and dropped once nobody holds it or waits for it."""

    def __init__(self) -> None:
        self._locks: WeakValueDictionary[K, asyncio.Lock] = WeakValueDictionary()

    def __call__(self, key: K) -> asyncio.Lock:
        """The key's lock (asyncio locks are handed out first come, first served)."""
        return self._locks.setdefault(key, asyncio.Lock())
