"""The memory commands in chat: /remember, /profile, /facts and /visibility. The pipeline lets only the owner
reach the owner-only ones; /profile shows each speaker only what their audience may see."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.messages import InboundMessage, Mode
from core.profile import ProfileView
from core.respond import Answer, CommandHandler
from storage.errors import StorageError
from storage.facts import FactStore, NewFact
from storage.memory import MemoryStore
from storage.models import Fact, FactOrigin, Visibility
from storage.people import Speaker

WHO_SEES = {"private": "only you see it", "contacts": "your contacts and you see it", "public": "anyone may see it"}
REMEMBER_USAGE = "Usage: /remember [private:|contacts:|public:] TEXT, e.g. /remember public: I play the cello."
VISIBILITY_USAGE = "Usage: /visibility FACT_ID private|contacts|public (/facts lists the ids)."
FACTS_SHOWN = 30


def split_visibility(text: str, default: Visibility = Visibility.private) -> tuple[Visibility, str]:
    """'public: I sail' -> (public, 'I sail'); without a known level prefix the text is kept whole."""
    head, colon, rest = text.partition(":")
    level = head.strip().lower()
    if colon and level in Visibility.__members__:
        return Visibility(level), rest.strip()
    return default, text.strip()


def fact_line(fact: Fact) -> str:
    """One fact as the owner sees it in a list."""
    return f"#{fact.id} [{fact.visibility}] {fact.text}"


class MemoryCommands:
    """Runs the memory commands for one twin."""

    def __init__(self, twin_id: int, owner_name: str, store: MemoryStore, facts: FactStore, view: ProfileView) -> None:
        self.twin_id = twin_id
        self.owner_name = owner_name
        self.store = store
        self.facts = facts
        self.view = view

    def handlers(self) -> dict[str, CommandHandler]:
        """The pipeline's handlers for these commands, by name."""
        return {"remember": self._remember, "profile": self._profile, "facts": self._facts,
                "visibility": self._visibility}

    async def _profile(self, _args: str, speaker: Speaker, _message: InboundMessage) -> Answer:
        return Answer(await asyncio.to_thread(self.view.describe, speaker.trust), Mode.command)

    async def _remember(self, args: str, speaker: Speaker, message: InboundMessage) -> Answer:
        return await self._owner_only(speaker, "remember", self.remember, args, message)

    async def _facts(self, _args: str, speaker: Speaker, _message: InboundMessage) -> Answer:
        return await self._owner_only(speaker, "facts", self.list_facts)

    async def _visibility(self, args: str, speaker: Speaker, _message: InboundMessage) -> Answer:
        return await self._owner_only(speaker, "visibility", self.set_visibility, args)

    async def _owner_only(self, speaker: Speaker, name: str, action: Callable[..., str], *args: object) -> Answer:
        """The pipeline refuses others first; this holds even if a handler is called directly."""
        if speaker.trust != "owner":
            return Answer(f"Only {self.owner_name} can use /{name}.", Mode.command)
        return Answer(await asyncio.to_thread(action, *args), Mode.command)

    def remember(self, args: str, message: InboundMessage | None = None) -> str:
        """Store what the owner stated as a current fact, private unless they said otherwise."""
        visibility, text = split_visibility(args)
        if not text:
            return REMEMBER_USAGE
        stored = self.store.by_source(self.twin_id, message.platform, message.message_id) if message else None
        new = NewFact(text=text, item_ids=(stored.id,) if stored else (), origin=FactOrigin.owner,
                      visibility=visibility)
        fact = self.facts.add(self.twin_id, new)
        return (f"Remembered as fact #{fact.id} ({fact.visibility}: {WHO_SEES[fact.visibility]}). "
                f"Change who sees it with /visibility {fact.id} private|contacts|public.")

    def list_facts(self) -> str:
        """The owner's current facts with their ids and visibility, newest last."""
        facts = self.facts.current(self.twin_id)
        if not facts:
            return "No facts yet. /remember TEXT adds one."
        shown = facts[-FACTS_SHOWN:]
        more = f" (the last {len(shown)} of {len(facts)})" if len(facts) > len(shown) else ""
        return f"Facts{more}:\n" + "\n".join(fact_line(fact) for fact in shown)

    def set_visibility(self, args: str) -> str:
        """The owner decides who may see a fact."""
        fact_id, _, level = args.lstrip("#").partition(" ")
        level = level.strip().lower()
        if not fact_id.isdigit() or level not in Visibility.__members__:
            return VISIBILITY_USAGE
        try:
            fact = self.facts.set_visibility(self.twin_id, int(fact_id), Visibility(level))
        except StorageError as error:
            return f"{error}. {VISIBILITY_USAGE}"
        return f"Fact #{fact.id} is now {fact.visibility}: {WHO_SEES[fact.visibility]}."
