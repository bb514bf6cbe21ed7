"""One search over L0 and L1 on the real store: facts in scope by audience, chat and time of validity."""

from __future__ import annotations

from datetime import UTC, datetime

from storage.facts import FactStore, NewFact
from storage.items import NewItem
from storage.layers import LayeredSearcher
from storage.memory import MemoryStore
from storage.models import Twin, Visibility
from storage.search import HybridSearcher, SearchScope


def test_facts_follow_the_scope_of_the_search(store: MemoryStore, twin: Twin) -> None:
    said = [
        NewItem("jsonl", "a/1", "a", "Ada", "I moved to Lisbon last week", datetime(2023, 3, 1, tzinfo=UTC)),
        NewItem("jsonl", "b/1", "b", "Ada", "Work starts in Porto next month", datetime(2024, 6, 1, tzinfo=UTC)),
    ]
    ids = store.add(twin.id, said).added_ids
    facts = FactStore(store.engine)
    lisbon = facts.add(twin.id, NewFact("Ada lives in Lisbon", item_ids=(ids[0],), valid_from=said[0].occurred_at))
    facts.supersede(twin.id, lisbon.id, NewFact("Ada lives in Porto", item_ids=(ids[1],),
                                                valid_from=said[1].occurred_at, visibility=Visibility.public))
    searcher = LayeredSearcher(HybridSearcher(store), facts)

    def found(**scope: object) -> list[str]:
        hits = searcher.search("where does Ada live", SearchScope(twin.id, **scope), layer="l1")
        return [hit.fact.text for hit in hits if hit.fact is not None]

    assert found() == ["Ada lives in Porto"]  # the current fact only
    assert found(since=datetime(2023, 5, 1, tzinfo=UTC), until=datetime(2023, 6, 1, tzinfo=UTC)) == [
        "Ada lives in Lisbon"]  # the fact true then
    assert found(chats=("a",), since=datetime(2020, 1, 1, tzinfo=UTC)) == ["Ada lives in Lisbon"]
    assert found(audience="stranger", since=datetime(2020, 1, 1, tzinfo=UTC)) == ["Ada lives in Porto"]
    [hit] = searcher.search("where does Ada live", SearchScope(twin.id), layer="l1")
    assert hit.layer == "l1" and hit.sources == (ids[1],)


def test_one_search_of_both_layers_embeds_the_query_once(store: MemoryStore, twin: Twin) -> None:
    store.add(twin.id, [NewItem("jsonl", "a/1", "a", "Ada", "I moved to Lisbon last week",
                                datetime(2023, 3, 1, tzinfo=UTC))])
    facts = FactStore(store.engine)
    facts.add(twin.id, NewFact("Ada lives in Lisbon"))
    searcher = LayeredSearcher(HybridSearcher(store), facts)
    searcher.search("warm-up", SearchScope(twin.id))  # the fact's own vector is computed here, once
    embedded: list[list[str]] = []
    real = store.embedder.embed

    def counting(texts: list[str]):  # noqa: ANN202 - the embedder's array
        embedded.append(list(texts))
        return real(texts)

    store.embedder.embed = counting
    try:
        hits = searcher.search("where does Ada live", SearchScope(twin.id))
    finally:
        store.embedder.embed = real
    assert {hit.layer for hit in hits} == {"l0", "l1"}
    assert embedded == [["where does Ada live"]]  # L0 search and the fact layer shared one embedding
    assert all("Lisbon" not in str(key) for key in searcher._fact_vectors)  # keyed by digest, not by text
