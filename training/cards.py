"""Fact cards: an L1 fact as the loop reads it, a subject (what a question asks about) and a key span (the
answer), plus the question phrasing families the loop trains on and those it keeps for evaluation.

A fact is free text ("Sam's dog's name is Biscuit."). Its card comes from the copula or one of a few verb
patterns; a fact that has none gets no card and is reported, never guessed at. The key span is always a piece of
the fact's own text: grounding checks that an answer holds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from storage.models import Fact

PATTERNS = (  # (regex, how the subject reads as a noun phrase)
    (re.compile(r"^(?P<s>.+?)\s+(?P<v>is|are|was|were)\s+(?:called\s+|named\s+)?(?P<k>.+)$", re.I), "{s}"),
    (re.compile(r"^(?P<s>.+?)\s*:\s+(?P<k>.+)$"), "{s}"),
)

# Trained phrasings, then phrasings reserved for evaluation (never trained on). {s} is the subject.
OWNER_TRAIN = ("What is {s}?", "Remind me, what is {s}?", "Do you know {s}?", "Tell me {s}.",
               "I forgot {s}. What is it?", "Quick question: {s}?", "Can you recall {s}?", "I need {s}, please.",
               "What was {s} again?", "Help me remember {s}.")
OWNER_EVAL = ("What's {s}, do you remember?", "Could you look up {s} for me?", "Say {s}.")
OTHERS_TRAIN = ("What is {s}?", "Do you know {s}?", "Can you tell me {s}?", "I'm curious about {s}.",
                "Any idea what {s} is?", "Hey, what's {s}?", "Could you share {s}?", "I wanted to ask about {s}.")
OTHERS_EVAL = ("Would you happen to know {s}?", "Mind telling me {s}?")
# Questions about what does not exist or what this audience may not see: never drawn from a private fact, so
# a lower audience's sample holds nothing of one.
SENSITIVE_SUBJECTS = ("{o}'s bank PIN", "{o}'s home address", "{o}'s salary", "{o}'s passport number",
                      "{o}'s medical history", "{o}'s password", "{o}'s phone number", "{o}'s private plans",
                      "{o}'s secret project", "{o}'s ex-partner's name", "{o}'s credit card number",
                      "{o}'s therapist's name")


@dataclass(frozen=True)
class FactCard:
    """One fact as a question and its answer."""

    fact_id: int
    text: str
    visibility: str
    subject: str  # third person, as written: "Sam's dog's name"
    verb: str  # "is", "are", ... (how an answer joins subject and key)
    key: str  # the answer span, a piece of the fact's text
    wrong: tuple[str, ...] = field(default=())  # keys of the facts it superseded: answering one is wrong

    def subject_for(self, owner: str, person: str) -> str:
        """The subject in the first person ('my'), second ('your') or third (as written)."""
        if person == "third":
            return self.subject
        possessive, plain = ("my", "I") if person == "first" else ("your", "you")
        text = re.sub(rf"\b{re.escape(owner)}'s\b", possessive, self.subject)
        return re.sub(rf"\b{re.escape(owner)}\b", plain, text)

    def answer(self, owner: str, person: str) -> str:
        """The grounded answer, as the twin says it to the owner ('second') or to others ('third')."""
        subject = self.subject_for(owner, person)
        joined = f"{subject} {self.verb} {self.key}"
        return joined[0].upper() + joined[1:] + ("" if joined.endswith((".", "!", "?")) else ".")

    def answer_with(self, owner: str, person: str, key: str) -> str:
        """The same answer with another value in place of the key (a wrong answer, for preference pairs)."""
        return self.answer(owner, person).replace(self.key, key)


def card_for(fact: Fact, wrong: tuple[str, ...] = ()) -> FactCard | None:
    """The fact's card, or None when no pattern finds a subject and a key in it."""
    text = " ".join(fact.text.split()).rstrip(".!")
    for pattern, shape in PATTERNS:
        match = pattern.match(text)
        if match is None:
            continue
        groups = match.groupdict()
        key = groups["k"].strip().strip('"\'')
        subject = shape.format(s=groups["s"]).strip()
        if key and subject and len(key) <= 80 and key.casefold() not in subject.casefold():
            return FactCard(fact.id, fact.text, str(fact.visibility), subject, groups.get("v", "is"), key, wrong)
    return None


def questions(card: FactCard, owner: str, asker: str, families: tuple[str, ...]) -> list[tuple[str, str]]:
    """(family, question) for each phrasing family: the owner asks in the first person, others in the third."""
    subject = card.subject_for(owner, "first" if asker == "owner" else "third")
    return [(family, family.format(s=subject)) for family in families]


FUNCTION_WORDS = frozenset(("a", "an", "the", "of", "my", "your", "his", "her", "their", "our", "i", "you", "me",
                            "we", "is", "are", "was", "were", "do", "does", "did", "to", "in", "on", "at", "for",
                            "and", "or", "with", "what", "which", "who", "whom", "whose", "where", "when", "how"))


def _content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.casefold().replace("\u2019", "'").replace("'s", ""))
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in FUNCTION_WORDS}


def names_topic(question: str, card: FactCard, owner: str) -> bool:
    """Whether a question reuses a word of the fact's subject ("What is my dog called?" for "Sam's dog's name"):
    one that reuses none ("What do I call my pet?") asks through meaning alone, the harder, indirect kind."""
    subject = _content_words(card.subject_for(owner, "first")) - _content_words(owner)
    return bool(subject & _content_words(question))


def mentions(answer: str, key: str) -> bool:
    """Whether an answer holds the key span (case and spacing aside): the deterministic recall test."""
    fold = " ".join(answer.casefold().split())
    return " ".join(key.casefold().split()) in fold
