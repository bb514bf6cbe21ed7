"""The owner's profile: a global bio, a status bio and topics, written once per audience from only what that
audience may see, versioned; and the profile text each audience's prompts receive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel

from core.fact_ranking import Embed, FactRanker, QueryVector
from core.l1 import ANSWER_TOKENS
from core.llm import LanguageModel
from core.prompts import clip
from storage.facts import FactStore
from storage.fence import ForgottenMeanwhile, forget_fence
from storage.items import AUDIENCE_VISIBILITY
from storage.models import Fact, L0Item, ProfileVersion, utcnow
from storage.profiles import ProfileDraft, ProfileStore

log = logging.getLogger(__name__)

PROFILE_SYSTEM = (
    "You write the profile of {owner} that {reader} will see, from the facts and recent messages below and "
    "nothing else. global_bio: who {owner} is, in two to four sentences. status_bio: what is going on in "
    "{owner}'s life lately, in one or two sentences. topics: up to five subjects {owner} cares about, each with "
    'a short name and a one-sentence summary. Reply with JSON: {{"global_bio": "...", "status_bio": "...", '
    '"topics": [{{"name": "...", "summary": "..."}}]}}.'
)
READERS = {"owner": "{owner} themself", "contact": "people {owner} knows", "stranger": "anyone"}
# A conversation prompt carries the profile beside the retrieved messages: each bio cut to 300 characters
# and the 5 facts most related to the message, 200 characters each (about 350 tokens in all).
BIO_CHARS = 300
PROMPT_FACTS = 5
PROMPT_FACT_CHARS = 200
# The profile prompt must fit the bundled model's 2048 tokens with a 512-token answer: the newest 20 facts and
# 8 recent messages, 150 characters each (about 4 characters a token).
PROFILE_FACTS = 20
LINE_CHARS = 150
NOTHING_SHARED = "{owner} has not shared a profile with you yet."


class Topic(BaseModel):
    """A subject the owner cares about."""

    name: str
    summary: str


class GeneratedProfile(BaseModel):
    """The model's answer to the profile prompt."""

    global_bio: str
    status_bio: str
    topics: list[Topic]


@dataclass(frozen=True)
class ProfileInputs:
    """What one audience's profile is written from."""

    facts: tuple[Fact, ...]
    items: tuple[L0Item, ...]

    def key(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Equal keys mean equal inputs: one generation serves both audiences."""
        return tuple(f.id for f in self.facts), tuple(i.id for i in self.items)


def profile_prompt(owner: str, audience: str, inputs: ProfileInputs) -> list[dict[str, str]]:
    """Facts and the owner's recent messages, for one audience's profile."""
    system = PROFILE_SYSTEM.format(owner=owner, reader=READERS[audience].format(owner=owner))
    facts = "\n".join(f"- {clip(fact.text, LINE_CHARS)}" for fact in inputs.facts) or "(none)"
    recent = "\n".join(f"[{item.occurred_at:%d %b %Y}] {clip(item.text, LINE_CHARS)}" for item in inputs.items)
    recent = recent or "(none)"
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Facts:\n{facts}\n\nRecent messages of {owner}:\n{recent}"}]


class ProfileBuilder:
    """Regenerates the profile of one twin for every audience and stores it as a new version."""

    def __init__(
        self, twin_id: int, owner_name: str, facts: FactStore, profiles: ProfileStore, llm: LanguageModel,
        model: str | None = None, recent_items: int = 8, min_changes: int = 5, max_age: timedelta = timedelta(days=1),
    ) -> None:
        self.twin_id = twin_id
        self.owner_name = owner_name
        self.facts = facts
        self.profiles = profiles
        self.llm = llm
        self.model = model
        self.recent_items = recent_items
        self.min_changes = min_changes  # facts changed since the last version that make a refresh due
        self.max_age = max_age  # after this, any change makes a refresh due

    def due(self) -> bool:
        """Whether enough changed since the active version (or there is none and there are facts)."""
        active = self.profiles.active(self.twin_id, "owner")
        since = active.created_at if active else None
        changed = self.facts.changed_since(self.twin_id, since)
        if changed == 0:
            return False
        return active is None or changed >= self.min_changes or utcnow() - active.created_at >= self.max_age

    async def refresh(self) -> int | None:
        """Write every audience's profile and activate them as one version; None when there is nothing to write."""
        drafts: dict[str, ProfileDraft] = {}
        written: dict[tuple, ProfileDraft] = {}
        for audience in AUDIENCE_VISIBILITY:
            inputs = await asyncio.to_thread(self.inputs, audience)
            if inputs.key() not in written:
                written[inputs.key()] = await self.draft(audience, inputs)
            drafts[audience] = written[inputs.key()]
        if not any(draft.global_bio for draft in drafts.values()):
            return None
        return await asyncio.to_thread(self.save_unless_forgotten, drafts)

    def save_unless_forgotten(self, drafts: dict[str, ProfileDraft]) -> int | None:
        """Save the new version, unless a forget took a fact or an item it was written from since it was read
        (then nothing is saved: it is still due, the next refresh writes it from what is left)."""
        with forget_fence(self.profiles.engine):
            try:
                return self.profiles.save(self.twin_id, drafts)
            except ForgottenMeanwhile as error:
                log.info("profile refresh dropped: %s", error)
                return None

    def inputs(self, audience: str) -> ProfileInputs:
        """The current facts and the owner's recent items this audience may see."""
        facts = self.facts.current(self.twin_id, audience)[-PROFILE_FACTS:]  # oldest first: the newest
        items = self.profiles.recent_items(self.twin_id, audience, self.recent_items)
        return ProfileInputs(tuple(facts), tuple(items))

    async def draft(self, audience: str, inputs: ProfileInputs) -> ProfileDraft:
        """One audience's profile; empty when the audience may see nothing."""
        if not inputs.facts and not inputs.items:
            return ProfileDraft(global_bio="", status_bio="")
        prompt = profile_prompt(self.owner_name, audience, inputs)
        answer = await self.llm.complete_json(prompt, GeneratedProfile, model=self.model, max_tokens=ANSWER_TOKENS)
        return ProfileDraft(
            global_bio=answer.global_bio.strip(), status_bio=answer.status_bio.strip(),
            topics=[topic.model_dump() for topic in answer.topics[:5]],
            fact_ids=tuple(fact.id for fact in inputs.facts), item_ids=tuple(item.id for item in inputs.items),
        )


def profile_text(profile: ProfileVersion | None, facts: Sequence[Fact]) -> str | None:
    """The profile section of a prompt: bio, what is going on, facts; None when there is nothing."""
    lines = []
    if profile is not None and profile.global_bio:
        lines.append(f"Bio: {clip(profile.global_bio, BIO_CHARS)}")
    if profile is not None and profile.status_bio:
        lines.append(f"Lately: {clip(profile.status_bio, BIO_CHARS)}")
    lines += [f"- {clip(fact.text, PROMPT_FACT_CHARS)}" for fact in facts]
    return "\n".join(lines) or None


class ProfileView:
    """What of the profile and facts each audience is given: only what it may see, never more."""

    def __init__(self, twin_id: int, owner_name: str, facts: FactStore, profiles: ProfileStore,
                 embed: Embed | None = None, query_vector: QueryVector | None = None) -> None:
        self.twin_id = twin_id
        self.owner_name = owner_name
        self.facts = facts
        self.profiles = profiles
        self.embed = embed
        self.query_vector = query_vector  # the message's embedding, shared with L0 search
        self._rankers: dict[str, FactRanker] = {}  # one per audience: each caches its own facts' vectors

    def for_prompt(self, audience: str, query: str) -> str | None:
        """The audience's own profile version and its visible facts most related to the query."""
        profile = self.profiles.active(self.twin_id, audience)
        ranker = self._rankers.setdefault(audience, FactRanker(self.embed, query_vector=self.query_vector))
        facts = ranker.rank(self.facts.current(self.twin_id, audience), query, PROMPT_FACTS)
        return profile_text(profile, facts)

    def describe(self, audience: str) -> str:
        """The profile as /profile shows it: the owner sees everything and the fact counts."""
        profile = self.profiles.active(self.twin_id, audience)
        facts = self.facts.current(self.twin_id, audience)
        if profile is None and not facts:
            return NOTHING_SHARED.format(owner=self.owner_name)
        lines = [f"Bio: {profile.global_bio}", f"Lately: {profile.status_bio}"] if profile else []
        if profile is not None and profile.topics:
            lines.append("Topics: " + "; ".join(f"{t['name']}: {t['summary']}" for t in profile.topics))
        if audience == "owner":
            by_level = {level: sum(f.visibility == level for f in facts) for level in ("private", "contacts", "public")}
            counts = ", ".join(f"{count} {level}" for level, count in by_level.items())
            version = f"version {profile.version}" if profile else "no profile yet"
            lines.append(f"{len(facts)} current facts ({counts}); {version}.")
        else:
            lines += [f"- {fact.text}" for fact in facts[-10:]]
        return "\n".join(lines)
