"""Draft mode: the answer to a message sent to the owner goes to the owner first, to approve, edit or discard.

The core keeps the drafts (so forgetting reaches them), decides them once, and logs what became of each; a platform
adapter only shows them (a DraftSurface) and says what the owner clicked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

from core.locks import KeyedLocks
from storage.forget import ForgetQuery
from storage.memory import MemoryStore
from storage.state import StateStore

log = logging.getLogger(__name__)
Status = Literal["pending", "sent", "discarded"]
KEY_PREFIX = "draft:"  # platform_state keys: draft:<message id>, under the message's platform


@dataclass(frozen=True)
class Draft:
    """An answer waiting for the owner: what was asked, what the twin would say, and what became of it."""

    id: str  # the id of the message it answers
    platform: str
    text: str
    asker: str
    question: str
    item_id: int | None = None  # the question's L0 row
    status: Status = "pending"
    where: dict[str, Any] = field(default_factory=dict)  # the adapter's words: where it goes, where it was shown


class DraftSurface(Protocol):
    """A platform adapter that shows drafts to the owner."""

    async def retract(self, draft: Draft) -> None:
        """The draft was forgotten: what the owner was shown is replaced by a line saying so."""
        ...


Send = Callable[[Draft, str], Awaitable[None]]  # posts the approved (or edited) text to the asker


class Drafts:
    """The drafts of one twin, in the state store; decided under one lock per draft."""

    def __init__(self, state: StateStore, store: MemoryStore, twin_id: int, reply_id: Callable[[str], str]) -> None:
        self.state = state
        self.store = store
        self.twin_id = twin_id
        self.reply_id = reply_id  # the L0 source id of the reply logged for a message
        self.surfaces: dict[str, DraftSurface] = {}
        self.forgotten: list[Draft] = []  # removed by a forget, their views not yet retracted
        self._locks: KeyedLocks[tuple[str, str]] = KeyedLocks()

    def show_on(self, platform: str, surface: DraftSurface) -> None:
        """An adapter that can show drafts: draft mode answers its messages as drafts."""
        self.surfaces[platform] = surface

    def shown_on(self, platform: str) -> bool:
        """Whether drafts can be shown on this platform (else draft mode leaves its messages to the owner)."""
        return platform in self.surfaces

    async def propose(self, draft: Draft) -> None:
        """A new draft, pending (stored before it is shown: a click on it must find it)."""
        await self._save(draft)

    async def get(self, platform: str, draft_id: str) -> Draft | None:
        """The draft, if there is one (a forgotten draft is not)."""
        value = await asyncio.to_thread(self.state.get, self.twin_id, platform, KEY_PREFIX + draft_id)
        return Draft(**value) if value else None

    async def place(self, platform: str, draft_id: str, where: dict[str, Any]) -> None:
        """Where the adapter showed it (and will send it)."""
        async with self._locks((platform, draft_id)):
            draft = await self.get(platform, draft_id)
            if draft is not None:
                await self._save(replace(draft, where={**draft.where, **where}))

    async def decide(self, platform: str, draft_id: str, status: Status, text: str | None, send: Send
                     ) -> Draft | None:
        """The owner's decision, taken once however often they click: 'sent' posts the text (the owner's edit, else
        the draft) and logs it as the reply; 'discarded' logs the reply as discarded. None: nothing pending."""
        async with self._locks((platform, draft_id)):
            draft = await self.get(platform, draft_id)
            if draft is None or draft.status != "pending":
                return None
            final = text if text is not None else draft.text
            if status == "sent":
                await send(draft, final)
            decided = replace(draft, status=status, text=final)
            await self._save(decided)
            await asyncio.to_thread(self.store.revise, self.twin_id, platform, self.reply_id(draft_id), final,
                                    {"in_reply_to": draft_id, "draft": status})
            return decided

    async def retract_forgotten(self) -> None:
        """Replace the owner's view of every draft a forget removed with a line saying it was forgotten."""
        forgotten, self.forgotten = self.forgotten, []
        for draft in forgotten:
            surface = self.surfaces.get(draft.platform)
            if surface is not None and draft.where:
                try:
                    await surface.retract(draft)
                except Exception as error:  # noqa: BLE001 - the draft is gone either way; the owner's view lags
                    log.warning("the view of forgotten draft %s was not replaced: %s", draft.id, error)

    async def _save(self, draft: Draft) -> None:
        await asyncio.to_thread(self.state.put, self.twin_id, draft.platform, KEY_PREFIX + draft.id, asdict(draft))


class DraftForgetting:
    """Forgetting's draft layer: a draft goes with the message it answers, or when its words match."""

    name = "drafts"

    def __init__(self, drafts: Drafts) -> None:
        self.drafts = drafts

    def find(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[str]:
        """The drafts that answer these L0 items or whose question or text holds the query's words."""
        return [f"draft answer to {draft.asker}: {draft.text}" for draft in self._matching(twin_id, query, l0_ids)]

    def remove(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> int:
        """Delete them; their views are retracted after the forget (Drafts.retract_forgotten)."""
        matching = self._matching(twin_id, query, l0_ids)
        for draft in matching:
            self.drafts.state.delete(twin_id, draft.platform, KEY_PREFIX + draft.id)
        self.drafts.forgotten.extend(matching)
        return len(matching)

    def _matching(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[Draft]:
        words = query.text.casefold() if query.text else None
        drafts = [Draft(**value) for _, _, value in self.drafts.state.with_prefix(twin_id, KEY_PREFIX)]
        return [draft for draft in drafts if draft.item_id in l0_ids
                or (words is not None and (words in draft.text.casefold() or words in draft.question.casefold()))]
