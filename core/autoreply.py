"""The autoreply switch: whether the twin answers, on the owner's behalf, messages sent to the owner's own account."""

from __future__ import annotations

import asyncio

from core.messages import InboundMessage, Mode
from core.respond import Answer
from storage.people import Speaker
from storage.state import TWIN_WIDE, StateStore

AUTOREPLY_KEY = "autoreply"
MODES = ("on", "off", "draft")
DIRECT, DRAFT = "direct", "draft"  # how a message is answered (Autoreply.decide); a draft is Reply.draft
SAID = {
    "on": "Autoreply is on: I answer messages sent to you (in your own chats that I can see) on your behalf.",
    "draft": "Autoreply is on, as drafts: where I can show you drafts, I send you my answer to approve, edit or "
             "discard first; elsewhere I leave messages sent to you for you to answer.",
    "off": "Autoreply is off: messages sent to you are saved, and I leave them for you to answer.",
}
USAGE = "Usage: /autoreply on|off|draft (without a word: the current setting)."


class Autoreply:
    """The owner's switch, kept in the database so it survives restarts; off until the owner turns it on."""

    def __init__(self, state: StateStore, twin_id: int) -> None:
        self.state = state
        self.twin_id = twin_id

    async def mode(self) -> str:
        """'on', 'off' or 'draft'."""
        value = await asyncio.to_thread(self.state.get, self.twin_id, TWIN_WIDE, AUTOREPLY_KEY)
        return str(value.get("mode")) if value and value.get("mode") in MODES else "off"

    async def set(self, mode: str) -> None:
        """Turn autoreply on, off, or on as drafts."""
        if mode not in MODES:
            raise ValueError(f"autoreply mode must be one of {MODES}, got {mode!r}")
        await asyncio.to_thread(self.state.put, self.twin_id, TWIN_WIDE, AUTOREPLY_KEY, {"mode": mode})

    async def decide(self, message: InboundMessage, speaker: Speaker, drafts_shown: bool = False) -> str | None:
        """How to answer: DIRECT, as a DRAFT for the owner to approve, or None (not at all). Messages to the twin
        are answered directly; messages to the owner's own account only while autoreply is on. Decided once per
        message: the adapter posts by this verdict, never by a second read of a switch that may have moved. Drafts only
        where the platform's adapter can show them (`drafts_shown`)."""
        if not message.to_owner:
            return DIRECT
        if speaker.trust == "owner":  # the owner writing in their own chats: memory, not a question to the twin
            return None
        mode = await self.mode()
        if mode == "draft" and drafts_shown:
            return DRAFT
        return DIRECT if mode == "on" else None

    async def command(self, args: str) -> Answer:
        """`/autoreply on|off|draft` switches; a bare `/autoreply` says the current setting."""
        word = args.strip().lower()
        if not word:
            return Answer(SAID[await self.mode()], Mode.command)
        if word not in MODES:
            return Answer(USAGE, Mode.command)
        await self.set(word)
        return Answer(SAID[word], Mode.command)
