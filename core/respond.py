"""Retrieve what the audience may see, compose for the mode, generate: one answer, with what went into it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from core.experts import Expert, relay
from core.live import reply_listener
from core.llm import LanguageModel
from core.messages import InboundMessage, Mode
from core.profile import ProfileView
from core.prompts import (
    PromptBudget,
    assistant_prompt,
    clip,
    introduce_prompt,
    memory_block,
    on_behalf_prompt,
)
from storage.models import ItemKind, L0Item
from storage.people import Speaker
from storage.search import HybridSearcher, SearchScope

SPECIAL_TOKENS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")
REASONING = re.compile(r"<think>.*?(?:</think>|$)", re.S)  # reasoning never reaches a user, closed or cut off
EMPTY_ANSWER = "I have no answer to that."
REPLY_HEADROOM = 4  # extra hits fetched for the twin's own replies, which are dropped from the evidence


@dataclass(frozen=True)
class Answer:
    """Generated text and its provenance."""

    text: str
    mode: Mode
    model: str | None = None
    context_ids: tuple[int, ...] = ()
    details: dict = field(default_factory=dict)


CommandHandler = Callable[[str, Speaker, InboundMessage], Awaitable[Answer]]  # (arguments, who, the message)


class AdapterRegistry(Protocol):
    """Which LoRA adapter serves which audience now (storage.training.TrainingStore implements it)."""

    def serving(self, twin_id: int, audience: str) -> str | None:
        """The adapter serving this audience, or None for the base model."""
        ...

    def withdrawn(self, twin_id: int, name: str) -> bool:
        """Whether this adapter was withdrawn (trained on something forgotten): it must never serve."""
        ...


class ModelRouter:
    """Which served model answers which audience: the registry's serving adapter, read on every request (so a
    withdrawal made by another process takes effect at once), else a configured adapter, else the base model."""

    def __init__(
        self, base: str, adapters: dict[str, str] | None = None, registry: AdapterRegistry | None = None,
        twin_id: int | None = None,
    ) -> None:
        self.base = base
        self.adapters = dict(adapters or {})  # settings' llm_adapters: the fallback when the registry has none
        self.registry = registry
        self.twin_id = twin_id

    def model_for(self, audience: str) -> str:
        """The adapter serving this audience, or the base model."""
        if self.registry is None or self.twin_id is None:
            return self.adapters.get(audience, self.base)
        serving = self.registry.serving(self.twin_id, audience)
        if serving is not None:
            return serving
        configured = self.adapters.get(audience)
        if configured is not None and not self.registry.withdrawn(self.twin_id, configured):
            return configured
        return self.base


SENTENCE_END = re.compile(r"(?<=[.!?])(\s+)")


def without_repeats(text: str) -> str:
    """The text with sentences said before dropped: small models loop ("I'm a virtual assistant. I'm a ...")."""
    pieces = SENTENCE_END.split(text)  # sentence, whitespace, sentence, whitespace, ...
    seen: set[str] = set()
    kept: list[str] = []
    for at in range(0, len(pieces), 2):
        key = " ".join(pieces[at].casefold().split()).rstrip(".!?")
        if key and key in seen:
            continue
        seen.add(key)
        kept += [pieces[at], pieces[at + 1] if at + 1 < len(pieces) else ""]
    return "".join(kept)


def guard(text: str) -> str:
    """The model's text made fit to send: reasoning (the training loop's chain-of-thought styles), chat-template
    tokens and looping repeats removed, never empty."""
    text = REASONING.sub("", text)
    for token in SPECIAL_TOKENS:
        text = text.replace(token, "")
    return without_repeats(text.strip()).strip() or EMPTY_ANSWER


class Responder:
    """Builds every prompt from memory the audience may see; never from anything else."""

    def __init__(
        self, twin_id: int, owner_name: str, searcher: HybridSearcher, llm: LanguageModel, router: ModelRouter,
        experts: dict[str, Expert], budget: PromptBudget | None = None, profile: ProfileView | None = None,
    ) -> None:
        self.twin_id = twin_id
        self.owner_name = owner_name
        self.searcher = searcher
        self.llm = llm
        self.router = router
        self.experts = experts
        self.budget = budget or PromptBudget()
        self.profile = profile  # L1: bio and facts, each audience only its own

    async def retrieve(self, query: str, audience: str, exclude: Sequence[int] = ()) -> list[L0Item]:
        """The L0 items this audience may see that best match the query."""
        scope = SearchScope(twin_id=self.twin_id, audience=audience, asked_at=datetime.now(UTC))
        wanted = self.budget.memory_items + len(exclude) + REPLY_HEADROOM
        results = await asyncio.to_thread(self.searcher.search, clip(query, 1000), scope, wanted)
        skip = set(exclude)
        # The twin's own earlier replies stay in L0 but are not evidence: quoting them would compound mistakes.
        found = [r.item for r in results if r.item.id not in skip and r.item.kind != ItemKind.reply]
        return found[: self.budget.memory_items]

    async def model_for(self, audience: str) -> str:
        """The served model for this audience: the router reads the adapter registry, off the event loop."""
        return await asyncio.to_thread(self.router.model_for, audience)

    async def profile_for(self, audience: str, query: str) -> str | None:
        """The L1 profile and facts this audience may see, most related to the query first."""
        if self.profile is None:
            return None
        return await asyncio.to_thread(self.profile.for_prompt, audience, query)

    async def converse(self, speaker: Speaker, text: str, history: Sequence[L0Item], exclude: Sequence[int]) -> Answer:
        """The owner gets their assistant; anyone else gets the twin speaking for the owner."""
        # L0 search and the facts' ranking each embed the message: side by side, in worker threads
        memory, profile = await asyncio.gather(self.retrieve(text, speaker.trust, exclude),
                                               self.profile_for(speaker.trust, text))
        block = memory_block(memory, self.budget, profile=profile)
        if speaker.trust == "owner":
            mode, messages = Mode.assistant, assistant_prompt(self.owner_name, block, history, text, self.budget)
        else:
            messages = on_behalf_prompt(self.owner_name, speaker.name, block, history, text, self.budget)
            mode = Mode.on_behalf
        model = await self.model_for(speaker.trust)
        text, used = await self._generate(messages, model)
        return Answer(guard(text), mode, used, tuple(item.id for item in memory))

    async def _generate(self, messages: list[dict[str, str]], model: str) -> tuple[str, str]:
        """The model's text and which model wrote it; streamed to the channel's listener when it has one."""
        listener, stream = reply_listener(), getattr(self.llm, "stream", None)
        if listener is None or stream is None:
            completion = await self.llm.complete(messages, model=model)
            return completion.text, completion.model
        pieces: list[str] = []
        shown = 0  # characters of the visible text handed over: reasoning is never shown, even while written
        async for _seconds, piece in stream(messages, model=model):
            pieces.append(piece)
            visible = REASONING.sub("", "".join(pieces))
            cut = visible.rfind("<", shown)
            if cut >= 0 and "<think>".startswith(visible[cut:]):  # a reasoning tag may be arriving: wait for it
                visible = visible[:cut]
            if len(visible) > shown:
                listener(visible[shown:])
                shown = len(visible)
        return "".join(pieces), model

    async def introduce(self, target: Speaker) -> Answer:
        """The owner introduced to the target, from what the target may see."""
        query = f"{self.owner_name} work interests projects plans {target.name}"
        memory = await self.retrieve(query, target.trust)
        profile = await self.profile_for(target.trust, query)
        messages = introduce_prompt(self.owner_name, target.name, memory_block(memory, self.budget, profile=profile))
        completion = await self.llm.complete(messages, model=await self.model_for(target.trust))
        return Answer(guard(completion.text), Mode.introduce, completion.model, tuple(item.id for item in memory),
                      {"target": target.name, "target_audience": target.trust})

    async def ask_expert(self, name: str, request: str) -> Answer:
        """Relay the owner's request to an expert with the context the expert may see."""
        expert = self.experts[name]
        shareable = await self.retrieve(request, expert.audience)
        private = await self.retrieve(request, "owner")
        shareable_facts = await self.profile_for(expert.audience, request)
        private_facts = await self.profile_for("owner", request)
        model = await self.model_for("owner")
        result = await relay(expert, request, shareable, private, self.llm, model, self.owner_name, self.budget,
                             shareable_facts=shareable_facts, private_facts=private_facts)
        sent_request = result.sent[-1]["content"]
        text = f"{guard(result.answer)}\n\n(sent to {name}: {clip(sent_request, 300)})"
        return Answer(text, Mode.expert, model, result.context_ids, {
            "expert": name, "sent": result.sent, "expert_answer": result.expert_answer, "verdict": result.verdict,
        })
