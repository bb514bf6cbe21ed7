"""Which facts a prompt carries: shared words fused with meaning (the bundled MiniLM), only the audience's own
facts, and no vector of a fact that is no longer current kept."""

from __future__ import annotations

from core.fact_ranking import FactRanker
from core.profile import PROMPT_FACTS, ProfileView
from storage.embeddings import SentenceTransformerEmbedder
from storage.facts import FactStore, NewFact
from storage.memory import MemoryStore
from storage.models import FactOrigin, Twin, Visibility
from storage.profiles import ProfileStore
from storage.query_vectors import text_digest

FACTS = [("Sam's home city is Lisbon.", "public"), ("Sam's favourite band is Radiohead.", "public"),
         ("Sam's dog's name is Biscuit.", "public"), ("Sam's gym is Vertigo Climbing.", "contacts"),
         ("Sam's locker code is 4417.", "private"), ("Sam's doctor is Dr. Almeida.", "private"),
         ("Sam's bank is Millennium BCP.", "private"), ("Sam's favourite food is bacalhau.", "public"),
         ("Sam's car is a blue Fiat Panda.", "private"), ("Sam's employer is Feedzai.", "contacts")]


def _facts(store: MemoryStore, twin: Twin) -> FactStore:
    facts = FactStore(store.engine)
    for text, visibility in FACTS:
        facts.add(twin.id, NewFact(text, origin=FactOrigin.owner, visibility=Visibility(visibility)))
    return facts


def test_a_question_that_shares_no_word_with_its_fact_still_brings_the_fact(
    store: MemoryStore, twin: Twin, embedder: SentenceTransformerEmbedder
) -> None:
    facts = _facts(store, twin).current(twin.id, "owner")
    questions = {"Where do I live?": "Lisbon", "What pet do I have?": "Biscuit", "Who treats me when I'm ill?":
                 "Dr. Almeida", "Where do I work?": "Feedzai"}
    by_words, by_meaning = FactRanker(), FactRanker(embedder.embed)
    for question, key in questions.items():
        assert key in by_meaning.rank(facts, question, PROMPT_FACTS)[0].text, question
    missed = sum(not any(key in f.text for f in by_words.rank(facts, q, 3)) for q, key in questions.items())
    assert missed >= 2  # words alone leave them out: the fusion is what brings them
    # a question that names the topic keeps its fact first
    assert by_meaning.rank(facts, "what's my locker code?", PROMPT_FACTS)[0].text == "Sam's locker code is 4417."


def test_the_profile_carries_only_the_audiences_facts_and_drops_a_superseded_facts_vector(
    store: MemoryStore, twin: Twin, embedder: SentenceTransformerEmbedder
) -> None:
    facts = _facts(store, twin)
    view = ProfileView(twin.id, "Sam", facts, ProfileStore(store.engine), embed=embedder.embed)
    stranger = view.for_prompt("stranger", "How do I get in touch with Sam's doctor or bank?") or ""
    assert "Dr. Almeida" not in stranger and "Millennium" not in stranger and "Vertigo" not in stranger
    assert "Dr. Almeida" in (view.for_prompt("owner", "Who treats me when I'm ill?") or "")

    home = next(f for f in facts.current(twin.id) if "Lisbon" in f.text)
    facts.supersede(twin.id, home.id, NewFact("Sam's home city is Porto.", origin=FactOrigin.owner,
                                              visibility=Visibility.public))
    answer = view.for_prompt("owner", "Where do I live?") or ""
    assert "Porto" in answer and "Lisbon" not in answer
    cached = {digest for digest, _ in view._rankers["owner"]._vectors.values()}
    assert {home.id} & set(view._rankers["owner"]._vectors) == set()  # the superseded fact's vector is gone
    assert text_digest("Sam's home city is Porto.") in cached
    assert text_digest("Sam's home city is Lisbon.") not in cached
    assert not any("Porto" in digest for digest in cached)  # the cache holds no fact's text
