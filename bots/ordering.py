"""Arrival order per chat, with each message stored before it waits its turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager


@asynccontextmanager
async def stored_then_in_turn(lock: asyncio.Lock, store: Awaitable[None]) -> AsyncIterator[None]:
    """Queue for the chat's lock at once (so turns follow arrival), store the message while waiting, then hold
    the lock for the block. Storing first means a crash while it waits cannot lose it."""
    turn = asyncio.ensure_future(lock.acquire())  # tasks start in the order they were made: arrival order
    try:
        await store
    except BaseException:
        await turn
        lock.release()
        raise
    await turn
    try:
        yield
    finally:
        lock.release()
