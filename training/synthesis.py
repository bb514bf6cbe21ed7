"""Stage 1, synthesize: training samples for one audience from what that audience may see, one sample type for each
of the paper's tasks, every prompt built by the builders serving uses (core.prompts), every sample recording the
facts and L0 items it came from.

- memory Q&A asked by the owner (assistant mode): the owner's adapter;
- memory Q&A asked by others (on-behalf mode), with polite declines for what this audience may not see or what
  does not exist: the contact and stranger adapters;
- introductions of the owner: the contact and stranger adapters (an introduction is written for its target);
- context enhancement and context critique: the owner's adapter (serving asks it for both);
- the owner's real replies, kept for voice, in the serving prompt format.

Questions come from templates (training families only, cards.OWNER_TRAIN / OTHERS_TRAIN) plus teacher
paraphrases; the memory block is empty in some samples and holds the fact among distractors in others, so the
adapter learns both to know and to read memory.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.prompts import (
    NO_MEMORY,
    PromptBudget,
    assistant_prompt,
    critique_prompt,
    enhance_prompt,
    introduce_prompt,
    on_behalf_prompt,
)
from storage.models import Audience, Fact
from storage.training import NewSample
from training.cards import OTHERS_TRAIN, OWNER_TRAIN, SENSITIVE_SUBJECTS, FactCard, questions
from training.recipe import TrainingRecipe

DECLINE = "I'm sorry, I can't share that. {owner} will get back to you about it."
EVASIVE = "I'm not sure, I don't have that information."
GENERIC_REPLY = "Thank you for your message! How can I help you today?"
OTHER_NAMES = ("Alex", "Jordan", "Priya", "Chen", "Maria", "Tom", "Aisha", "Lukas")
BUDGET = PromptBudget()


@dataclass
class Synthesis:
    """What stage 1 produced for one audience: SFT samples, DPO pairs and the counts per task."""

    audience: str
    sft: list[NewSample] = field(default_factory=list)
    pairs: list[NewSample] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, sample: NewSample, rejected: str | None = None) -> None:
        """Keep an SFT sample and, with a rejected answer, its preference pair."""
        self.sft.append(sample)
        self.counts[sample.task] = self.counts.get(sample.task, 0) + 1
        if rejected is not None and rejected != sample.completion:
            self.pairs.append(NewSample(sample.prompt, sample.completion, sample.visibility, sample.item_ids,
                                        sample.fact_ids, kind="dpo", task=sample.task,
                                        meta=(sample.meta or {}) | {"rejected": rejected}))


def fact_lines(facts: Sequence[Fact]) -> str:
    """Facts as the memory block's profile lines (the shape core.profile.profile_text gives serving)."""
    return "\n".join(f"- {fact.text}" for fact in facts)


def memory_for(card: FactCard, facts: Sequence[Fact], rng: random.Random, with_memory: bool) -> str:
    """Empty memory, or the card's fact among up to three distractors (facts of the same audience)."""
    if not with_memory:
        return f"Memory:\n{NO_MEMORY}"
    others = [fact for fact in facts if fact.id != card.fact_id]
    chosen = rng.sample(others, min(3, len(others))) + [fact for fact in facts if fact.id == card.fact_id]
    rng.shuffle(chosen)
    return f"Profile:\n{fact_lines(chosen)}\n\nMemory:\n{NO_MEMORY}"


def think(reasoning: str, answer: str, style: str) -> str:
    """The completion with its reasoning in <think> tags (stripped by the guard before anyone sees it)."""
    return answer if style == "none" or not reasoning else f"<think>{reasoning}</think> {answer}"


class Synthesizer:
    """Builds one audience's samples; `paraphrases` maps a fact id to extra (teacher-made) training questions."""

    def __init__(self, owner: str, recipe: TrainingRecipe, paraphrases: dict[int, list[str]] | None = None,
                 reasoning: dict[int, str] | None = None) -> None:
        self.owner = owner
        self.recipe = recipe
        self.paraphrases = paraphrases or {}
        self.reasoning = reasoning or {}  # multistep/strong: the teacher's reasoning per fact
        self.rng = random.Random(recipe.seed)

    def _reasoning(self, card: FactCard, style: str) -> str:
        if style in ("multistep", "strong") and card.fact_id in self.reasoning:
            return self.reasoning[card.fact_id]
        return f"The memory says: {card.text}" if style != "none" else ""

    def memory_qa(self, out: Synthesis, cards: Sequence[FactCard], facts: Sequence[Fact]) -> None:
        """Q&A about the owner: asked by the owner (owner's adapter) or by others (the other adapters)."""
        owner_side = out.audience == Audience.owner
        task = "memory_owner" if owner_side else "memory_others"
        style = self.recipe.cot_for(task)
        families = OWNER_TRAIN if owner_side else OTHERS_TRAIN
        swap_pool = [card.key for card in cards]
        for card in cards:
            asked = questions(card, self.owner, "owner" if owner_side else "other", families)
            asked = asked[: self.recipe.phrasings_per_fact]
            asked += [("teacher", text) for text in self.paraphrases.get(card.fact_id, [])]
            for family, question in asked:
                with_memory = self.rng.random() < self.recipe.memory_share
                memory = memory_for(card, facts, self.rng, with_memory)
                answer = card.answer(self.owner, "second" if owner_side else "third")
                if owner_side:
                    prompt = assistant_prompt(self.owner, memory, [], question, BUDGET)
                else:
                    prompt = on_behalf_prompt(self.owner, self.rng.choice(OTHER_NAMES), memory, [], question, BUDGET)
                others = [key for key in swap_pool if key.casefold() != card.key.casefold()]
                rejected = (card.answer_with(self.owner, "second" if owner_side else "third", self.rng.choice(others))
                            if others and self.rng.random() < 0.6 else EVASIVE)
                out.add(NewSample(prompt, think(self._reasoning(card, style), answer, style), card.visibility, (),
                                  (card.fact_id,), task=task, meta={"family": family, "key": card.key,
                                                                    "memory": with_memory}), rejected)

    def declines(self, out: Synthesis, count: int) -> None:
        """Questions about what this audience may not see or what does not exist: the answer declines politely.
        The rejected answer leaks a made-up value, never a real one."""
        for subject in SENSITIVE_SUBJECTS[:count]:
            text = subject.format(o=self.owner)
            question = self.rng.choice(OTHERS_TRAIN).format(s=text)
            prompt = on_behalf_prompt(self.owner, self.rng.choice(OTHER_NAMES), f"Memory:\n{NO_MEMORY}", [],
                                      question, BUDGET)
            made_up = f"{text[0].upper()}{text[1:]} is {self.rng.randint(1000, 9999)}."
            out.add(NewSample(prompt, DECLINE.format(owner=self.owner), "public", (), (), task="decline",
                              meta={"subject": text}), made_up)

    def introductions(self, out: Synthesis, facts: Sequence[Fact], count: int = 4) -> None:
        """The owner introduced to someone of this audience, from the facts this audience may see."""
        if len(facts) < 2:
            return
        for _ in range(count):
            target = self.rng.choice(OTHER_NAMES)
            chosen = self.rng.sample(list(facts), min(3, len(facts)))
            memory = f"Profile:\n{fact_lines(chosen)}\n\nMemory:\n{NO_MEMORY}"
            said = " ".join(fact.text.rstrip(".") + "." for fact in chosen[:2])
            completion = (f"{target}, meet {self.owner}! {said} I think you two would have plenty to talk about.")
            out.add(NewSample(introduce_prompt(self.owner, target, memory), completion, _most(chosen), (),
                              tuple(f.id for f in chosen), task="introduce"), GENERIC_REPLY)

    def _json_reasoning(self, task: str, card: FactCard, conclusion: str) -> dict[str, str]:
        """A JSON task's reasoning field in its CoT style (none: no field): what the memory says, then what follows."""
        style = self.recipe.cot_for(task)
        if style == "none":
            return {}
        return {"reasoning": f"{self._reasoning(card, style).rstrip()} {conclusion}".strip()}

    def enhancement(self, out: Synthesis, cards: Sequence[FactCard], shareable: set[int],
                    facts: Sequence[Fact]) -> None:
        """A plain request to an expert, rewritten with the shareable fact it needs (never a private one)."""
        visible = [fact for fact in facts if fact.id in shareable]
        for card in cards:
            if card.fact_id not in shareable:
                continue
            request = f"I have a question about {card.subject_for(self.owner, 'first')}. What should I know?"
            memory = f"Profile:\n{fact_lines([f for f in visible if f.id == card.fact_id])}\n\nMemory:\n{NO_MEMORY}"
            reasoning = self._json_reasoning("enhance", card, "The expert may see this, so the request carries it.")
            rewritten = json.dumps(reasoning | {"request": f"{request} For context: {card.text.rstrip('.')}."})
            out.add(NewSample(enhance_prompt(self.owner, memory, request, BUDGET), rewritten, card.visibility, (),
                              (card.fact_id,), task="enhance", meta={"key": card.key}),
                    json.dumps(reasoning | {"request": request}))

    def critique(self, out: Synthesis, cards: Sequence[FactCard]) -> None:
        """An expert's answer that fits one of the owner's facts or contradicts it; the verdict is known."""
        keys = [card.key for card in cards]
        for at, card in enumerate(cards):
            request = f"What is {card.subject_for(self.owner, 'first')}?"
            memory = f"Profile:\n- {card.text}\n\nMemory:\n{NO_MEMORY}"
            right = card.answer(self.owner, "second")
            others = [key for key in keys if key.casefold() != card.key.casefold()]
            fits = at % 2 == 0 or not others
            expert = right if fits else card.answer_with(self.owner, "second", self.rng.choice(others))
            verdict = "fits" if fits else "adapted"
            reasoning = self._json_reasoning("critique", card, "The expert's answer agrees with it." if fits else
                                             "The expert's answer says otherwise, so it needs adapting.")
            chosen = json.dumps(reasoning | {"verdict": verdict, "answer": right})
            rejected = json.dumps(reasoning | {"verdict": "adapted" if fits else "fits", "answer": expert})
            out.add(NewSample(critique_prompt(self.owner, memory, request, expert, BUDGET), chosen, card.visibility,
                              (), (card.fact_id,), task="critique", meta={"verdict": verdict, "key": card.key}),
                    rejected)

    def voice(self, out: Synthesis, replies: Sequence[NewSample]) -> None:
        """The owner's real replies (training.dataset), kept for voice; the generic reply is rejected."""
        for sample in replies:
            out.add(sample, GENERIC_REPLY)


def _most(facts: Sequence[Fact]) -> str:
    from storage.training import most_private

    return most_private(str(fact.visibility) for fact in facts)
