"""L0 memory on both databases and both vector backends (qdrant-edge, and the Qdrant-server backend through
qdrant-client's local mode: no Qdrant server can run here): appending, idempotency, isolation, scopes, hybrid search,
reindex and sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import open_store

from storage.items import NewItem
from storage.memory import CONTEXT_TURNS, MemoryStore
from storage.models import Direction, Twin, Visibility
from storage.search import HybridSearcher, SearchScope

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

# A small corpus with known answers. "Quokkaberry" is a code name only BM25 can pin down: to the dense
# model it looks like the quokka and berry messages. The broken-down car is only said in other words.
CORPUS: list[tuple[str, str, str, str]] = [
    ("c1", "family", "Mum", "Dinner at grandma's on Sunday, bring the apple pie"),
    ("c2", "work", "Priya", "The Halvorsen deployment is scheduled for Thursday night"),
    ("c3", "work", "Priya", "Project Quokkaberry stays under wraps until the board meeting"),
    ("c4", "friends", "Tom", "My automobile stopped working on the motorway, I'm stuck waiting for a tow"),
    ("c5", "friends", "Tom", "Who wants to go hiking in the mountains next weekend?"),
    ("c6", "family", "Dad", "Remember to water the tomatoes while we're away"),
    ("c7", "work", "Lee", "Quarterly budget review moved to 3pm, same room"),
    ("c8", "friends", "Sara", "Just adopted a puppy, she's a tiny golden retriever"),
    ("c9", "work", "Lee", "Secret project meeting notes are in the shared drive"),
    ("c10", "family", "Mum", "The plumber is coming tomorrow to fix the kitchen sink"),
    ("c11", "friends", "Sara", "Anyone up for a movie night on Friday? Thinking a horror film"),
    ("c12", "work", "Priya", "Please review the pull request before the release"),
    ("c13", "friends", "Tom", "Saw quokkas at the zoo, they were eating berries"),
    ("c14", "friends", "Sara", "Made a mixed berry smoothie with blueberries and raspberries"),
]
CODE_NAME_QUERY, CODE_NAME_ANSWER = "Quokkaberry", "c3"
PARAPHRASE_QUERY, PARAPHRASE_ANSWER = "my car broke down on the road", "c4"

STORES = [
    pytest.param(("sqlite", "edge"), id="sqlite-edge"),
    pytest.param(("postgresql", "edge"), id="postgresql-edge", marks=pytest.mark.postgres),
    pytest.param(("sqlite", "qdrant-local"), id="sqlite-qdrant"),
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path, embedder):  # noqa: ANN001, ANN201 - overrides conftest's
    """This module's stores: each database with qdrant-edge, and SQLite with the Qdrant-server backend."""
    yield from open_store(request, *request.param, tmp_path, embedder)


def item(
    source_id: str,
    text: str,
    *,
    chat: str = "chat",
    sender: str = "Tom",
    at: datetime = T0,
    visibility: Visibility | None = None,
    sender_id: str | None = None,
) -> NewItem:
    """A test message from the `test` source."""
    return NewItem(
        source="test",
        source_id=source_id,
        chat=chat,
        sender=sender,
        text=text,
        occurred_at=at,
        visibility=visibility,
        sender_id=sender_id,
    )


def corpus_items() -> list[NewItem]:
    return [
        item(sid, text, chat=chat, sender=sender, at=T0 + timedelta(hours=i))
        for i, (sid, chat, sender, text) in enumerate(CORPUS)
    ]


def source_ids(results) -> list[str]:  # noqa: ANN001 - list[SearchResult]
    return [r.item.source_id for r in results]


@pytest.fixture
def corpus(store: MemoryStore, twin: Twin) -> list[int]:
    """The corpus stored for the owner's twin; the new ids."""
    return store.add(twin.id, corpus_items()).added_ids


# -- appending and reading back ---------------------------------------------------------------------


def test_added_items_read_back_with_their_fields(store: MemoryStore, twin: Twin) -> None:
    owner = store.owner(twin.id)
    store.link_identity(twin.id, owner.id, "test", "ada-1", "Ada")
    result = store.add(
        twin.id,
        [
            item("m1", "See you at the station", chat="family", sender="Ada", sender_id="ada-1"),
            item(
                "m2",
                "Running ten minutes late",
                chat="family",
                sender="Mum",
                at=T0 + timedelta(minutes=5),
                visibility=Visibility.contacts,
            ),
        ],
    )
    assert result.added == 2 and result.duplicates == 0
    rows = store.get(result.added_ids)
    mine, mums = rows[result.added_ids[0]], rows[result.added_ids[1]]
    assert (mine.text, mine.chat, mine.sender_name, mine.source_id) == (
        "See you at the station",
        "family",
        "Ada",
        "m1",
    )
    assert mine.sender_id == owner.id and mine.direction == Direction.outbound
    assert mums.sender_id != owner.id and mums.direction == Direction.inbound
    assert mine.visibility == Visibility.private  # the store's default
    assert mums.visibility == Visibility.contacts
    assert mine.twin_id == twin.id
    assert store.count(twin.id) == 2 and store.count_by_source(twin.id) == {"test": 2}
    assert store.index.count() == 2


def test_text_no_encoding_can_write_is_stored_with_replacements(store: MemoryStore, twin: Twin) -> None:
    """The adapters clean what they hand over; the store does too, for any other writer (an importer, a script)."""
    broken = NewItem(source="test", source_id="lone", chat="chat", sender="Tom\ud83d", text="half \udc00 an emoji",
                     occurred_at=T0, raw={"text": "half \udc00 an emoji", "nul": "a\x00b"})
    [stored] = store.get(store.add(twin.id, [broken]).added_ids).values()
    assert (stored.text, stored.sender_name) == ("half \ufffd an emoji", "Tom\ufffd")
    assert stored.raw == {"text": "half \ufffd an emoji", "nul": "a\ufffdb"}


def test_default_visibility_applies_to_items_without_one(store: MemoryStore, twin: Twin) -> None:
    result = store.add(
        twin.id,
        [item("p1", "hello everyone"), item("p2", "just us", visibility=Visibility.private)],
        default_visibility=Visibility.public,
    )
    rows = store.get(result.added_ids)
    assert [rows[i].visibility for i in result.added_ids] == [Visibility.public, Visibility.private]


def test_times_round_trip_as_utc_aware(store: MemoryStore, twin: Twin, searcher: HybridSearcher) -> None:
    berlin, new_york = timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))
    moments = [
        datetime(2024, 5, 1, 11, 30, tzinfo=berlin),
        datetime(2024, 5, 1, 4, 45, tzinfo=new_york),
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    ]
    result = store.add(twin.id, [item(f"t{i}", f"timestamped note {i}", at=m) for i, m in enumerate(moments)])
    rows = store.get(result.added_ids)
    for item_id, moment in zip(result.added_ids, moments, strict=True):
        got = rows[item_id].occurred_at
        assert got.utcoffset() == timedelta(0), f"{got!r} is not UTC-aware"
        assert got == moment
        assert rows[item_id].ingested_at.utcoffset() == timedelta(0)
    # The index got the true instant too: 09:30-09:50 UTC holds exactly the Berlin and New York notes.
    scope = SearchScope(
        twin.id, since=datetime(2024, 5, 1, 9, 30, tzinfo=UTC), until=datetime(2024, 5, 1, 9, 50, tzinfo=UTC)
    )
    found = searcher.search("timestamped note", scope, k=10, mode="lexical")
    assert sorted(source_ids(found)) == ["t0", "t1"]


# -- idempotency ------------------------------------------------------------------------------------


def test_same_source_ids_twice_add_nothing(store: MemoryStore, twin: Twin) -> None:
    batch = [item("d1", "first"), item("d2", "second"), item("d1", "first, redelivered with other text")]
    first = store.add(twin.id, batch)
    assert first.added == 2 and first.duplicates == 1  # the repeat inside the batch counts once
    again = store.add(twin.id, batch)
    assert again.added == 0 and again.duplicates == 3
    assert store.count(twin.id) == 2
    assert store.index.count() == 2
    assert sorted(row.text for row in store.get(first.added_ids).values()) == ["first", "second"]


def test_small_batches_still_deduplicate_across_batches(store: MemoryStore, twin: Twin) -> None:
    result = store.add(twin.id, [item(f"b{i % 3}", f"message {i}") for i in range(7)], batch_size=2)
    assert result.added == 3 and result.duplicates == 4
    assert store.count(twin.id) == 3


# -- isolation and scopes ---------------------------------------------------------------------------


def test_two_twins_never_see_each_others_items(
    store: MemoryStore, twin: Twin, searcher: HybridSearcher
) -> None:
    other = store.ensure_twin("bea", "Bea")
    assert other.id != twin.id
    # The same source ids in both twins: each twin keeps its own copy.
    mine = store.add(
        twin.id, [item("s1", "the zephyrine lantern is in the attic"), item("s2", "zephyrine tea")]
    )
    theirs = store.add(other.id, [item("s1", "zephyrine lantern for sale"), item("s3", "a zephyrine kite")])
    assert mine.added == 2 and theirs.added == 2
    for owner_twin, own_ids in ((twin, mine.added_ids), (other, theirs.added_ids)):
        for mode in ("hybrid", "lexical", "dense"):
            found = searcher.search("zephyrine lantern", SearchScope(owner_twin.id), k=10, mode=mode)
            assert found, mode
            assert {r.item.id for r in found} == set(own_ids), mode
            assert {r.item.twin_id for r in found} == {owner_twin.id}
    assert store.count(twin.id) == 2 and store.count(other.id) == 2 and store.count() == 4


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        ("owner", {"v-private", "v-contacts", "v-public"}),
        ("contact", {"v-contacts", "v-public"}),
        ("stranger", {"v-public"}),
    ],
)
def test_visibility_per_audience(
    store: MemoryStore, twin: Twin, searcher: HybridSearcher, audience: str, expected: set[str]
) -> None:
    store.add(
        twin.id,
        [
            item(f"v-{v}", f"picnic plans, {v} edition", visibility=Visibility(v))
            for v in ("private", "contacts", "public")
        ],
    )
    for mode in ("hybrid", "lexical", "dense"):
        found = searcher.search("picnic plans", SearchScope(twin.id, audience=audience), k=10, mode=mode)
        assert set(source_ids(found)) == expected, mode


def test_chat_filter(store: MemoryStore, twin: Twin, corpus: list[int], searcher: HybridSearcher) -> None:
    everywhere = searcher.search("meeting project review", SearchScope(twin.id), k=20)
    assert {r.item.chat for r in everywhere} > {"work"}  # the query alone reaches other chats
    for chats in (("family",), ("work", "friends")):
        found = searcher.search("meeting project review", SearchScope(twin.id, chats=chats), k=20)
        assert found and {r.item.chat for r in found} <= set(chats)
        expected = {sid for sid, chat, _, _ in CORPUS if chat in chats}
        assert set(source_ids(found)) == expected  # dense reaches every item in scope


def test_time_range_filter(
    store: MemoryStore, twin: Twin, corpus: list[int], searcher: HybridSearcher
) -> None:
    # Corpus items are one hour apart from T0; the range is inclusive at both ends.
    since, until = T0 + timedelta(hours=2), T0 + timedelta(hours=4)
    for scope, expected in (
        (SearchScope(twin.id, since=since, until=until), {"c3", "c4", "c5"}),
        (SearchScope(twin.id, since=T0 + timedelta(hours=12)), {"c13", "c14"}),
        (SearchScope(twin.id, until=T0 + timedelta(minutes=30)), {"c1"}),
        # The same instant written in another offset selects the same items.
        (
            SearchScope(twin.id, since=since.astimezone(timezone(timedelta(hours=5))), until=until),
            {"c3", "c4", "c5"},
        ),
    ):
        found = searcher.search("anything at all", scope, k=20, mode="dense")
        assert set(source_ids(found)) == expected, scope


# -- hybrid search ----------------------------------------------------------------------------------


def test_code_name_only_lexical_finds(twin: Twin, corpus: list[int], searcher: HybridSearcher) -> None:
    scope = SearchScope(twin.id)
    lexical = source_ids(searcher.search(CODE_NAME_QUERY, scope, mode="lexical"))
    dense = source_ids(searcher.search(CODE_NAME_QUERY, scope, mode="dense"))
    hybrid = source_ids(searcher.search(CODE_NAME_QUERY, scope, mode="hybrid"))
    assert lexical[0] == CODE_NAME_ANSWER  # the rare exact token
    # Anything else lexical finds holds the token only as context: its neighbours in the same chat.
    neighbours = _around_in_chat(CODE_NAME_ANSWER, before=1, after=CONTEXT_TURNS)
    assert set(lexical[1:]) <= neighbours
    assert hybrid[0] == CODE_NAME_ANSWER
    assert lexical != dense


def _around_in_chat(source_id: str, before: int, after: int) -> set[str]:
    """The source ids of the corpus messages just before and after this one in its chat."""
    chat = next(c for sid, c, _, _ in CORPUS if sid == source_id)
    in_chat = [sid for sid, c, _, _ in CORPUS if c == chat]
    at = in_chat.index(source_id)
    return set(in_chat[max(0, at - before) : at] + in_chat[at + 1 : at + 1 + after])


def test_paraphrase_only_dense_finds(twin: Twin, corpus: list[int], searcher: HybridSearcher) -> None:
    scope = SearchScope(twin.id)
    lexical = source_ids(searcher.search(PARAPHRASE_QUERY, scope, mode="lexical"))
    dense = source_ids(searcher.search(PARAPHRASE_QUERY, scope, mode="dense"))
    hybrid = source_ids(searcher.search(PARAPHRASE_QUERY, scope, mode="hybrid"))
    assert PARAPHRASE_ANSWER not in lexical  # no word in common
    assert dense[0] == PARAPHRASE_ANSWER
    assert hybrid[0] == PARAPHRASE_ANSWER
    assert lexical != dense


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ("when is the Halvorsen deployment", "c2"),
        ("plumber for the kitchen sink", "c10"),
        ("new dog", "c8"),
        ("weekend hike in the mountains", "c5"),
    ],
)
def test_hybrid_known_answers(
    twin: Twin, corpus: list[int], searcher: HybridSearcher, query: str, answer: str
) -> None:
    results = searcher.search(query, SearchScope(twin.id), k=3)
    assert source_ids(results)[0] == answer
    assert results[0].score > results[-1].score
    assert results[0].item.text == dict((sid, text) for sid, _, _, text in CORPUS)[answer]


def test_unknown_mode_is_rejected(twin: Twin, searcher: HybridSearcher) -> None:
    with pytest.raises(ValueError, match="unknown search mode"):
        searcher.search("x", SearchScope(twin.id), mode="fuzzy")


# -- the index is rebuilt from SQL ------------------------------------------------------------------


QUERIES = (CODE_NAME_QUERY, PARAPHRASE_QUERY, "plumber for the kitchen sink", "movie night")


def _answers(searcher: HybridSearcher, twin: Twin) -> dict[tuple[str, str], list[str]]:
    return {
        (query, mode): source_ids(searcher.search(query, SearchScope(twin.id), k=5, mode=mode))
        for query in QUERIES
        for mode in ("hybrid", "lexical")
    }


def test_reindex_rebuilds_the_index_from_sql(
    store: MemoryStore, twin: Twin, corpus: list[int], searcher: HybridSearcher
) -> None:
    before = _answers(searcher, twin)
    store.index.clear()
    assert store.index.count() == 0
    assert searcher.search(PARAPHRASE_QUERY, SearchScope(twin.id)) == []
    seen: list[int] = []
    assert store.reindex(batch_size=5, progress=seen.append) == len(CORPUS)
    assert sum(seen) == len(CORPUS) and len(seen) == 3  # batches of 5, 5 and 4
    assert store.index.count() == len(CORPUS)
    assert store.index.ids() == set(corpus)
    assert _answers(searcher, twin) == before


def test_sync_index_adds_rows_missing_from_the_index(
    store: MemoryStore, twin: Twin, corpus: list[int], searcher: HybridSearcher
) -> None:
    before = _answers(searcher, twin)
    by_source = {row.source_id: row_id for row_id, row in store.get(corpus).items()}
    lost = [by_source[CODE_NAME_ANSWER], by_source[PARAPHRASE_ANSWER], by_source["c10"]]
    store.index.delete(lost)  # as if the process died between the SQL commit and the upsert
    assert store.index.count() == len(CORPUS) - 3
    assert CODE_NAME_ANSWER not in source_ids(searcher.search(CODE_NAME_QUERY, SearchScope(twin.id)))
    assert store.sync_index() == 3
    assert store.index.ids() == set(corpus)
    assert _answers(searcher, twin) == before
    assert store.sync_index() == 0  # nothing left to do


# -- neighbouring turns -----------------------------------------------------------------------------


def test_a_question_is_found_by_the_answer_that_came_later(
    store: MemoryStore, twin: Twin, searcher: HybridSearcher
) -> None:
    question = item("q", "Which team did you sign with in the end?", chat="sports", sender="Mia")
    store.add(twin.id, [question, item("other", "Lunch is at noon", chat="food", at=T0 + timedelta(minutes=1))])
    scope = SearchScope(twin.id)
    assert "q" not in source_ids(searcher.search("Minnesota Wolves", scope, mode="lexical"))
    # The answer arrives in a later batch: the question's index entry gains the answer's words.
    store.add(twin.id, [item("a", "The Minnesota Wolves!", chat="sports", at=T0 + timedelta(minutes=2))])
    found = source_ids(searcher.search("Minnesota Wolves", scope, mode="lexical"))
    assert found[:2] == ["a", "q"]  # the answer's own words first, the question by its next turn
    assert store.index.count() == 3


def test_indexing_a_message_before_the_one_stored_ahead_of_it_indexes_both(
    store: MemoryStore, twin: Twin, searcher: HybridSearcher
) -> None:
    """Two messages stored together, indexed in the wrong order (a later batch first): the earlier one, not in the
    index yet, is indexed whole instead of failing as a missing point."""
    first, second = store.add(twin.id, [item("one", "Which ferry do we take to Hydra?", chat="trip", sender="Mia"),
                                        item("two", "The Flying Dolphin at nine", chat="trip", sender="Mia")],
                              index=False).added_ids
    store.index_ids([second])
    assert store.index.ids() == {first, second}
    scope = SearchScope(twin.id)
    assert source_ids(searcher.search("Flying Dolphin", scope, mode="lexical")) == ["two", "one"]  # its next turn
    store.index_ids([first])  # its own batch comes later: nothing changes
    assert source_ids(searcher.search("Flying Dolphin", scope, mode="lexical")) == ["two", "one"]


def test_neighbouring_hits_lift_each_other_without_adding_any() -> None:
    from storage.search import with_neighbours
    from storage.vectors import Hit

    fused = [Hit(1, 1.0), Hit(7, 0.9), Hit(2, 0.8), Hit(9, 0.1)]
    found = [[Hit(1, 5.0), Hit(2, 4.0, follows=1), Hit(7, 3.0, follows=6), Hit(9, 1.0, follows=8)]]
    ranked = with_neighbours(fused, found, share=0.2)
    assert [hit.id for hit in ranked] == [1, 2, 7, 9]  # 2 follows 1: both lifted, 2 passes 7
    assert {hit.id: round(hit.score, 3) for hit in ranked} == {1: 1.16, 2: 1.0, 7: 0.9, 9: 0.1}
    assert with_neighbours(fused, found, share=0.0) == [Hit(1, 1.0), Hit(7, 0.9, 6), Hit(2, 0.8, 1), Hit(9, 0.1, 8)]


def test_a_time_the_question_names_favours_what_was_said_then(
    store: MemoryStore, twin: Twin, searcher: HybridSearcher
) -> None:
    asked = T0 + timedelta(days=100)
    store.add(twin.id, [
        item("spring", "Made risotto for dinner, mushroom risotto again!", chat="a", at=asked - timedelta(days=90)),
        item("recent", "Made risotto for dinner", chat="b", at=asked - timedelta(days=14)),
    ])
    query = "What risotto dinner did I make two weeks ago?"
    assert source_ids(searcher.search(query, SearchScope(twin.id)))[0] == "spring"  # the better match in words
    assert source_ids(searcher.search(query, SearchScope(twin.id, asked_at=asked)))[0] == "recent"
    # a scope that sets its own time range is searched as it says; the question's time adds nothing to it
    since = SearchScope(twin.id, since=asked - timedelta(days=200), asked_at=asked)
    assert source_ids(searcher.search(query, since))[0] == "spring"


def test_the_dense_texts_are_what_the_model_embeds_for_a_stored_message(store: MemoryStore, twin: Twin) -> None:
    seen: list[str] = []
    embed = store.embedder.embed
    store.embedder.embed = lambda texts: (seen.extend(texts), embed(texts))[1]  # type: ignore[method-assign]
    rows = store.add(twin.id, [item("q", "Which ferry to Hydra?", chat="trip", sender="Mia"),
                               item("a", "The Flying Dolphin", chat="trip", at=T0 + timedelta(minutes=1))]).rows
    assert store.dense_texts(rows) == seen  # the day, who said it, then the turn it follows
    assert seen[1] == "[1 May 2024] Tom: The Flying Dolphin\nWhich ferry to Hydra?"


def test_an_answer_follows_the_question_it_answers_but_one_persons_next_message_follows_nothing(
    store: MemoryStore, twin: Twin
) -> None:
    """The neighbour lift joins an exchange: a reply from someone else follows the message before it; a second
    message from the same person (a long note to an assistant, then another) is not lifted by the first."""
    from storage.vectors import IndexQuery, VectorFilter

    ids = store.add(twin.id, [
        item("q", "Which ferry do we take to Hydra?", chat="trip", sender="Mia"),
        item("a", "The Flying Dolphin at nine", chat="trip", sender="Tom", at=T0 + timedelta(minutes=1)),
        item("a2", "And the Flying Cat back at six", chat="trip", sender="Tom", at=T0 + timedelta(minutes=2)),
    ]).added_ids
    query = IndexQuery(dense=None, sparse=store.lexical.query("Flying"), filter=VectorFilter(twin_id=twin.id))
    follows = {hit.id: hit.follows for hit in store.index.search(query)[1]}
    assert follows == {ids[0]: None, ids[1]: ids[0], ids[2]: None}  # the question is found by its answer's words


def test_the_twins_own_words_are_no_ones_context(store: MemoryStore, twin: Twin, searcher: HybridSearcher) -> None:
    from storage.models import ItemKind

    store.add(twin.id, [
        item("ask", "Where should we eat tonight?", chat="dinner", sender="Mia"),
        NewItem(source="test", source_id="ask:reply", chat="dinner", sender="Ada's twin", text="Try the Zanzibar Grill",
                occurred_at=T0 + timedelta(minutes=1), kind=ItemKind.reply),
        item("next", "Sounds good, booking it", chat="dinner", sender="Mia", at=T0 + timedelta(minutes=2)),
    ])
    found = source_ids(searcher.search("Zanzibar Grill", SearchScope(twin.id), mode="lexical"))
    assert found == ["ask:reply"]  # neither the question before it nor the message after it holds its words
    assert source_ids(searcher.search("booking", SearchScope(twin.id), mode="lexical")) == ["next", "ask"]
