"""`/retrain` in chat: the owner asks for the personal model to be trained again. The training itself runs in the
background (a scheduler job, in a child process): the chat is answered at once and never waits for it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from core.messages import InboundMessage, Mode
from core.respond import Answer
from storage.models import Audience
from storage.people import Speaker
from storage.retrain_requests import RetrainRequests

log = logging.getLogger(__name__)
Handler = Callable[[str, Speaker, InboundMessage], Awaitable[Answer]]
# called with the reason and the (platform, chat id) asking; records the request and wakes the retrain job
RetrainTrigger = Callable[[str, tuple[str, str] | None], None]
Notify = Callable[[str, str, str], Awaitable[None]]  # (platform, chat id, text): a message the twin starts itself

STARTED = ("Retraining is queued: in the background I will turn what I know into training samples (questions about "
           "you, for you and for others, expert requests and critiques, your own replies), filter them, train new "
           "adapters (SFT, then DPO), test each against the one serving now and switch only to one that is not "
           "worse. It takes a while on a CPU; keep talking meanwhile: I will tell you the outcome here.")
AUDIENCE_NAMES = {"owner": "your own adapter", "contact": "the adapter for your contacts",
                  "stranger": "the adapter for strangers"}
UNAVAILABLE = "Retraining is not set up in this deployment (twin train does it from the command line)."


class TrainingCommands:
    """`/retrain` for one twin; the pipeline refuses non-owners before this runs, and so does this."""

    def __init__(self, owner_name: str, trigger: RetrainTrigger | None, requests: RetrainRequests | None = None,
                 twin_id: int | None = None) -> None:
        self.owner_name = owner_name
        self.trigger = trigger
        self.requests = requests
        self.twin_id = twin_id

    def handlers(self) -> dict[str, Handler]:
        """The pipeline's handlers for these commands, by name."""
        return {"retrain": self._retrain}

    async def _retrain(self, _args: str, speaker: Speaker, message: InboundMessage) -> Answer:
        if speaker.trust != Audience.owner:
            return Answer(f"Only {self.owner_name} can use /retrain.", Mode.command)
        if self.trigger is None:
            return Answer(UNAVAILABLE, Mode.command)
        try:
            await asyncio.to_thread(self.trigger, "requested by the owner with /retrain",
                                    (message.platform, message.chat_id))
        except Exception as error:  # noqa: BLE001 - say so instead of failing the chat
            log.exception("could not schedule a retrain")
            return Answer(f"I could not schedule the retrain: {error}", Mode.command)
        return Answer(STARTED + await asyncio.to_thread(self._last_outcome), Mode.command)

    def _last_outcome(self) -> str:
        """The previous run's outcome, in words (empty when none ran yet)."""
        if self.requests is None or self.twin_id is None:
            return ""
        outcomes = self.requests.run(self.twin_id).get("outcomes") or []
        return "" if not outcomes else "\n\nLast time: " + " ".join(o["message"] for o in outcomes)


def outcome_notice(messages: Sequence[str]) -> str:
    """What the owner hears when a retrain they asked for is done: each audience's outcome, in words."""
    return "Retraining finished. " + " ".join(messages) if messages else "Retraining finished: nothing was trained."


async def tell_requesters(chats: Sequence[tuple[str, str]], messages: Sequence[str], notify: Notify) -> None:
    """Send the outcome to every chat that asked; a chat that cannot be reached is logged, not raised."""
    await tell_chats(chats, outcome_notice(messages), notify)


def status_notice(audience: str, stage: str) -> str:
    """A short line for the chats that asked, as the run starts one of its long stages (SFT, DPO, the evaluation)."""
    return f"Retraining {AUDIENCE_NAMES.get(audience, audience)}: {stage}."


async def tell_chats(chats: Sequence[tuple[str, str]], text: str, notify: Notify) -> None:
    """Send one message to every chat; one that cannot be reached is logged, never raised: training goes on."""
    for platform, chat_id in chats:
        try:
            await notify(platform, chat_id, text)
        except Exception:  # noqa: BLE001 - the retrain goes on either way; the log says why nobody heard
            log.exception("could not tell %s/%s about the retrain", platform, chat_id)
