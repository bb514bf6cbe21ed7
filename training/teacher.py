"""The teacher: paraphrases of a fact's question (JSON-schema output) and, for the multi-step and strong
chain-of-thought styles, the reasoning. Any OpenAI-compatible endpoint; it only ever receives the facts its
visibility allows (a fact above it gets templates alone). Every output is parsed against a schema and checked:
a question that gives its answer away, or a reasoning that drops the key, is discarded (and counted)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from core.llm import LanguageModel, LLMOutputError, LLMUnavailable
from storage.models import Visibility
from storage.training import PRIVACY_ORDER
from training.cards import FactCard, mentions, names_topic

log = logging.getLogger(__name__)

PARAPHRASE_SYSTEM = (
    "You write questions. Give {n} different ways someone could ask the question below, in plain English. "
    "At least half must not use any word of the thing asked about (for \"What is my home city?\": \"Where do I "
    "live?\"). Do not include the answer. Reply with JSON: {{\"questions\": [\"...\"]}}."
)
REASON_SYSTEM = "Explain in one sentence how the fact answers the question. Reply with JSON: {\"reasoning\": \"...\"}."
STRONG_SYSTEM = ("Think step by step, then answer. Reply with JSON: {\"reasoning\": \"...\", \"answer\": \"...\"}; "
                 "the answer must state the value from the fact.")


class Paraphrases(BaseModel):
    questions: list[str] = Field(max_length=20)


class Reasoning(BaseModel):
    reasoning: str = Field(min_length=1, max_length=600)


class StrongReasoning(BaseModel):
    reasoning: str = Field(min_length=1, max_length=600)
    answer: str = Field(min_length=1, max_length=300)


@dataclass
class TeacherReport:
    """What the teacher gave and what was thrown away."""

    asked: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    withheld: int = 0  # facts above the teacher's visibility: never sent

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def may_see(visibility: str, allowed: str) -> bool:
    """Whether memory of this visibility may go to an endpoint allowed up to `allowed`."""
    return PRIVACY_ORDER.index(Visibility(visibility)) <= PRIVACY_ORDER.index(Visibility(allowed))


class Teacher:
    """A model that writes paraphrases and reasoning, within its visibility."""

    def __init__(self, llm: LanguageModel, model: str | None, visibility: str) -> None:
        self.llm = llm
        self.model = model
        self.visibility = visibility
        self.report = TeacherReport()

    async def paraphrases(self, card: FactCard, question: str, n: int) -> list[str]:
        """Up to n new phrasings of the question, none holding the key, none repeated."""
        if not may_see(card.visibility, self.visibility):
            self.report.withheld += 1
            return []
        self.report.asked += 1
        messages = [{"role": "system", "content": PARAPHRASE_SYSTEM.format(n=n)}, {"role": "user", "content": question}]
        try:
            answer = await self.llm.complete_json(messages, Paraphrases, model=self.model, max_tokens=200)
        except (LLMOutputError, LLMUnavailable) as error:
            log.info("teacher paraphrase failed: %s", error)
            self.report.drop("invalid output")
            return []
        kept: list[str] = []
        seen = {" ".join(question.casefold().split())}
        for text in answer.questions:
            text = " ".join(text.split())
            fold = text.casefold()
            if not 8 <= len(text) <= 160:
                self.report.drop("length")
            elif mentions(text, card.key):
                self.report.drop("gives the answer away")
            elif fold in seen:
                self.report.drop("duplicate")
            else:
                seen.add(fold)
                kept.append(text)
        self.report.kept += len(kept)
        return kept[:n]

    async def reasoning(self, card: FactCard, question: str, style: str) -> str | None:
        """The reasoning for the multi-step (reason, then answer) or strong (strict format) style."""
        if not may_see(card.visibility, self.visibility):
            self.report.withheld += 1
            return None
        self.report.asked += 1
        user = {"role": "user", "content": f"Fact: {card.text}\nQuestion: {question}"}
        try:
            if style == "strong":
                strong = await self.llm.complete_json([{"role": "system", "content": STRONG_SYSTEM}, user],
                                                      StrongReasoning, model=self.model, max_tokens=250)
                if not mentions(strong.answer, card.key):
                    self.report.drop("answer without the key")
                    return None
                return strong.reasoning
            step = await self.llm.complete_json([{"role": "system", "content": REASON_SYSTEM}, user], Reasoning,
                                                model=self.model, max_tokens=150)
            return step.reasoning
        except (LLMOutputError, LLMUnavailable) as error:
            log.info("teacher reasoning failed: %s", error)
            self.report.drop("invalid output")
            return None


async def teach(teacher: Teacher | None, cards: Sequence[FactCard], owner: str, per_fact: int,
                style: str) -> tuple[dict[int, list[str]], dict[int, list[str]], dict[int, str]]:
    """(training paraphrases, evaluation paraphrases, reasoning) per fact id. Paraphrases that reuse a word of the
    fact's subject are trained on; of those that do not (the indirect kind), every other one is kept for
    evaluation, never trained on, so the evaluation's indirect questions are indirect."""
    train: dict[int, list[str]] = {}
    held: dict[int, list[str]] = {}
    reasons: dict[int, str] = {}
    if teacher is None:
        return train, held, reasons
    for card in cards:
        question = f"What is {card.subject_for(owner, 'first')}?"
        found = await teacher.paraphrases(card, question, per_fact)
        indirect = [q for q in found if not names_topic(q, card, owner)]
        train[card.fact_id] = [q for q in found if names_topic(q, card, owner)] + indirect[::2]
        held[card.fact_id] = indirect[1::2]
        if style in ("multistep", "strong"):
            reasoning = await teacher.reasoning(card, question, style)
            if reasoning:
                reasons[card.fact_id] = reasoning
    return train, held, reasons
