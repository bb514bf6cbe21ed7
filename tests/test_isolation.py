"""Two twins in one database and one vector store: each one's import, search, facts, profile, people, training
samples, adapters and forget touch only its own, and a query crafted with the other twin's chat ids, item ids, fact
ids, person ids, adapter names or words finds nothing of it.

Run on SQLite and on PostgreSQL with qdrant-edge, and on SQLite with the Qdrant-server backend (QdrantServerIndex)
through qdrant-client's local mode: no Qdrant server binary can be installed on these machines (none on PyPI, Debian
or npm, and no Docker engine), so the client code a server would see runs against qdrant-client's in-process copy of
the server's API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import open_store

from core.forgetting import Forgetter
from storage.errors import StorageError
from storage.facts import FactStore, NewFact
from storage.fence import ForgottenMeanwhile
from storage.forget import ForgetQuery, L0Forgetting
from storage.importers import import_path
from storage.l1_forgetting import L1Forgetting
from storage.memory import MemoryStore
from storage.models import Twin
from storage.people import PeopleDirectory
from storage.profiles import ProfileDraft, ProfileStore
from storage.search import HybridSearcher, SearchScope
from storage.training import SERVING, WITHDRAWN, NewSample, TrainingStore
from storage.training_forgetting import TrainingForgetting

STORES = [
    pytest.param(("sqlite", "edge"), id="sqlite-edge"),
    pytest.param(("postgresql", "edge"), id="postgresql-edge", marks=pytest.mark.postgres),
    pytest.param(("sqlite", "qdrant-local"), id="sqlite-qdrant"),
]
MODES = ("hybrid", "lexical", "dense")
SHARED = "lantern"  # both twins hold messages with this word, under the same source ids


def history(chat: str, sender: str, secret: str) -> list[dict]:
    """A twin's import: the same message ids and the shared word in both twins, its own chat and secret word."""
    return [
        {"id": 1, "chat": chat, "sender": sender, "text": f"The brass {SHARED} hangs in the hallway",
         "timestamp": "2024-03-01T09:00:00Z", "visibility": "public"},
        {"id": 2, "chat": chat, "sender": "Friend", "text": f"Code word {secret} opens the garden shed",
         "timestamp": "2024-03-01T09:01:00Z"},
        {"id": 3, "chat": chat, "sender": sender, "text": f"Keep the {SHARED} lit for {secret} night",
         "timestamp": "2024-03-01T09:02:00Z", "visibility": "contacts"},
    ]


@dataclass
class Tenant:
    """One twin in the shared store: its row, its secret word, its chat and the ids of what it imported."""

    twin: Twin
    secret: str
    chat: str
    item_ids: list[int]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path, embedder) -> MemoryStore:  # noqa: ANN001
    """One database and one vector index shared by both twins."""
    yield from open_store(request, *request.param, tmp_path, embedder)


def _tenant(store: MemoryStore, tmp_path: Path, handle: str, name: str, secret: str) -> Tenant:
    twin = store.ensure_twin(handle, name)
    chat = f"{handle}-family"
    path = tmp_path / f"{handle}.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in history(chat, name, secret)), encoding="utf-8")
    report = import_path(store, twin.id, path, owner_ids=(name,))
    assert report.added == 3
    ids = [store.by_source(twin.id, "jsonl", f"{chat}/{n}").id for n in (1, 2, 3)]
    return Tenant(twin, secret, chat, ids)


@pytest.fixture
def ada(store: MemoryStore, tmp_path: Path) -> Tenant:
    return _tenant(store, tmp_path, "ada", "Ada", "Zephyrine")


@pytest.fixture
def bea(store: MemoryStore, tmp_path: Path, ada: Tenant) -> Tenant:
    return _tenant(store, tmp_path, "bea", "Bea", "Quillimond")


def found(store: MemoryStore, twin: Twin, query: str, mode: str = "hybrid", **scope: object) -> set[int]:
    results = HybridSearcher(store).search(query, SearchScope(twin.id, **scope), k=20, mode=mode)
    assert all(result.item.twin_id == twin.id for result in results)
    return {result.item.id for result in results}


def test_import_and_search_stay_within_each_twin(store: MemoryStore, ada: Tenant, bea: Tenant) -> None:
    assert not set(ada.item_ids) & set(bea.item_ids)
    assert store.count(ada.twin.id) == 3 and store.count(bea.twin.id) == 3 and store.index.count() == 6
    assert store.index.count(ada.twin.id) == 3 and store.index.count(bea.twin.id) == 3  # `twin stats` per twin
    for me, other in ((ada, bea), (bea, ada)):
        assert store.by_source(me.twin.id, "jsonl", f"{other.chat}/1") is None
        for mode in MODES:
            assert found(store, me.twin, f"brass {SHARED}", mode) <= set(me.item_ids), mode
            assert found(store, me.twin, f"brass {SHARED}", mode), mode
            # the other twin's words, chat ids and time range: nothing of it
            assert not found(store, me.twin, other.secret, mode) & set(other.item_ids), mode
            assert found(store, me.twin, SHARED, mode, chats=(other.chat,)) == set(), mode
        assert found(store, me.twin, other.secret, "lexical") == set()
        for audience in ("contact", "stranger"):
            assert found(store, me.twin, SHARED, "lexical", audience=audience) <= set(me.item_ids)


def test_facts_and_profiles_stay_within_each_twin(store: MemoryStore, ada: Tenant, bea: Tenant) -> None:
    facts, profiles = FactStore(store.engine), ProfileStore(store.engine)
    mine = facts.add(ada.twin.id, NewFact(text="Ada keeps a brass lantern", item_ids=tuple(ada.item_ids[:1])))
    # a fact given the other twin's item ids is refused: they are not sources this twin has (as if forgotten)
    with pytest.raises(ForgottenMeanwhile):
        facts.add(ada.twin.id, NewFact(text="Ada likes sheds", item_ids=tuple(bea.item_ids)))
    theirs = facts.add(bea.twin.id, NewFact(text="Bea knows the shed code", item_ids=tuple(bea.item_ids[1:2])))
    assert facts.provenance(ada.twin.id, [mine.id]) == {mine.id: [ada.item_ids[0]]}
    assert facts.provenance(ada.twin.id, [theirs.id]) == {theirs.id: []}  # none of its sources
    assert [f.id for f in facts.current(ada.twin.id)] == [mine.id]
    assert [f.id for f in facts.current(bea.twin.id)] == [theirs.id]
    assert facts.get(ada.twin.id, theirs.id) is None
    with pytest.raises(StorageError, match=f"no fact with id {theirs.id}"):
        facts.set_visibility(ada.twin.id, theirs.id, "public")
    with pytest.raises(StorageError):
        facts.update(ada.twin.id, theirs.id, "rewritten by Ada")
    assert facts.get(bea.twin.id, theirs.id).text == "Bea knows the shed code"

    for tenant, bio in ((ada, "Ada, lantern keeper"), (bea, "Bea, gardener")):
        for version in (1, 2):
            saved = profiles.save(tenant.twin.id, {"owner": ProfileDraft(f"{bio} v{version}", "busy")})
            assert saved == version  # versions are numbered per twin
    assert profiles.rollback(ada.twin.id) == 1
    assert profiles.active(ada.twin.id, "owner").global_bio == "Ada, lantern keeper v1"
    assert profiles.active(bea.twin.id, "owner").global_bio == "Bea, gardener v2"
    recent = profiles.recent_items(ada.twin.id, "owner", 10, owner_only=False)
    assert sorted(item.id for item in recent) == ada.item_ids


def test_people_stay_within_each_twin(store: MemoryStore, ada: Tenant, bea: Tenant) -> None:
    people = PeopleDirectory(store.engine)
    friend_of_bea = people.find(bea.twin.id, "Friend")
    assert friend_of_bea is not None
    assert people.find(ada.twin.id, str(friend_of_bea.person_id)) is None
    assert people.by_identity(ada.twin.id, "jsonl", "Friend").person_id != friend_of_bea.person_id
    for refused in (lambda: people.set_trust(ada.twin.id, friend_of_bea.person_id, "contact"),
                    lambda: people.merge(ada.twin.id, store.owner(ada.twin.id).id, friend_of_bea.person_id),
                    lambda: people.link(ada.twin.id, friend_of_bea.person_id, "telegram", "42")):
        with pytest.raises(StorageError, match="no person"):
            refused()
    assert {speaker.person_id for speaker, _ in people.all(bea.twin.id)} >= {friend_of_bea.person_id}
    assert friend_of_bea.person_id not in {speaker.person_id for speaker, _ in people.all(ada.twin.id)}


def _train(store: MemoryStore, tenant: Tenant, folder: Path) -> Path:
    """Samples for the owner's adapter and a serving owner-v1 (both twins get the same name), with its files."""
    training = TrainingStore(store.engine)
    sample = NewSample(prompt=[{"role": "user", "content": "lantern?"}], completion=f"{tenant.secret}!",
                       visibility="private", item_ids=tuple(tenant.item_ids))
    training.replace_samples(tenant.twin.id, "owner", [sample, sample])
    path = folder / tenant.twin.handle / "owner-v1"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(tenant.secret.encode())
    training.register(tenant.twin.id, "owner-v1", "owner", str(path), "base", tenant.item_ids, 2)
    training.set_status(tenant.twin.id, "owner-v1", "ready")
    training.promote(tenant.twin.id, "owner-v1")
    return path


def test_training_samples_and_adapters_stay_within_each_twin(
    store: MemoryStore, ada: Tenant, bea: Tenant, tmp_path: Path
) -> None:
    training = TrainingStore(store.engine)
    _train(store, ada, tmp_path / "adapters")
    _train(store, bea, tmp_path / "adapters")
    training.replace_samples(ada.twin.id, "owner", [])  # Ada's rebuild leaves Bea's samples alone
    assert training.count_samples(ada.twin.id) == 0 and training.count_samples(bea.twin.id) == 2
    assert [s.item_ids for s in training.samples(bea.twin.id, "owner")] == [tuple(bea.item_ids)] * 2
    assert training.trained_items(ada.twin.id, "owner-v1") == set(ada.item_ids)
    training.withdraw(ada.twin.id, ["owner-v1"], "test")
    assert training.serving(ada.twin.id, "owner") is None
    assert training.serving(bea.twin.id, "owner") == "owner-v1"
    assert training.get(bea.twin.id, "owner-v1").status == SERVING
    assert [a.twin_id for a in training.adapters(bea.twin.id)] == [bea.twin.id]
    with pytest.raises(StorageError, match="no adapter serves"):
        training.rollback(ada.twin.id, "owner")


def forgetter(store: MemoryStore) -> Forgetter:
    """Forgetting as `twin forget` wires it: the training layer, then L1, then L0."""
    return Forgetter(L0Forgetting(store), [TrainingForgetting(store.engine), L1Forgetting(store.engine)])


def test_forget_touches_only_its_own_twin(store: MemoryStore, ada: Tenant, bea: Tenant, tmp_path: Path) -> None:
    facts, training = FactStore(store.engine), TrainingStore(store.engine)
    ada_fact = facts.add(ada.twin.id, NewFact(text=f"Ada's {SHARED} is brass", item_ids=tuple(ada.item_ids)))
    bea_fact = facts.add(bea.twin.id, NewFact(text=f"Bea's {SHARED} is brass", item_ids=tuple(bea.item_ids)))
    ada_files, bea_files = _train(store, ada, tmp_path / "adapters"), _train(store, bea, tmp_path / "adapters")
    forgetting = forgetter(store)

    # Ada's forget named with Bea's chat, item ids and fact ids finds nothing and removes nothing
    for crafted in (ForgetQuery(chat=bea.chat), ForgetQuery(message_ids=tuple(bea.item_ids)),
                    ForgetQuery(fact_ids=(bea_fact.id,)), ForgetQuery(text=bea.secret)):
        assert forgetting.plan(ada.twin.id, crafted).empty, crafted
        forgetting.forget(ada.twin.id, crafted)
    assert store.count(bea.twin.id) == 3 and facts.get(bea.twin.id, bea_fact.id) is not None
    assert training.get(bea.twin.id, "owner-v1").status == SERVING

    # Ada forgets the word both twins hold: all of Ada's traces go, none of Bea's
    plan = forgetting.plan(ada.twin.id, ForgetQuery(text=SHARED))
    assert {item.id for item in plan.items} == {ada.item_ids[0], ada.item_ids[2]}
    forgetting.forget(ada.twin.id, ForgetQuery(text=SHARED))
    assert store.count(ada.twin.id) == 1 and facts.get(ada.twin.id, ada_fact.id) is None
    assert store.index.count(ada.twin.id) == 1 and store.index.count(bea.twin.id) == 3
    assert training.get(ada.twin.id, "owner-v1").status == WITHDRAWN and not ada_files.exists()
    assert store.count(bea.twin.id) == 3 and facts.get(bea.twin.id, bea_fact.id).text.startswith("Bea's")
    assert training.get(bea.twin.id, "owner-v1").status == SERVING and bea_files.exists()
    assert training.count_samples(bea.twin.id) == 2
    for mode in MODES:
        assert found(store, bea.twin, f"brass {SHARED}", mode) >= {bea.item_ids[0]}, mode
    assert found(store, ada.twin, SHARED, "lexical") == set()

    # Ada's tombstones keep Ada's copy out, never Bea's: the same message imports into Bea's twin again
    history_file = tmp_path / "again.jsonl"
    history_file.write_text(json.dumps(history("again", "Ada", ada.secret)[0]) + "\n", encoding="utf-8")
    assert import_path(store, ada.twin.id, history_file).forgotten == 1
    assert import_path(store, bea.twin.id, history_file).added == 1
