"""A forget is not undone by a job that was running: an extraction or a profile refresh that read what a forget
then removed writes nothing drawn from it, whether the forget came while the job waited for the model or the job
started while the forget ran. Nothing of the forgotten text is left in facts, profiles or the database's bytes."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.forgetting import ForgetConversation, Forgetter
from core.l1 import FactExtractor
from core.profile import ProfileBuilder
from storage.facts import FactStore, NewFact
from storage.forget import ForgetQuery, L0Forgetting
from storage.items import NewItem
from storage.l1_forgetting import L1Forgetting
from storage.memory import MemoryStore
from storage.models import Direction, Twin, Visibility
from storage.profiles import ProfileStore

SECRET = "Hazelquandrix"  # a word found nowhere else, so its bytes can be searched for
ALLERGY = f"I'm allergic to {SECRET} nuts, keep that in mind"
HIKING = "I go hiking in the Alps every weekend"
CHAT = ("console", "console-@owner")


class HeldLLM:
    """A scripted model (answers in order) whose first answer waits until the test releases it."""

    def __init__(self, answers: list[dict[str, Any]], hold: bool = True) -> None:
        self.answers = deque(answers)
        self.hold = hold
        self.calls = 0
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def complete(self, messages: list[dict], **_: Any) -> Any:
        raise AssertionError("only JSON answers are scripted")

    async def complete_json(self, messages: list[dict], schema: type, **_: Any) -> Any:
        self.calls += 1
        if self.calls == 1 and self.hold:
            self.reached.set()
            await self.release.wait()
        return schema.model_validate(self.answers.popleft())


def owner_says(store: MemoryStore, twin: Twin, *texts: str) -> list[int]:
    store.add(twin.id, [NewItem(source="chat", source_id=str(n), chat="c", sender="Ada", sender_id="ada", text=text,
                                occurred_at=datetime.now(UTC), visibility=Visibility.private,
                                direction=Direction.outbound) for n, text in enumerate(texts)])
    return [item.id for item in FactStore(store.engine).items_after(twin.id, 0, 10)]


def forgetter(store: MemoryStore, *more_layers: object) -> Forgetter:
    return Forgetter(L0Forgetting(store), [L1Forgetting(store.engine), *more_layers])  # type: ignore[list-item]


def assert_nothing_of_the_secret_left(store: MemoryStore, twin: Twin, folder: Path) -> None:
    facts = FactStore(store.engine).all(twin.id)
    assert [fact.text for fact in facts if SECRET.casefold() in fact.text.casefold()] == []
    assert all(FactStore(store.engine).provenance(twin.id, [fact.id])[fact.id] for fact in facts)  # none orphaned
    profiles = ProfileStore(store.engine)
    for audience in ("owner", "contact", "stranger"):
        active = profiles.active(twin.id, audience)
        assert active is None or SECRET not in f"{active.global_bio} {active.status_bio} {active.topics}"
    if store.engine.dialect.name == "sqlite":
        L0Forgetting(store).purge()  # what a forget does last: deleted pages wiped, the WAL folded in
        leaked = [str(f) for f in folder.rglob("*") if f.is_file() and SECRET.encode() in f.read_bytes()]
        assert leaked == []


def test_an_extraction_waiting_for_the_model_writes_nothing_a_forget_took(
    store: MemoryStore, twin: Twin, tmp_path: Path
) -> None:
    owner_says(store, twin, ALLERGY, HIKING)
    extractor_llm = HeldLLM([
        {"facts": [{"text": f"Ada is allergic to {SECRET} nuts", "sources": [1], "confidence": 1},
                   {"text": f"Ada hikes in the Alps and avoids {SECRET}", "sources": [2], "confidence": 1}]},
        {"facts": [{"text": "Ada hikes in the Alps every weekend", "sources": [1], "confidence": 1}]},  # read again
    ])

    async def go() -> str:
        extractor = FactExtractor(twin.id, "Ada", FactStore(store.engine), extractor_llm)
        extraction = asyncio.create_task(extractor.run())
        await asyncio.wait_for(extractor_llm.reached.wait(), 10)  # the model has read both lines
        conversation = ForgetConversation(forgetter(store), twin.id)
        assert SECRET in await conversation.handle(SECRET, CHAT)
        done = await conversation.handle("yes", CHAT)
        extractor_llm.release.set()
        report = await asyncio.wait_for(extraction, 10)
        assert report.dropped_for_forget == 1
        return done

    assert asyncio.run(go()).startswith("Forgotten: 1 messages")
    assert [fact.text for fact in FactStore(store.engine).current(twin.id)] == ["Ada hikes in the Alps every weekend"]
    assert extractor_llm.calls == 2  # the batch was read again without the forgotten line
    assert_nothing_of_the_secret_left(store, twin, tmp_path)


class BlockingLayer:
    """A forget layer that holds the forget mid-way (after the facts went, before the messages do)."""

    name = "held layer"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def find(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[str]:
        return []

    def remove(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> int:
        self.entered.set()
        assert self.release.wait(10)
        return 0


def test_an_extraction_started_while_a_forget_runs_writes_nothing_it_took(
    store: MemoryStore, twin: Twin, tmp_path: Path
) -> None:
    owner_says(store, twin, ALLERGY, HIKING)
    llm = HeldLLM([
        {"facts": [{"text": f"Ada is allergic to {SECRET} nuts", "sources": [1], "confidence": 1}]},
        {"facts": [{"text": "Ada hikes in the Alps every weekend", "sources": [1], "confidence": 1}]},
    ], hold=False)
    held = BlockingLayer()

    async def go() -> None:
        forget = asyncio.create_task(asyncio.to_thread(forgetter(store, held).forget, twin.id, ForgetQuery(SECRET)))
        assert await asyncio.to_thread(held.entered.wait, 10)  # facts gone, the messages not yet
        extraction = asyncio.create_task(FactExtractor(twin.id, "Ada", FactStore(store.engine), llm).run())
        await asyncio.sleep(0.5)  # the extraction read both lines and waits to write
        held.release.set()
        assert (await asyncio.wait_for(forget, 10)).items == 1
        await asyncio.wait_for(extraction, 10)

    asyncio.run(go())
    assert [fact.text for fact in FactStore(store.engine).current(twin.id)] == ["Ada hikes in the Alps every weekend"]
    assert_nothing_of_the_secret_left(store, twin, tmp_path)


def test_a_profile_refresh_waiting_for_the_model_saves_nothing_a_forget_took(
    store: MemoryStore, twin: Twin, tmp_path: Path
) -> None:
    allergy, hiking = owner_says(store, twin, ALLERGY, HIKING)
    facts = FactStore(store.engine)
    facts.add(twin.id, NewFact(text=f"Ada is allergic to {SECRET} nuts", item_ids=(allergy,)))
    facts.add(twin.id, NewFact(text="Ada hikes in the Alps", item_ids=(hiking,)))
    llm = HeldLLM([{"global_bio": f"Ada hikes and is allergic to {SECRET}", "status_bio": "Hiking", "topics": []}])
    profiles = ProfileStore(store.engine)

    async def go() -> int | None:
        refresh = asyncio.create_task(ProfileBuilder(twin.id, "Ada", facts, profiles, llm).refresh())
        await asyncio.wait_for(llm.reached.wait(), 10)
        conversation = ForgetConversation(forgetter(store), twin.id)
        await conversation.handle(SECRET, CHAT)
        assert (await conversation.handle("yes", CHAT)).startswith("Forgotten: ")
        llm.release.set()
        return await asyncio.wait_for(refresh, 10)

    assert asyncio.run(go()) is None  # nothing saved: still due, the next refresh writes from what is left
    assert profiles.versions(twin.id) == []
    assert_nothing_of_the_secret_left(store, twin, tmp_path)
