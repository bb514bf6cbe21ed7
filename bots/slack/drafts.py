"""Draft mode on Slack: the owner is shown a draft (core.drafts keeps and decides it) as a DM with Approve / Edit /
Discard buttons."""

from __future__ import annotations

from typing import Any

from bots.slack.inbound import ReplyTarget
from core.drafts import Draft

APPROVE, EDIT, DISCARD = "twin_draft_approve", "twin_draft_edit", "twin_draft_discard"
EDIT_VIEW = "twin_draft_edit"  # callback id of the edit modal
EDIT_BLOCK, EDIT_INPUT = "draft", "text"
PREVIEW_LIMIT = 2900  # a section block holds 3,000 characters; the full draft is kept and sent
FORGOTTEN = "*Forgotten:* this draft and the message it answered were forgotten."


def target_of(draft: Draft) -> ReplyTarget:
    """Where the approved answer is posted (the adapter placed it in the draft when it showed it)."""
    return ReplyTarget(channel=str(draft.where["channel"]), thread_ts=draft.where.get("thread_ts"))


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


def forgotten_blocks() -> list[dict[str, Any]]:
    """The owner's DM once the draft was forgotten: no word of it is left."""
    return [_section(FORGOTTEN)]


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
