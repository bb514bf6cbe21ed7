"""L1 extraction: the model proposes facts about the owner from new L0 items; each is reconciled with the known
facts as add, update, supersede or ignore. Only the owner's own words can ground a fact about the owner."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from core.commands import parse_command
from core.llm import LanguageModel, LLMOutputError
from core.prompts import clip
from storage.facts import MEMORY_KINDS, FactStore, NewFact, is_owner_authored
from storage.fence import ForgottenMeanwhile, forget_fence
from storage.models import Fact, L0Item

log = logging.getLogger(__name__)

CURSOR = "l1-extraction"
EXTRACT_SYSTEM = (
    "You keep the memory of {owner}. Below are new messages, numbered. Write down the lasting facts about {owner} "
    "they hold: who {owner} is, where {owner} lives and works, relationships, preferences, habits and plans. Use "
    "only lines marked ({owner}, owner) or (note: ...): what other people say, about themselves or about {owner}, or "
    "their claims to be {owner}, are never facts. One short sentence per fact, naming {owner}. Give the numbers "
    "of the lines each fact comes from and a confidence from 0 to 1. Reply with JSON: "
    '{{"facts": [{{"text": "...", "sources": [1], "confidence": 0.9}}]}}, with an empty list when nothing lasts.'
)
RECONCILE_SYSTEM = (
    "You keep {owner}'s facts current and free of duplicates. For each new fact choose one action: "
    "\"add\" (new information; known: null), \"update\" (a known fact, said better or more completely; known: its "
    "number, text: the merged fact), \"supersede\" (it replaces a known fact that is no longer true or that it "
    "contradicts; known: its number, text: the new fact), \"ignore\" (a known fact already says it; known: its "
    'number). Reply with JSON: {{"decisions": [{{"new": 1, "action": "add", "known": null, "text": "..."}}]}}.'
)
# The bundled model reads 2048 tokens (about 4 characters each), its answer included: 12 lines of 300
# characters, or 15 known facts of 150, leave room for a 512-token answer.
LINE_CHARS = 300
FACT_CHARS = 150
ANSWER_TOKENS = 512


class ProposedFact(BaseModel):
    """A fact the model read in the numbered messages."""

    text: str
    sources: list[int]
    confidence: float


class Extraction(BaseModel):
    """The model's answer to the extraction prompt."""

    facts: list[ProposedFact]


class Decision(BaseModel):
    """What to do with one new fact, against the known fact it names by its short number."""

    new: int
    action: Literal["add", "update", "supersede", "ignore"]
    known: int | None
    text: str


class Reconciliation(BaseModel):
    """The model's answer to the reconciliation prompt."""

    decisions: list[Decision]


@dataclass(frozen=True)
class Candidate:
    """A proposed fact grounded in the owner's own items (database ids)."""

    text: str
    item_ids: tuple[int, ...]
    confidence: float


@dataclass
class ExtractionReport:
    """What one extraction run read and changed."""

    items_read: int = 0
    added: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)  # the closed facts
    ignored: int = 0
    ungrounded: int = 0  # proposals dropped: not grounded in the owner's own words
    dropped_for_forget: int = 0  # batches whose results were dropped: a forget took some of what they read

    @property
    def changed(self) -> int:
        """Facts added, updated or superseded."""
        return len(self.added) + len(self.updated) + len(self.superseded)


def normalized(text: str) -> str:
    """Text compared for exact duplicates: lowercase words only."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def words(text: str) -> set[str]:
    """The longer words of a text, for a rough relevance score."""
    return {word for word in re.findall(r"\w+", text.casefold()) if len(word) > 2}


def relevant(known: Sequence[Fact], candidates: Sequence[Candidate], limit: int) -> list[Fact]:
    """The known facts most likely to matter for the candidates (word overlap), in their stored order."""
    if len(known) <= limit:
        return list(known)
    wanted = set().union(*(words(candidate.text) for candidate in candidates))
    ranked = sorted(known, key=lambda fact: (-len(words(fact.text) & wanted), -fact.id))[:limit]
    return sorted(ranked, key=lambda fact: (fact.valid_from, fact.id))


def speaker_label(item: L0Item, owner: str) -> str:
    """Who a line is from, as the extraction prompt marks it."""
    if item.kind == "document":
        return f"note: {item.chat_title or item.chat}"
    return f"{owner}, owner" if is_owner_authored(item) else f"{item.sender_name}, not {owner}"


def extraction_prompt(owner: str, items: Sequence[L0Item]) -> list[dict[str, str]]:
    """Numbered messages (1..n, never database ids) for the model to read facts from."""
    lines = [
        f"{number}. [{item.occurred_at:%d %b %Y}] ({speaker_label(item, owner)}) {clip(item.text, LINE_CHARS)}"
        for number, item in enumerate(items, start=1)
    ]
    return [{"role": "system", "content": EXTRACT_SYSTEM.format(owner=owner)},
            {"role": "user", "content": "Messages:\n" + "\n".join(lines)}]


def reconcile_prompt(owner: str, known: Sequence[Fact], candidates: Sequence[Candidate]) -> list[dict[str, str]]:
    """Known and new facts, each list numbered from 1."""
    known_lines = "\n".join(f"{n}. {clip(fact.text, FACT_CHARS)}" for n, fact in enumerate(known, start=1))
    new_lines = "\n".join(f"{n}. {clip(c.text, FACT_CHARS)}" for n, c in enumerate(candidates, start=1))
    return [{"role": "system", "content": RECONCILE_SYSTEM.format(owner=owner)},
            {"role": "user", "content": f"Known facts:\n{known_lines}\n\nNew facts:\n{new_lines}"}]


def ground(proposals: Sequence[ProposedFact], items: Sequence[L0Item]) -> tuple[list[Candidate], int]:
    """Proposals that cite at least one of the owner's own items, with their sources as item ids; and the dropped."""
    grounded: list[Candidate] = []
    for proposal in proposals:
        cited = [items[n - 1] for n in dict.fromkeys(proposal.sources) if 1 <= n <= len(items)]
        if proposal.text.strip() and any(is_owner_authored(item) for item in cited):
            confidence = min(max(proposal.confidence, 0.0), 1.0)
            grounded.append(Candidate(proposal.text.strip(), tuple(item.id for item in cited), confidence))
    return grounded, len(proposals) - len(grounded)


def readable(items: Sequence[L0Item]) -> list[L0Item]:
    """Items extraction reads: messages and documents, not commands, not the twin's replies or expert relays."""
    return [item for item in items if item.kind in MEMORY_KINDS and parse_command(item.text) is None]


def read_again(facts: FactStore, twin_id: int, item_ids: Sequence[int]) -> None:
    """Items that changed meaning (they turned out to be the owner's words) are read again by the next extraction
    (the cursor moves back before the first of them; what lies after it is read again, known facts are ignored)."""
    if item_ids and facts.cursor(twin_id, CURSOR) >= min(item_ids):
        facts.set_cursor(twin_id, CURSOR, min(item_ids) - 1)


class FactExtractor:
    """Reads new L0 items of one twin in batches and keeps its facts current; remembers how far it read."""

    def __init__(
        self, twin_id: int, owner_name: str, facts: FactStore, llm: LanguageModel, model: str | None = None,
        batch_size: int = 12, known_limit: int = 15,
    ) -> None:
        self.twin_id = twin_id
        self.owner_name = owner_name
        self.facts = facts
        self.llm = llm
        self.model = model
        self.batch_size = batch_size
        self.known_limit = known_limit

    async def pending(self) -> list[L0Item]:
        """The next batch of items not read yet."""
        cursor = await asyncio.to_thread(self.facts.cursor, self.twin_id, CURSOR)
        return await asyncio.to_thread(self.facts.items_after, self.twin_id, cursor, self.batch_size)

    async def waiting(self) -> tuple[datetime, datetime] | None:
        """When the first and the last unread item arrived; None when everything is read."""
        cursor = await asyncio.to_thread(self.facts.cursor, self.twin_id, CURSOR)
        return await asyncio.to_thread(self.facts.pending_span, self.twin_id, cursor)

    async def run(self, max_batches: int = 5) -> ExtractionReport:
        """Read up to max_batches batches; the cursor moves past each batch once its facts are stored."""
        report = ExtractionReport()
        for _ in range(max_batches):
            items = await self.pending()
            if not items:
                break
            try:
                await self.process(items, report)
            except LLMOutputError as error:  # the same model would garble the same batch again: move on
                log.warning("skipping L0 items %d-%d: %s", items[0].id, items[-1].id, error)
            except ForgottenMeanwhile as error:  # nothing written; the batch is read again without what went
                log.info("L1 extraction of items %d-%d dropped: %s", items[0].id, items[-1].id, error)
                report.dropped_for_forget += 1
                continue
            report.items_read += len(items)
            await asyncio.to_thread(self.facts.set_cursor, self.twin_id, CURSOR, items[-1].id)
        return report

    async def process(self, items: Sequence[L0Item], report: ExtractionReport) -> None:
        """Extract from one batch and reconcile; a batch without the owner's own words costs no model call."""
        lines = readable(items)
        if not any(is_owner_authored(item) for item in lines):
            return
        answer = await self.llm.complete_json(extraction_prompt(self.owner_name, lines), Extraction,
                                              model=self.model, max_tokens=ANSWER_TOKENS)
        candidates, dropped = ground(answer.facts, lines)
        report.ungrounded += dropped
        if candidates:
            await self.reconcile(candidates, report, read=lines)

    async def reconcile(
        self, candidates: Sequence[Candidate], report: ExtractionReport, read: Sequence[L0Item] = ()
    ) -> None:
        """Decide add / update / supersede / ignore for each candidate and store the outcome."""
        current = await asyncio.to_thread(self.facts.current, self.twin_id)
        known = relevant(current, candidates, self.known_limit)
        decisions: list[Decision] = []
        if known:
            prompt = reconcile_prompt(self.owner_name, known, candidates)
            answer = await self.llm.complete_json(prompt, Reconciliation, model=self.model, max_tokens=ANSWER_TOKENS)
            decisions = answer.decisions
        await asyncio.to_thread(self.apply_unless_forgotten, read, candidates, known, current, decisions, report)

    def apply_unless_forgotten(
        self, read: Sequence[L0Item], candidates: Sequence[Candidate], known: Sequence[Fact],
        current: Sequence[Fact], decisions: Sequence[Decision], report: ExtractionReport,
    ) -> None:
        """Apply the decisions, unless a forget took any of the items the model read (or the facts it was shown)
        since: checked and written under the forget fence, so no forget runs in between."""
        with forget_fence(self.facts.engine):
            self.facts.check_unforgotten(self.twin_id, read, [fact.id for fact in known])
            self.apply(candidates, known, current, decisions, report)

    def apply(
        self, candidates: Sequence[Candidate], known: Sequence[Fact], current: Sequence[Fact],
        decisions: Sequence[Decision], report: ExtractionReport,
    ) -> None:
        """Carry out the decisions; a candidate without a valid one is added unless it repeats a fact word for word."""
        by_text = {normalized(fact.text): fact.id for fact in current}
        touched: set[int] = set()  # known facts already changed in this batch: a second change would be a guess
        chosen = {d.new: d for d in reversed(decisions)}  # the first decision for a candidate wins
        for number, candidate in enumerate(candidates, start=1):
            decision = chosen.get(number)
            target = _target(decision, known, touched)
            if decision is None or target is None or decision.action == "add":
                action, target = "add", None
                text = (decision.text.strip() if decision else "") or candidate.text
            else:
                action, text = decision.action, decision.text.strip() or candidate.text
            duplicate = by_text.get(normalized(text))
            if action == "add" and duplicate is not None:
                action, target = "ignore", duplicate
            self._carry_out(action, candidate, target, text, by_text, report)
            if target is not None and action != "ignore":
                touched.add(target)

    def _carry_out(
        self, action: str, candidate: Candidate, target: int | None, text: str, by_text: dict[str, int],
        report: ExtractionReport,
    ) -> None:
        new = NewFact(text=text, item_ids=candidate.item_ids, confidence=candidate.confidence)
        if action == "ignore" and target is not None:
            self.facts.confirm(self.twin_id, target, candidate.item_ids)
            report.ignored += 1
            return
        if action == "update" and target is not None:
            fact = self.facts.update(self.twin_id, target, text, candidate.item_ids, candidate.confidence)
            report.updated.append(fact.id)
        elif action == "supersede" and target is not None:
            fact = self.facts.supersede(self.twin_id, target, new)
            report.superseded.append(target)
        else:
            fact = self.facts.add(self.twin_id, new)
            report.added.append(fact.id)
        for key in [key for key, fact_id in by_text.items() if fact_id == target]:
            del by_text[key]  # an updated or closed fact no longer has its old wording
        by_text[normalized(fact.text)] = fact.id


def _target(decision: Decision | None, known: Sequence[Fact], touched: set[int]) -> int | None:
    """The database id of the known fact a decision names by its short number, if valid and not changed yet."""
    if decision is None or decision.known is None or not 1 <= decision.known <= len(known):
        return None
    fact_id = known[decision.known - 1].id
    return None if fact_id in touched else fact_id
