"""What every platform adapter is and shares: the protocol `twin run` drives, the answer -> send -> delivered
sequence, the crash-recovery loop, and the error a health check raises."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from core.delivery import DeliveryHooks
from core.locks import KeyedLocks
from core.messages import Handler, InboundMessage, Reply

log = logging.getLogger(__name__)
Send = Callable[[Reply], Awaitable[None]]  # puts one reply onto the platform; raises the platform's delivery error

__all__ = ["Handler", "KeyedLocks", "PlatformAdapter", "PlatformSetupError", "answer_and_send", "recover"]


class PlatformAdapter(Protocol):
    """A chat platform's translator: it receives, hands each message to the pipeline, sends the answer back."""

    processed: int  # messages (updates, events) fully handled, answered or not

    async def start(self) -> None:
        """Connect, finish what a crash interrupted, start receiving."""
        ...

    async def stop(self) -> None:
        """Stop receiving, let the answers under way finish, close the connections."""
        ...


class PlatformSetupError(Exception):
    """A platform's credentials or server do not work (`twin doctor`); the message says what to fix."""


async def answer_and_send(handle: Handler, ledger: DeliveryHooks | None, message: InboundMessage, send: Send,
                          errors: tuple[type[Exception], ...], platform: str) -> Reply | None:
    """The message through the pipeline, the answer onto the platform, the ledger told it was delivered. A send that
    fails with one of `errors` is logged and left undelivered (the next start sends it again); the reply sent."""
    reply = await handle(message)
    if reply is None or not reply.text.strip():
        return None
    try:
        await send(reply)
    except errors as error:
        log.error("%s: the reply to %s was not delivered: %s", platform, message.message_id, error)
        return None
    if ledger is not None:
        await ledger.delivered(message)
    return reply


async def recover(ledger: DeliveryHooks | None, platform: str, redo: Callable[[InboundMessage], Awaitable[None]]
                  ) -> None:
    """What a crash left received but unanswered, or answered and undelivered, run again in arrival order."""
    if ledger is None:
        return
    unfinished = await ledger.unfinished(platform)
    for message in unfinished:
        await redo(message)
    if unfinished:
        log.info("%s: finished %d messages a restart interrupted", platform, len(unfinished))
