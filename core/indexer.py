"""Indexing off the reply path: the SQL row is written before anything else; its vectors follow moments later."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from storage.memory import MemoryStore

log = logging.getLogger(__name__)


class BackgroundIndexer:
    """Embeds and indexes new L0 rows in batches on a worker thread while the pipeline answers."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._pending: list[int] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one batch at a time; held by `paused()`

    async def __aenter__(self) -> BackgroundIndexer:
        self._task = asyncio.create_task(self._run(), name="twin-indexer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()

    def submit(self, ids: list[int]) -> None:
        """Queue stored items for indexing."""
        if ids:
            self._pending.extend(ids)
            self._wake.set()

    async def flush(self) -> None:
        """Index everything queued so far (at shutdown, or before a search that must see it)."""
        async with self._lock:
            await self._index_pending()

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Everything queued indexed, then no indexing until the block ends (a forget must not race a batch
        that read the chat context before the deletion)."""
        async with self._lock:
            await self._index_pending()
            yield

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            async with self._lock:
                await self._index_pending()

    async def _index_pending(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await asyncio.to_thread(self.store.index_ids, batch)
        except Exception:  # the rows are safe in SQL; sync_index at the next start indexes them
            log.exception("indexing %d new items failed; they will be indexed at the next start", len(batch))
