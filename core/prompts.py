"""Prompts: module constants and small builders. Memory reaches a prompt only through these functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.models import ItemKind, L0Item

ASSISTANT_SYSTEM = (
    "You are the digital twin of {owner}: their second self and personal assistant. You are talking with "
    "{owner} in person. Use {owner}'s memory below when it helps and say so when it does not hold the "
    "answer. Answer briefly."
)
ON_BEHALF_SYSTEM = (
    "You are the digital twin of {owner}, answering {speaker} on {owner}'s behalf, in {owner}'s voice. "
    "Use only the memory below. When it does not hold the answer, say that {owner} will get back to "
    "them. Never claim to be a human. Answer briefly."
)
INTRODUCE_SYSTEM = (
    "You are the digital twin of {owner}. Introduce {owner} to {target} in two or three friendly sentences, "
    "using only the memory below. Mention what {owner} and {target} might talk about."
)
ENHANCE_SYSTEM = (
    "You are the digital twin of {owner}. {owner} is about to ask an expert the request below. Rewrite it as "
    "{owner} would if they took the time: add the facts from the memory below that the expert needs "
    "(situation, constraints, preferences), and nothing else. Reply with JSON: {{\"request\": \"...\"}}."
)
CRITIQUE_SYSTEM = (
    "You are the digital twin of {owner}. An expert answered {owner}'s request. Check the answer against "
    "{owner}'s facts and preferences in the memory below. If it fits, keep it; if not, adapt it to "
    "{owner}. Reply with JSON: {{\"verdict\": \"fits\" or \"adapted\", \"answer\": \"...\"}}."
)
NO_MEMORY = "(nothing relevant in memory)"


@dataclass(frozen=True)
class PromptBudget:
    """How much text a prompt may carry: the bundled model reads 2048 tokens, about 4 characters each."""

    item_chars: int = 400
    message_chars: int = 2000
    memory_items: int = 8


def clip(text: str, limit: int) -> str:
    """The text, cut at a word boundary with an ellipsis when longer than the limit."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def memory_line(item: L0Item, budget: PromptBudget) -> str:
    """One memory item as the model reads it: date, who, what."""
    return f"[{item.occurred_at:%d %b %Y}] {item.sender_name}: {clip(item.text, budget.item_chars)}"


def memory_block(items: Sequence[L0Item], budget: PromptBudget, profile: str | None = None) -> str:
    """The memory section of a system prompt: the profile, then the retrieved items."""
    lines = [f"Profile:\n{profile}"] if profile else []
    shown = [memory_line(item, budget) for item in items[: budget.memory_items]]
    lines.append("Memory:\n" + ("\n".join(shown) if shown else NO_MEMORY))
    return "\n\n".join(lines)


def history_messages(history: Sequence[L0Item], budget: PromptBudget) -> list[dict[str, str]]:
    """Earlier turns of this chat as chat messages: the twin's own replies are the assistant's."""
    return [
        {"role": "assistant" if item.kind == ItemKind.reply else "user",
         "content": clip(item.text, budget.item_chars)}
        for item in history
    ]


def conversation(
    system: str, memory: str, history: Sequence[L0Item], text: str, budget: PromptBudget
) -> list[dict[str, str]]:
    """System prompt with memory, earlier turns, then the new message."""
    return [
        {"role": "system", "content": f"{system}\n\n{memory}"},
        *history_messages(history, budget),
        {"role": "user", "content": clip(text, budget.message_chars)},
    ]


def assistant_prompt(owner: str, memory: str, history: Sequence[L0Item], text: str, budget: PromptBudget) -> list:
    """The owner talks to their twin."""
    return conversation(ASSISTANT_SYSTEM.format(owner=owner), memory, history, text, budget)


def on_behalf_prompt(
    owner: str, speaker: str, memory: str, history: Sequence[L0Item], text: str, budget: PromptBudget
) -> list[dict[str, str]]:
    """Someone else talks to the twin about or for the owner."""
    return conversation(ON_BEHALF_SYSTEM.format(owner=owner, speaker=speaker), memory, history, text, budget)


def introduce_prompt(owner: str, target: str, memory: str) -> list[dict[str, str]]:
    """An introduction of the owner to the target, from what the target may see."""
    system = INTRODUCE_SYSTEM.format(owner=owner, target=target)
    return [{"role": "system", "content": f"{system}\n\n{memory}"},
            {"role": "user", "content": f"Please introduce {owner} to {target}."}]


def enhance_prompt(owner: str, memory: str, request: str, budget: PromptBudget) -> list[dict[str, str]]:
    """Context enhancement: the owner's request, to be rewritten with what the owner would add."""
    return [{"role": "system", "content": f"{ENHANCE_SYSTEM.format(owner=owner)}\n\n{memory}"},
            {"role": "user", "content": clip(request, budget.message_chars)}]


def critique_prompt(owner: str, memory: str, request: str, answer: str, budget: PromptBudget) -> list[dict[str, str]]:
    """Context critique: the expert's answer, to be checked against the owner's facts and preferences."""
    body = f"Request:\n{clip(request, budget.message_chars)}\n\nExpert's answer:\n{clip(answer, budget.message_chars)}"
    return [{"role": "system", "content": f"{CRITIQUE_SYSTEM.format(owner=owner)}\n\n{memory}"},
            {"role": "user", "content": body}]
