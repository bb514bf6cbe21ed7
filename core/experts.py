"""Expert relay, the paper's two tasks: context enhancement before the expert, context critique after."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from core.llm import LanguageModel, Messages
from core.prompts import PromptBudget, critique_prompt, enhance_prompt, memory_block
from storage.models import L0Item

EXPERT_SYSTEM = "You are an expert assistant. Answer the request helpfully and concisely."


REASONING = Field(default="", description="The twin's own reasoning before it answers (the training loop's "
                  "chain-of-thought styles): never sent to the expert, never shown to anyone.")


class EnhancedRequest(BaseModel):
    """The owner's request rewritten with the context the owner would add."""

    reasoning: str = REASONING
    request: str = Field(min_length=1)


class Critique(BaseModel):
    """The twin's verdict on an expert's answer, from the owner's side."""

    reasoning: str = REASONING
    verdict: Literal["fits", "adapted"]
    answer: str = Field(min_length=1)


@dataclass(frozen=True)
class Expert:
    """An expert model by name: how to reach it and which audience's memory it may receive."""

    name: str
    model: str
    client: LanguageModel
    audience: str = "stranger"  # public memory only, unless the owner allows contacts-level


@dataclass(frozen=True)
class Relay:
    """One relayed request: exactly what the expert received, what it said, and what the owner gets."""

    expert: str
    sent: Messages
    expert_answer: str
    answer: str
    verdict: str
    context_ids: tuple[int, ...] = field(default=())


async def relay(
    expert: Expert, request: str, shareable: Sequence[L0Item], private: Sequence[L0Item], twin: LanguageModel,
    twin_model: str, owner: str, budget: PromptBudget, shareable_facts: str | None = None,
    private_facts: str | None = None,
) -> Relay:
    """Enhance the request with what the expert may see, ask the expert, then check its answer for the owner.

    `shareable` (L0) and `shareable_facts` (L1: bio and facts) are memory for the expert's audience: only they
    can shape what the expert receives. `private` and `private_facts` are the owner's own memory: the critique
    goes back to the owner alone, so it may use everything.
    """
    shared_block = memory_block(shareable, budget, profile=shareable_facts)
    enhanced = await twin.complete_json(
        enhance_prompt(owner, shared_block, request, budget), EnhancedRequest, model=twin_model
    )
    sent = [{"role": "system", "content": EXPERT_SYSTEM}, {"role": "user", "content": enhanced.request}]
    answer = await expert.client.complete(sent, model=expert.model)
    critique = await twin.complete_json(
        critique_prompt(owner, memory_block(private, budget, profile=private_facts), enhanced.request, answer.text,
                        budget), Critique,
        model=twin_model,
    )
    final = answer.text if critique.verdict == "fits" else critique.answer
    return Relay(expert=expert.name, sent=sent, expert_answer=answer.text, answer=final, verdict=critique.verdict,
                 context_ids=tuple(item.id for item in shareable[: budget.memory_items]))
