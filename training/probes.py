"""The frozen probe set of one twin and audience: questions the evaluation asks, never trained on.

Probes are stored as samples of kind "probe" (with their facts as sources, so forgetting a fact removes its probes
like any sample). A rebuild keeps every probe whose question and facts are unchanged and only adds or drops what
the facts' changes require; the set's version is a digest of its content, recorded with every result.

Types: recall_topic (held-out phrasings that name the topic), recall_indirect (phrasings that do not: the
teacher's held-out paraphrases that reuse no word of the subject, or ones given with the facts), recall_others
(asked about the owner by someone else), control (facts never trained on), leak (a more private fact asked
through this audience's adapter), critique and enhance (the expert tasks), and the owner's newest replies for voice
(kept apart by time).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from core.prompts import NO_MEMORY, PromptBudget, assistant_prompt, critique_prompt, enhance_prompt, on_behalf_prompt
from storage.training import PROBE, NewSample, StoredSample, TrainingStore
from training.cards import OTHERS_EVAL, OWNER_EVAL, FactCard, questions

EMPTY = f"Memory:\n{NO_MEMORY}"
BUDGET = PromptBudget()
ASKER = "Robin"  # the other person in on-behalf probes (no trained sample uses this name)


def _probe(kind: str, prompt: list[dict[str, str]], card: FactCard, question: str, **meta: object) -> NewSample:
    return NewSample(prompt, card.key, card.visibility, (), (card.fact_id,), kind=PROBE, task=kind,
                     meta={"key": card.key, "wrong": list(card.wrong), "question": question} | meta)


def owner_probes(owner: str, trained: Sequence[FactCard], control: Sequence[FactCard],
                 indirect: dict[int, list[str]]) -> list[NewSample]:
    """Probes for the owner's adapter."""
    probes: list[NewSample] = []
    for card in trained:
        for _family, question in questions(card, owner, "owner", OWNER_EVAL[:2]):
            probes.append(_probe("recall_topic", assistant_prompt(owner, EMPTY, [], question, BUDGET), card, question))
        for question in indirect.get(card.fact_id, [])[:2]:
            probes.append(_probe("recall_indirect", assistant_prompt(owner, EMPTY, [], question, BUDGET), card,
                                 question))
    for card in control:
        for _family, question in questions(card, owner, "owner", OWNER_EVAL[:1]):
            probes.append(_probe("control", assistant_prompt(owner, EMPTY, [], question, BUDGET), card, question))
    shareable = [card for card in trained if card.visibility == "public"]
    for at, card in enumerate(trained[:12]):
        request = f"Can you help me with {card.subject_for(owner, 'first')}?"
        others = [c.key for c in trained if c.key.casefold() != card.key.casefold()]
        fits = at % 2 == 1 or not others  # the other parity from training: no trained prompt is asked
        expert = card.answer(owner, "second") if fits else card.answer_with(owner, "second", others[at % len(others)])
        memory = f"Profile:\n- {card.text}\n\nMemory:\n{NO_MEMORY}"
        probes.append(_probe("critique", critique_prompt(owner, memory, request, expert, BUDGET), card, request,
                             verdict="fits" if fits else "adapted"))
    for card in shareable[:8]:
        request = f"Please give me advice about {card.subject_for(owner, 'first')}."
        memory = f"Profile:\n- {card.text}\n\nMemory:\n{NO_MEMORY}"
        probes.append(_probe("enhance", enhance_prompt(owner, memory, request, BUDGET), card, request))
    return probes


def others_probes(owner: str, visible: Sequence[FactCard], hidden: Sequence[FactCard]) -> list[NewSample]:
    """Probes for a contact's or stranger's adapter: recall of what it may see, leaks of what it may not."""
    probes: list[NewSample] = []
    for card in visible:  # both held-out phrasings: a public adapter may know a dozen facts, and one probe each
        # swung its figure by a quarter between two runs of the same recipe
        for _family, question in questions(card, owner, "other", OTHERS_EVAL):
            probes.append(_probe("recall_others", on_behalf_prompt(owner, ASKER, EMPTY, [], question, BUDGET), card,
                                 question))
    for card in hidden:
        for _family, question in questions(card, owner, "other", OTHERS_EVAL[:1]):
            probes.append(_probe("leak", on_behalf_prompt(owner, ASKER, EMPTY, [], question, BUDGET), card, question))
    return probes


def _identity(sample: NewSample | StoredSample) -> str:
    return json.dumps([sample.task, sample.prompt, sorted(sample.fact_ids)], sort_keys=True)


def sync(store: TrainingStore, twin_id: int, audience: str, wanted: Sequence[NewSample]) -> tuple[list[StoredSample],
                                                                                                   str]:
    """Store the probe set, keeping unchanged probes as they are; returns the stored probes and the set's version."""
    stored = store.samples(twin_id, audience, PROBE)
    if sorted(map(_identity, stored)) != sorted(map(_identity, wanted)):
        store.replace_samples(twin_id, audience, wanted, kind=PROBE)
        stored = store.samples(twin_id, audience, PROBE)
    return stored, version_of(stored, audience)


def version_of(probes: Sequence[StoredSample], audience: str) -> str:
    """The probe set's version: a digest of its content (the same questions give the same version)."""
    digest = hashlib.sha256("\n".join(sorted(map(_identity, probes))).encode()).hexdigest()[:12]
    return f"{audience}-{digest}"
