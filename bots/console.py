"""The console channel: a terminal conversation with the twin, as the owner or as someone else."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.messages import Handler, InboundMessage

CONSOLE = "console"
CONSOLE_OWNER_ID = "@owner"  # names given with --as cannot start with '@', so only the terminal's owner has it


@dataclass(frozen=True)
class ConsoleSpeaker:
    """Who types at this terminal: the owner, or the person named with --as."""

    sender_id: str
    name: str

    @classmethod
    def owner(cls, owner_name: str) -> ConsoleSpeaker:
        """The owner at their own terminal."""
        return cls(CONSOLE_OWNER_ID, owner_name)

    @classmethod
    def named(cls, name: str) -> ConsoleSpeaker:
        """Someone else; a name may not pose as the owner's console account."""
        cleaned = name.strip()
        if not cleaned or cleaned.startswith("@"):
            raise ValueError(f"--as needs a plain name (not empty, not starting with '@'), got {name!r}")
        return cls(cleaned.lower(), cleaned)


def to_inbound(speaker: ConsoleSpeaker, text: str) -> InboundMessage:
    """One typed line as a core message; every line is new (the console never redelivers)."""
    return InboundMessage(
        platform=CONSOLE, message_id=uuid.uuid4().hex, chat_id=f"console-{speaker.sender_id}",
        sender_id=speaker.sender_id, sender_name=speaker.name, text=text, chat_title="console",
    )


async def converse(
    handle: Handler, speaker: ConsoleSpeaker, read: Callable[[str], str], write: Callable[[str], None],
    prompt: str = "you> ", delivered: Callable[[InboundMessage], Awaitable[None]] | None = None,
) -> None:
    """Read lines until end of input, answering each through the pipeline (and saying it was delivered)."""
    while True:
        try:
            line = await asyncio.to_thread(read, prompt)
        except (EOFError, KeyboardInterrupt):
            return
        if not line.strip():
            continue
        message = to_inbound(speaker, line)
        reply = await handle(message)
        if reply is not None:
            write(reply.text)
            if delivered is not None:
                await delivered(message)
