"""Forgetting across every layer: what matches is shown first, then removed everywhere on confirmation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.prompts import clip
from storage.errors import StorageError
from storage.fence import forget_fence
from storage.forget import ForgetQuery, L0Forgetting
from storage.models import L0Item

NO_ADAPTERS = "no adapter has been trained yet, so none serves forgotten data"


class ForgetLayer(Protocol):
    """A layer built from L0 (facts, bios, training data) that must forget along with it."""

    name: str

    def find(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[str]:
        """Short descriptions of what in this layer matches the query or derives from these L0 items."""
        ...

    def remove(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> int:
        """Remove it; returns how many records went."""
        ...


@dataclass
class ForgetPlan:
    """What a forget would remove: shown to the owner before anything goes."""

    query: ForgetQuery
    items: list[L0Item]
    layers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.items and not any(self.layers.values())

    def summary(self, shown: int = 5) -> str:
        """A human summary with a few examples."""
        if self.empty:
            return f"Nothing matches {self.query.describe()}."
        lines = [f"Matching {self.query.describe()}:", f"- {len(self.items)} messages or notes"]
        lines += [f"  [{item.id}] {item.occurred_at:%Y-%m-%d} {item.sender_name}: {clip(item.text, 80)}"
                  for item in self.items[:shown]]
        for name, matches in self.layers.items():
            lines.append(f"- {len(matches)} {name}")
            lines += [f"  {clip(match, 80)}" for match in matches[:shown]]
        if not any("adapter" in name for name in self.layers):  # no training layer: nothing was trained on it
            lines.append(f"- adapters: {NO_ADAPTERS}")
        return "\n".join(lines)


@dataclass(frozen=True)
class ForgetReport:
    """What a forget removed."""

    items: int
    layers: dict[str, int]

    def summary(self) -> str:
        parts = [f"{self.items} messages or notes"] + [f"{n} {name}" for name, n in self.layers.items()]
        return "Forgotten: " + ", ".join(parts) + ". A later import cannot bring them back."


class Forgetter:
    """Plans and carries out a forget over L0 and every derived layer."""

    def __init__(self, l0: L0Forgetting, layers: Sequence[ForgetLayer] = ()) -> None:
        self.l0 = l0
        self.layers = list(layers)

    def plan(self, twin_id: int, query: ForgetQuery) -> ForgetPlan:
        """Everything the query would remove."""
        items = self.l0.find(twin_id, query)
        ids = {item.id for item in items}
        return ForgetPlan(query, items, {layer.name: layer.find(twin_id, query, ids) for layer in self.layers})

    def forget(self, twin_id: int, query: ForgetQuery) -> ForgetReport:
        """Remove everything the query matches now (planned again, so nothing added since is missed), under the
        forget fence: a job's write step runs wholly before (and is removed here) or after (and sees the forget)."""
        with forget_fence(self.l0.store.engine):
            items = self.l0.find(twin_id, query)
            ids = {item.id for item in items}
            removed = {layer.name: layer.remove(twin_id, query, ids) for layer in self.layers}  # derived data first
            return ForgetReport(items=self.l0.remove(twin_id, items), layers=removed)


CONFIRM_WORDS = ("yes", "confirm")
CANCEL_WORDS = ("no", "cancel")
CONFIRM_WINDOW_S = 600.0


class ForgetConversation:
    """`/forget WHAT` shows the plan; `/forget yes` in the same chat within 10 minutes carries it out."""

    def __init__(self, forgetter: Forgetter, twin_id: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.forgetter = forgetter
        self.twin_id = twin_id
        self.clock = clock
        self._pending: dict[tuple[str, str], tuple[ForgetQuery, float]] = {}

    async def handle(self, args: str, chat: tuple[str, str]) -> str:
        """The reply to one /forget command in a chat."""
        word = args.strip().lower()
        if word in CONFIRM_WORDS:
            return await self._confirm(chat)
        if word in CANCEL_WORDS:
            return "Nothing was forgotten." if self._pending.pop(chat, None) else "There was nothing to cancel."
        if not word:
            return "Usage: /forget WHAT (words the messages contain), then /forget yes to confirm."
        try:
            query = ForgetQuery(text=args.strip())
        except StorageError as error:
            return str(error)
        plan = await asyncio.to_thread(self.forgetter.plan, self.twin_id, query)
        if plan.empty:
            return plan.summary()
        self._pending[chat] = (query, self.clock() + CONFIRM_WINDOW_S)
        return f"{plan.summary()}\n\nSend /forget yes within 10 minutes to forget all of it, /forget no to keep it."

    async def _confirm(self, chat: tuple[str, str]) -> str:
        query, deadline = self._pending.pop(chat, (None, 0.0))
        if query is None or self.clock() > deadline:
            return "There is nothing waiting to be forgotten here: send /forget WHAT first."
        report = await asyncio.to_thread(self.forgetter.forget, self.twin_id, query)
        return report.summary()
