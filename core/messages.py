"""What flows through the core: one normalized inbound message from any platform, and the reply to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from storage.text import encodable, encodable_text

MAX_STORED_CHARS = 1_000_000  # one message is stored verbatim up to 1 MB of text; the rest is cut and said so


class Mode(StrEnum):
    """How the twin answers: to its owner, for its owner, introducing its owner, or through an expert."""

    assistant = "assistant"
    on_behalf = "on_behalf"
    introduce = "introduce"
    expert = "expert"
    command = "command"


@dataclass(frozen=True)
class InboundMessage:
    """A message as every platform adapter hands it to the core; `message_id` is unique on its platform."""

    platform: str
    message_id: str
    chat_id: str
    sender_id: str
    sender_name: str
    text: str
    sent_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    chat_title: str | None = None
    raw: dict[str, Any] | None = field(default=None, compare=False)
    to_owner: bool = False  # sent to the owner's own account (Telegram Business): answered only while autoreply is on


@dataclass(frozen=True)
class Reply:
    """What the twin answers, and what went into the answer (for `--json` and for the owner's audit)."""

    chat_id: str
    text: str
    mode: Mode
    audience: str
    in_reply_to: str
    model: str | None = None
    context_ids: tuple[int, ...] = ()
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # what the answer adds for `--json` (an expert's request)
    draft: bool = False  # for the owner to approve first (draft mode), not for the asker
    resent: bool = False  # logged by an earlier process and never delivered: it may be on the platform already


Handler = Callable[[InboundMessage], Awaitable[Reply | None]]  # the pipeline's entry point, as adapters call it


def clean_text(text: str) -> str:
    """Text every store accepts: valid UTF-8, no NUL bytes (PostgreSQL refuses them), at most 1 MB."""
    text = encodable_text(text)  # lone surrogates from undecodable input, NUL
    if len(text) > MAX_STORED_CHARS:
        text = text[:MAX_STORED_CHARS] + f"\n[cut: the message was longer than {MAX_STORED_CHARS} characters]"
    return text


def clean_inbound(message: InboundMessage) -> InboundMessage:
    """The message as a platform adapter hands it over: its text, names and raw payload writable by every store
    (a lone surrogate in a platform's JSON would make the write fail and lose the message)."""
    return replace(
        message, text=clean_text(message.text), sender_name=encodable_text(message.sender_name),
        chat_title=encodable_text(message.chat_title) if message.chat_title is not None else None,
        raw=encodable(message.raw) if message.raw is not None else None,
    )
