"""Voice samples from L0: what the owner wrote, in reply to what came before it in the same chat, in the prompt
format serving uses when the twin answers someone on the owner's behalf (core.prompts.ON_BEHALF_SYSTEM, an empty
memory block, the earlier turns, the last message).

For one audience only what that audience may see is used (owner: everything; contact: contacts and public;
stranger: public), context included: an adapter that answers strangers is never trained on private text. The
twin's own replies and expert relays are never used, as completions or as context. Every sample records the
L0 items it came from, so forgetting one of them finds the sample and every adapter trained on it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby

from sqlalchemy import Engine, select
from sqlmodel import Session

from core.prompts import NO_MEMORY, ON_BEHALF_SYSTEM
from storage.items import AUDIENCE_VISIBILITY
from storage.models import Direction, ItemKind, L0Item
from storage.training import NewSample, TrainingStore, most_private

CONTEXT_MESSAGES = 4  # earlier messages of the chat given as the prompt
CONTEXT_WINDOW = timedelta(hours=24)  # older messages are another conversation
MAX_CHARS = 2000  # a longer message is clipped (the trainer cuts to max_length tokens anyway)


def system_prompt(owner_name: str, speaker: str) -> str:
    """The system message serving gives a conversation on the owner's behalf, with an empty memory block."""
    return f"{ON_BEHALF_SYSTEM.format(owner=owner_name, speaker=speaker)}\n\nMemory:\n{NO_MEMORY}"


@dataclass(frozen=True)
class DatasetReport:
    """What one rebuild produced."""

    audience: str
    samples: int
    items: int  # distinct L0 items used
    newest_item: int | None  # the highest L0 id used: nothing newer means nothing new to learn


def _chat_items(engine: Engine, twin_id: int, audience: str) -> Iterator[list[L0Item]]:
    """Each chat's messages the audience may see, in order (replies, experts and documents left out)."""
    query = (
        select(L0Item)
        .where(L0Item.twin_id == twin_id, L0Item.kind == ItemKind.message,
               L0Item.visibility.in_(AUDIENCE_VISIBILITY[audience]))
        .order_by(L0Item.source, L0Item.chat, L0Item.id)  # arrival order, as the serving history reads it
    )
    with Session(engine) as session:
        rows = session.scalars(query.execution_options(yield_per=2000))
        for _, chat in groupby(rows, key=lambda item: (item.source, item.chat)):
            yield list(chat)


def _turns(context: list[L0Item]) -> list[dict[str, str]]:
    """Chat messages: others' lines as the user, the owner's as the assistant; same-role runs joined."""
    turns: list[dict[str, str]] = []
    for item in context:
        role = "assistant" if item.direction == Direction.outbound else "user"
        text = item.text.strip()[:MAX_CHARS]
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n" + text
        else:
            turns.append({"role": role, "content": text})
    return turns


def build_samples(engine: Engine, twin_id: int, audience: str, owner_name: str) -> list[NewSample]:
    """One sample per message the owner wrote that follows someone else's words in the same chat."""
    if audience not in AUDIENCE_VISIBILITY:
        raise ValueError(f"unknown audience {audience!r}")
    samples: list[NewSample] = []
    for chat in _chat_items(engine, twin_id, audience):
        for at, item in enumerate(chat):
            if item.direction != Direction.outbound or not item.text.strip():
                continue
            context = [earlier for earlier in chat[max(0, at - CONTEXT_MESSAGES):at]
                       if item.occurred_at - earlier.occurred_at <= CONTEXT_WINDOW and earlier.text.strip()]
            while context and context[-1].direction == Direction.outbound:
                context.pop()  # the prompt ends with what the owner answers
            if not context:
                continue  # nobody said anything before: not a reply
            turns, used = _turns(context), [*context, item]
            system = {"role": "system", "content": system_prompt(owner_name, context[-1].sender_name)}
            samples.append(NewSample(
                prompt=[system, *turns], completion=item.text.strip()[:MAX_CHARS], task="reply",
                visibility=most_private(source.visibility for source in used),
                item_ids=tuple(sorted({source.id for source in used})),
            ))
    return samples


def rebuild(store: TrainingStore, twin_id: int, audience: str, owner_name: str) -> DatasetReport:
    """Build this audience's samples from L0 now and store them in place of the previous ones."""
    samples = build_samples(store.engine, twin_id, audience, owner_name)
    store.replace_samples(twin_id, audience, samples)
    items = {item for sample in samples for item in sample.item_ids}
    return DatasetReport(audience, len(samples), len(items), max(items, default=None))
