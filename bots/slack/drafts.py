"""Draft mode: the twin's answer goes to the owner first, as a DM with Approve / Edit / Discard buttons."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from bots.slack.inbound import PLATFORM, ReplyTarget
from storage.state import StateStore

APPROVE, EDIT, DISCARD = "twin_draft_approve", "twin_draft_edit", "twin_draft_discard"
EDIT_VIEW = "twin_draft_edit"  # callback id of the edit modal
EDIT_BLOCK, EDIT_INPUT = "draft", "text"
PREVIEW_LIMIT = 2900  # a section block holds 3,000 characters; the full draft is kept and sent
Status = Literal["pending", "sent", "discarded"]


@dataclass(frozen=True)
class Draft:
    """An answer waiting for the owner: where it would go, what it says, and what became of it."""

    id: str  # the message id it answers
    channel: str
    thread_ts: str | None
    text: str
    asker: str
    question: str
    status: Status = "pending"
    dm_channel: str | None = None  # where the owner was shown the draft
    dm_ts: str | None = None

    @property
    def target(self) -> ReplyTarget:
        """Where the approved answer is posted."""
        return ReplyTarget(channel=self.channel, thread_ts=self.thread_ts)


class DraftStore:
    """Drafts in the database: they survive a restart, and a second click finds them already decided."""

    def __init__(self, state: StateStore, twin_id: int) -> None:
        self.state = state
        self.twin_id = twin_id

    async def save(self, draft: Draft) -> None:
        """Store or update a draft."""
        await asyncio.to_thread(self.state.put, self.twin_id, PLATFORM, _key(draft.id), asdict(draft))

    async def get(self, draft_id: str) -> Draft | None:
        """The draft, if there is one under this id."""
        value = await asyncio.to_thread(self.state.get, self.twin_id, PLATFORM, _key(draft_id))
        return Draft(**value) if value else None

    async def decide(self, draft: Draft, status: Status, text: str | None = None) -> Draft:
        """Record the owner's decision (and edited text)."""
        decided = replace(draft, status=status, text=text if text is not None else draft.text)
        await self.save(decided)
        return decided


def _key(draft_id: str) -> str:
    return f"draft:{draft_id}"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:PREVIEW_LIMIT]}}


def _button(label: str, action_id: str, draft_id: str, style: str | None = None) -> dict[str, Any]:
    button = {"type": "button", "text": {"type": "plain_text", "text": label}, "action_id": action_id,
              "value": draft_id}
    return button | ({"style": style} if style else {})


def draft_blocks(draft: Draft) -> list[dict[str, Any]]:
    """The owner's DM: what was asked, the proposed answer, and the three buttons."""
    return [
        _section(f"*{draft.asker}* wrote to you:\n>{draft.question[:1000]}"),
        _section(f"My draft answer:\n{draft.text}"),
        {"type": "actions", "block_id": "twin_draft", "elements": [
            _button("Approve", APPROVE, draft.id, "primary"), _button("Edit", EDIT, draft.id),
            _button("Discard", DISCARD, draft.id, "danger"),
        ]},
    ]


def decided_blocks(draft: Draft) -> list[dict[str, Any]]:
    """The owner's DM once decided: the buttons are gone, the outcome is said."""
    outcome = {"sent": "Sent", "discarded": "Discarded", "pending": "Waiting"}[draft.status]
    return [_section(f"*{outcome}:* my answer to {draft.asker}\n{draft.text}")]


def edit_view(draft: Draft) -> dict[str, Any]:
    """The modal the Edit button opens: the draft in a text box; submitting sends the edited text."""
    return {
        "type": "modal", "callback_id": EDIT_VIEW, "private_metadata": draft.id,
        "title": {"type": "plain_text", "text": "Edit the answer"},
        "submit": {"type": "plain_text", "text": "Send"}, "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{"type": "input", "block_id": EDIT_BLOCK, "label": {"type": "plain_text", "text": "Answer"},
                    "element": {"type": "plain_text_input", "action_id": EDIT_INPUT, "multiline": True,
                                "initial_value": draft.text[:3000]}}],
    }


def edited_text(view: dict[str, Any]) -> str:
    """The text the owner submitted in the edit modal."""
    return str(view["state"]["values"][EDIT_BLOCK][EDIT_INPUT].get("value") or "")
