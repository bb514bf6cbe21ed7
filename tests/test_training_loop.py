"""The training loop's stages without training: fact cards, synthesis per audience (privacy by construction), every
selection filter, the probe set (frozen, versioned), the deploy gate, continuation and forgetting by fact. Real
SQLite stores and the real embedding model; training itself is in test_training.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.experts import Critique, EnhancedRequest
from storage.facts import FactStore, NewFact
from storage.memory import MemoryStore
from storage.models import Fact, FactOrigin, Twin, Visibility
from storage.training import PROBE, READY, SERVING, WITHDRAWN, NewSample, StoredSample, TrainingStore
from training.cards import OWNER_EVAL, OWNER_TRAIN, card_for, mentions, questions
from training.evaluation import misses, score
from training.gate import choose, compare
from training.loop import RetrainDeps, Run, cards_of, continue_from, synthesize
from training.probes import sync
from training.recipe import TrainingRecipe
from training.selection import Selector, length_controlled
from training.stages import EVALUATION_SHARE, MIN_STAGE_SECONDS, select, training_seconds
from training.synthesis import Synthesis, Synthesizer

FACTS = [("Sam's dog's name is Biscuit.", "public"), ("Sam's home city is Lisbon.", "public"),
         ("Sam's favourite band is Radiohead.", "public"), ("Sam's sister's name is Inês.", "contacts"),
         ("Sam's gym is Vertigo Climbing.", "contacts"), ("Sam's locker code is 4417.", "private"),
         ("Sam's doctor is Dr. Almeida.", "private"), ("Sam's bank is Millennium BCP.", "private"),
         ("Sam likes long walks", "public")]  # the last has no copula: no card, reported
PRIVATE_KEYS = ["4417", "Dr. Almeida", "Millennium BCP"]


def _fact(text: str, visibility: str = "public", fact_id: int = 1) -> Fact:
    return Fact(id=fact_id, twin_id=1, text=text, visibility=Visibility(visibility), valid_from=None)  # type: ignore[arg-type]


@pytest.fixture
def facts(store: MemoryStore, twin: Twin) -> FactStore:
    found = FactStore(store.engine)
    for text, visibility in FACTS:
        found.add(twin.id, NewFact(text, origin=FactOrigin.owner, visibility=Visibility(visibility)))
    return found


def _deps(store: MemoryStore, twin: Twin, facts: FactStore, tmp_path: Path, **recipe: object) -> RetrainDeps:
    return RetrainDeps(twin.id, "Sam", TrainingStore(store.engine), facts, tmp_path / "adapters", lambda: "base",
                       lambda _base: lambda messages: sum(len(m["content"].split()) for m in messages),
                       recipe=TrainingRecipe(**recipe))


def _text(sample: NewSample) -> str:
    return json.dumps(sample.prompt) + sample.completion + json.dumps(sample.meta or {})


def test_a_fact_becomes_a_card_with_questions_and_a_grounded_answer() -> None:
    card = card_for(_fact("Sam's dog's name is Biscuit."))
    assert card is not None and (card.subject, card.verb, card.key) == ("Sam's dog's name", "is", "Biscuit")
    assert card.subject_for("Sam", "first") == "my dog's name"
    assert card.answer("Sam", "second") == "Your dog's name is Biscuit."
    assert card.answer("Sam", "third") == "Sam's dog's name is Biscuit."
    assert questions(card, "Sam", "owner", OWNER_TRAIN[:1]) == [(OWNER_TRAIN[0], "What is my dog's name?")]
    assert not set(OWNER_TRAIN) & set(OWNER_EVAL)  # evaluation phrasings are never trained
    assert card_for(_fact("Sam's locker code: 4417")).key == "4417"
    assert card_for(_fact("Sam likes long walks")) is None
    assert mentions("  your DOG is  biscuit!", "Biscuit") and not mentions("a biscuit tin", "Biscuits")


def test_synthesis_covers_each_task_and_a_lower_audience_never_holds_a_private_fact(
    store: MemoryStore, twin: Twin, facts: FactStore, tmp_path: Path
) -> None:
    deps = _deps(store, twin, facts, tmp_path, control_share=0.0)
    owner, owner_probes, _ = synthesize(Run(deps, "owner", deps.recipe, lambda _t: None, None))
    assert set(owner.counts) == {"memory_owner", "enhance", "critique"}
    assert owner.counts["memory_owner"] == 8 * deps.recipe.phrasings_per_fact
    assert any(PRIVATE_KEYS[0] in s.completion for s in owner.sft)  # the owner's adapter may know everything
    enhance = [s for s in owner.sft if s.task == "enhance"]
    assert enhance and not any(key in _text(s) for s in enhance for key in PRIVATE_KEYS + ["Inês", "Vertigo"])
    verdicts = {json.loads(s.completion)["verdict"] for s in owner.sft if s.task == "critique"}
    assert verdicts == {"fits", "adapted"}
    assert all(s.fact_ids for s in owner.sft)  # provenance: every fact-made sample names its fact
    assert {p.task for p in owner_probes} >= {"recall_topic", "recall_indirect", "critique", "enhance"} - {
        "recall_indirect"}

    stranger, stranger_probes, inputs = synthesize(Run(deps, "stranger", deps.recipe, lambda _t: None, None))
    assert set(stranger.counts) == {"memory_others", "decline", "introduce"}
    for sample in stranger.sft + stranger.pairs:  # neither the samples nor their rejected answers
        assert not any(key in _text(sample) for key in PRIVATE_KEYS + ["Inês", "Vertigo"]), sample
    assert {c.key for c in inputs["hidden"]} == {"Inês", "Vertigo Climbing", *PRIVATE_KEYS}
    assert {p.meta["key"] for p in stranger_probes if p.task == "leak"} == {"Inês", "Vertigo Climbing",
                                                                           *PRIVATE_KEYS}
    declines = [s for s in stranger.sft if s.task == "decline"]
    assert declines and all("will get back to you" in s.completion for s in declines)
    assert stranger.pairs and all(p.meta["rejected"] != p.completion for p in stranger.pairs)


def test_the_json_tasks_reason_in_their_cot_style_inside_the_json_and_only_over_what_they_may_see(
    store: MemoryStore, twin: Twin, facts: FactStore, tmp_path: Path, embedder  # noqa: ANN001
) -> None:
    plain = _deps(store, twin, facts, tmp_path, control_share=0.0)
    out, _, _ = synthesize(Run(plain, "owner", plain.recipe, lambda _t: None, None))
    assert all("reasoning" not in json.loads(s.completion) for s in out.sft if s.task in ("enhance", "critique"))

    deps = _deps(store, twin, facts, tmp_path, control_share=0.0, cot={"enhance": "weak", "critique": "weak"})
    out, _, _ = synthesize(Run(deps, "owner", deps.recipe, lambda _t: None, None))
    enhance = [EnhancedRequest.model_validate_json(s.completion) for s in out.sft if s.task == "enhance"]
    critique = [(s, Critique.model_validate_json(s.completion)) for s in out.pairs if s.task == "critique"]
    assert enhance and all(e.reasoning.startswith("The memory says: Sam's") for e in enhance)
    assert not any(key in e.reasoning for e in enhance for key in PRIVATE_KEYS + ["Inês", "Vertigo"])
    assert all(("agrees" in c.reasoning) == (c.verdict == "fits") for _, c in critique)
    assert all(json.loads(s.meta["rejected"])["verdict"] != c.verdict for s, c in critique)  # the pair's contrast
    kept = Selector(lambda _messages: 50, 320, embed=lambda texts: embedder.embed(texts).tolist()).select(out.sft)
    assert {s.task for s in kept} >= {"enhance", "critique"}  # the schema filter takes the reasoning field


def test_held_out_facts_are_never_trained_and_are_probed_as_a_control(
    store: MemoryStore, twin: Twin, facts: FactStore, tmp_path: Path
) -> None:
    deps = _deps(store, twin, facts, tmp_path, control_share=0.5)
    out, probes, _ = synthesize(Run(deps, "owner", deps.recipe, lambda _t: None, None))
    control = {p.fact_ids[0] for p in probes if p.task == "control"}
    assert control and not control & {f for s in out.sft for f in s.fact_ids}
    again, probes_again, _ = synthesize(Run(deps, "owner", deps.recipe, lambda _t: None, None))
    assert {p.fact_ids[0] for p in probes_again if p.task == "control"} == control  # the same facts every run


def test_each_filter_drops_what_it_should(store: MemoryStore, twin: Twin, embedder) -> None:  # noqa: ANN001
    def sample(completion: str, task: str = "memory_owner", question: str = "What is my dog's name?",
               key: str | None = "Biscuit", fact: int = 1) -> NewSample:
        return NewSample([{"role": "user", "content": question}], completion, "public", (), (fact,), task=task,
                         meta={"key": key} if key else None)

    given = [
        sample("Your dog's name is Biscuit."),                                   # kept
        sample("Your dog's name is Biscuit."),                                   # exact duplicate
        sample("Your dog's name is Biscuit.", question="What's my dog's name?"),  # near duplicate
        sample("Your dog's name is Rex."),                                        # not grounded
        sample("word " * 60),                                                     # too long (and ungrounded)
        sample("Your locker code is 4417.", key="4417", fact=2),                  # more private than allowed
        sample("{not json", task="critique", key=None),                          # schema
        sample("Thanks, see you at the concert tonight!", task="reply", key=None),  # forgotten
        sample(json.dumps({"verdict": "fits", "answer": "Your dog is Biscuit."}), task="critique"),  # kept
    ]
    selector = Selector(lambda messages: sum(len(m["content"].split()) for m in messages), 40, ["4417"],
                        forgotten=lambda texts: ["concert tonight" in t for t in texts],
                        embed=lambda texts: embedder.embed(texts).tolist())
    kept = selector.select(given)
    assert [s.completion for s in kept] == [given[0].completion, given[8].completion]
    assert selector.report.dropped == {"too long": 1, "schema": 1, "duplicate": 1, "near duplicate": 1,
                                       "not grounded": 1, "more private than the audience": 1, "forgotten": 1}
    assert selector.report.given == 9 and selector.report.kept == 2


def test_dpo_takes_pairs_only_from_the_recipes_dpo_tasks_and_sft_keeps_every_sample(
    store: MemoryStore, twin: Twin, facts: FactStore, tmp_path: Path
) -> None:
    def selected(**recipe: object) -> tuple[list[NewSample], list[NewSample]]:
        deps = _deps(store, twin, facts, tmp_path, control_share=0.0, **recipe)
        run = Run(deps, "stranger", deps.recipe, lambda _t: None, None)
        out, _, inputs = synthesize(run)
        return select(run, out, inputs["hidden"], lambda messages: 50)

    every_sft, every_pair = selected()
    assert {p.task for p in every_pair} == {"memory_others", "decline", "introduce"}
    sft, pairs = selected(dpo_tasks=["decline", "introduce"])
    assert pairs and {p.task for p in pairs} == {"decline", "introduce"}
    assert len(sft) == len(every_sft)  # SFT still learns every task; only the preference pairs are chosen
    with pytest.raises(ValueError, match="dpo_tasks"):
        TrainingRecipe(dpo_tasks=["voice"])


def test_length_control_removes_a_judges_preference_for_longer_answers() -> None:
    scores, lengths = [0.0, 0.5, 1.0, 1.0], [10, 20, 30, 40]
    controlled = length_controlled(scores, lengths)
    assert abs(sum(controlled) / 4 - sum(scores) / 4) < 1e-9
    assert max(controlled) - min(controlled) < max(scores) - min(scores)


def test_the_probe_set_is_frozen_until_the_facts_change(
    store: MemoryStore, twin: Twin, facts: FactStore, tmp_path: Path
) -> None:
    deps = _deps(store, twin, facts, tmp_path)
    _, probes, _ = synthesize(Run(deps, "owner", deps.recipe, lambda _t: None, None))
    stored, version = sync(deps.training, twin.id, "owner", probes)
    again, same = sync(deps.training, twin.id, "owner", probes)
    assert version == same and [p.id for p in stored] == [p.id for p in again]  # not rewritten
    new = facts.add(twin.id, NewFact("Sam's car is a green Volvo.", origin=FactOrigin.owner,
                                     visibility=Visibility.public))
    _, more, _ = synthesize(Run(deps, "owner", deps.recipe, lambda _t: None, None))
    changed, other = sync(deps.training, twin.id, "owner", more)
    assert other != version and any(new.id in p.fact_ids for p in changed)
    assert all(p.task != "recall_topic" or p.meta["question"] not in {s.prompt[-1]["content"] for s in more
                                                                         if s.kind != PROBE} for p in changed)


def test_a_superseded_value_counts_as_wrong(store: MemoryStore, twin: Twin, facts: FactStore) -> None:
    old = next(f for f in facts.current(twin.id) if "home city" in f.text)
    facts.supersede(twin.id, old.id, NewFact("Sam's home city is Porto.", origin=FactOrigin.owner,
                                             visibility=Visibility.public))
    _, cards, without = cards_of(facts, twin.id, "owner")
    porto = next(c for c in cards if c.key == "Porto")
    assert porto.wrong == ("Lisbon",) and [f.text for f in without] == ["Sam likes long walks"]


def test_the_budget_covers_the_whole_run_with_room_left_for_the_evaluation() -> None:
    # 30 minutes, 40 s of synthesis and selection spent: training may take what leaves a fifth for the evaluation
    assert training_seconds(30, 40.0) == pytest.approx(30 * 60 * (1 - EVALUATION_SHARE) - 40.0)
    assert training_seconds(30, 40.0) + 40.0 + 30 * 60 * EVALUATION_SHARE == pytest.approx(30 * 60)
    assert training_seconds(30, 0.0) > training_seconds(30, 300.0)  # a slow synthesis leaves less for training
    assert training_seconds(1, 600.0) == MIN_STAGE_SECONDS  # a spent budget still trains a few steps


def test_the_gate_refuses_leaks_and_regressions_and_prefers_dpo_only_when_not_worse() -> None:
    recipe = TrainingRecipe()
    serving = {"recall_topic": 0.8, "json_valid": 1.0, "voice_nll": 2.0, "voice_replies": 6, "leaks": 0}
    assert compare({**serving, "recall_topic": 0.9}, serving, recipe).deploy
    assert not compare({**serving, "leaks": 1}, serving, recipe).deploy
    assert "recall fell" in compare({**serving, "recall_topic": 0.6}, serving, recipe).reason
    assert "JSON" in compare({**serving, "json_valid": 0.5}, serving, recipe).reason
    assert "voice got worse" in compare({**serving, "voice_nll": 2.5}, serving, recipe).reason
    # one held-out reply's likelihood is noise: it is reported, and it does not hold back what recall gained
    few = compare({**serving, "recall_topic": 1.0, "voice_nll": 2.5, "voice_replies": 1}, serving, recipe)
    assert few.deploy and "voice not weighed: 1 held-out replies, fewer than 5" in few.reason
    assert choose(serving, {**serving, "recall_topic": 0.85}, recipe)[0] == "dpo"
    assert choose(serving, {**serving, "recall_topic": 0.5}, recipe)[0] == "sft"
    assert choose(serving, None, recipe)[0] == "sft"


def test_continue_from_the_serving_adapter_only_while_what_it_learned_still_holds(
    store: MemoryStore, twin: Twin, facts: FactStore, tmp_path: Path
) -> None:
    deps = _deps(store, twin, facts, tmp_path)
    folder = tmp_path / "adapters" / "owner-v1"
    folder.mkdir(parents=True)
    learned = [f.id for f in facts.current(twin.id)]
    deps.training.register(twin.id, "owner-v1", "owner", str(folder), "base", [], 3, fact_ids=learned)
    deps.training.set_status(twin.id, "owner-v1", READY, metrics={"recipe": {"r": 16}})
    deps.training.promote(twin.id, "owner-v1")
    adapter, how = continue_from(deps, "owner", "base", 16)
    assert adapter is not None and how == "continued from owner-v1"
    assert continue_from(deps, "owner", "other-base", 16)[0] is None
    assert continue_from(deps, "owner", "base", 8)[0] is None
    facts.supersede(twin.id, learned[0], NewFact("Sam's dog's name is Rex.", origin=FactOrigin.owner,
                                                 visibility=Visibility.public))
    adapter, how = continue_from(deps, "owner", "base", 16)
    assert adapter is None and "superseded" in how


def test_forgetting_a_remembered_fact_withdraws_every_adapter_that_learned_it(
    twin_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.forget import ForgetQuery
    from twin.app import open_twin
    from twin.conversation import build_forgetter
    from twin.settings import Settings

    with open_twin(Settings()) as app:
        facts = FactStore(app.store.engine)
        fact = facts.add(app.twin.id, NewFact("Ada's allergy is hazelnuts.", origin=FactOrigin.owner,
                                              visibility=Visibility.private))  # set with /remember: no L0 item
        other = facts.add(app.twin.id, NewFact("Ada's cat is Tom.", origin=FactOrigin.owner,
                                               visibility=Visibility.public))
        training = TrainingStore(app.store.engine)
        for name, learned in (("owner-v1", [fact.id, other.id]), ("stranger-v1", [other.id])):
            folder = twin_env / "adapters" / name
            folder.mkdir(parents=True)
            (folder / "adapter_model.safetensors").write_bytes(b"weights")
            training.register(app.twin.id, name, name.split("-")[0], str(folder), "base", [], 2, fact_ids=learned)
            training.set_status(app.twin.id, name, READY)
            training.promote(app.twin.id, name)
        training.replace_samples(app.twin.id, "owner", [NewSample(
            [{"role": "user", "content": "What is my allergy?"}], "Your allergy is hazelnuts.", "private", (),
            (fact.id,), task="memory_owner")])
        forgetter = build_forgetter(app)
        plan = forgetter.plan(app.twin.id, ForgetQuery(text="hazelnuts"))
        assert any("owner-v1" in line for lines in plan.layers.values() for line in lines)
        forgetter.forget(app.twin.id, ForgetQuery(text="hazelnuts"))
        assert training.get(app.twin.id, "owner-v1").status == WITHDRAWN
        assert training.get(app.twin.id, "stranger-v1").status == SERVING  # it never learned the fact
        assert training.count_samples(app.twin.id) == 0
        assert not (twin_env / "adapters" / "owner-v1").exists()


def test_a_teacher_gets_only_what_it_may_see_and_its_bad_paraphrases_are_dropped(
    store: MemoryStore, twin: Twin, facts: FactStore
) -> None:
    import asyncio

    import httpx

    from core.llm import OpenAIChatClient
    from training.teacher import Teacher, teach
    from twin.testing import RecordingLLM

    _, cards, _ = cards_of(facts, twin.id, "owner")
    public = [c for c in cards if c.visibility == "public"]
    with RecordingLLM() as llm:
        for card in public:
            llm.script.append({"questions": [f"Tell me again about {card.subject_for('Sam', 'first')}, please?",
                                             f"Is it {card.key}?", "ok?"]})

        async def go() -> tuple:
            async with httpx.AsyncClient(base_url=llm.url + "/") as http:
                teacher = Teacher(OpenAIChatClient(http, default_model="base"), "base", "public")
                return await teach(teacher, cards, "Sam", 4, "none"), teacher

        (train, held, _), teacher = asyncio.run(go())
        sent = "\n".join(llm.prompts())
    assert len(llm.requests) == len(public)  # contacts and private facts were never sent
    assert teacher.report.withheld == len(cards) - len(public)
    assert not any(key in sent for key in PRIVATE_KEYS + ["Inês", "Vertigo", "Biscuit"])  # questions only, no keys
    assert teacher.report.dropped == {"gives the answer away": len(public), "length": len(public)}
    assert all(len(train[c.fact_id]) == 1 and held[c.fact_id] == [] for c in public)
    synth = Synthesizer("Sam", TrainingRecipe(), train)
    out = Synthesis("owner")
    synth.memory_qa(out, public[:1], [])
    assert out.sft[0].prompt[0]["content"].startswith("You are the digital twin of Sam")  # serving's builder
    assert any(s.meta["family"] == "teacher" for s in out.sft)


def test_only_paraphrases_that_avoid_the_subjects_words_are_held_out_as_indirect_questions(
    store: MemoryStore, twin: Twin, facts: FactStore
) -> None:
    import asyncio

    import httpx

    from core.llm import OpenAIChatClient
    from training.cards import names_topic
    from training.teacher import Teacher, teach
    from twin.testing import RecordingLLM

    _, cards, _ = cards_of(facts, twin.id, "owner")
    dog = next(c for c in cards if "dog" in c.subject)
    given = ["What is my dog called?", "What do I call my pet?", "Remind me of my dogs name.",
             "Who wags at the door when I get home?", "How do I address my furry friend?"]
    with RecordingLLM() as llm:
        llm.script.append({"questions": given})

        async def go() -> tuple:
            async with httpx.AsyncClient(base_url=llm.url + "/") as http:
                return await teach(Teacher(OpenAIChatClient(http, default_model="base"), "base", "private"), [dog],
                                   "Sam", 5, "none")

        train, held, _ = asyncio.run(go())
    assert "must not use any word" in llm.prompts()[0]  # the teacher is asked for the indirect kind
    assert held[dog.fact_id] == ["Who wags at the door when I get home?"]  # every other indirect one
    assert train[dog.fact_id] == ["What is my dog called?", "Remind me of my dogs name.", "What do I call my pet?",
                                  "How do I address my furry friend?"]  # topic-naming ones all trained
    assert not any(names_topic(q, dog, "Sam") for q in held[dog.fact_id])


def test_a_superseded_fact_requests_a_retrain_of_each_audience_that_saw_it(
    store: MemoryStore, twin: Twin, facts: FactStore
) -> None:
    from storage.retrain_requests import RetrainRequests

    requests = RetrainRequests(store.engine)
    assert requests.pending(twin.id) is None
    private = next(f for f in facts.current(twin.id) if "locker" in f.text)
    facts.supersede(twin.id, private.id, NewFact("Sam's locker code is 9120.", origin=FactOrigin.owner,
                                                 visibility=Visibility.private))
    assert requests.pending(twin.id)["audiences"] == ["owner"]
    public = next(f for f in facts.current(twin.id) if "home city" in f.text)
    facts.supersede(twin.id, public.id, NewFact("Sam's home city is Porto.", origin=FactOrigin.owner,
                                                visibility=Visibility.public))
    assert requests.pending(twin.id)["audiences"] == ["contact", "owner", "stranger"]


def test_a_named_twins_adapters_carry_its_handle(store: MemoryStore) -> None:
    training = TrainingStore(store.engine)
    single = store.ensure_twin("owner", "Ada")
    named = store.ensure_twin("bea", "Bea")
    assert training.next_name(single.id, "owner") == "owner-v1"
    assert training.next_name(named.id, "owner") == "bea-owner-v1"
    training.register(named.id, "bea-owner-v1", "owner", "/tmp/x", "base", [], 1)
    assert training.next_name(named.id, "owner") == "bea-owner-v2"


def test_the_guard_strips_reasoning_before_anyone_reads_it() -> None:
    from core.respond import guard

    assert guard("<think>The memory says: Sam's locker code is 4417.</think> Your locker code is 4417.") == \
        "Your locker code is 4417."
    assert guard("Sure. <think>weighing Sam's private notes") == "Sure."  # cut off mid-reasoning
    assert "private" not in guard("<think>a\nprivate\nline</think>Hello!")


def test_a_streamed_reply_never_shows_its_reasoning() -> None:
    import asyncio

    from core.live import streaming_to
    from core.respond import Responder

    class Streaming:
        async def stream(self, messages, model=None):  # noqa: ANN001, ANN202 - the LLM client's shape
            for piece in ["Sure", " <th", "ink>Sam's locker", " is 4417</think>", " Hi", " a < b"]:
                yield 0.0, piece

    responder = Responder.__new__(Responder)
    responder.llm = Streaming()
    shown: list[str] = []

    async def go() -> str:
        with streaming_to(shown.append):
            text, _model = await responder._generate([], "base")
        return text

    text = asyncio.run(go())
    assert "4417" in text and "4417" not in "".join(shown) and "think" not in "".join(shown)
    assert "".join(shown) == "Sure  Hi a < b"


def test_the_cpu_preset_trains_without_gradient_checkpointing_and_the_gpu_preset_with_it(tmp_path: Path) -> None:
    from training.sft import Recipe, trainer_args

    # on the CPU the bundled model's activations fit easily and recomputing them doubled a step's time
    assert TrainingRecipe().gradient_checkpointing is False
    assert TrainingRecipe(preset="gpu").gradient_checkpointing is True
    assert TrainingRecipe(preset="gpu", gradient_checkpointing=False).gradient_checkpointing is False
    assert trainer_args(Recipe(max_steps=1), tmp_path)["gradient_checkpointing"] is False
    assert trainer_args(Recipe(max_steps=1, gradient_checkpointing=True), tmp_path)["gradient_checkpointing"] is True


def test_training_stops_before_a_step_that_would_end_past_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import TrainerControl

    import training.sft as sft

    clock = [100.0]
    monkeypatch.setattr(sft.time, "perf_counter", lambda: clock[0])
    callback = sft.reporting_callback([], budget_seconds=100.0)
    control = TrainerControl()

    def step(seconds: float) -> bool:
        callback.on_step_begin(None, None, control)
        clock[0] += seconds
        callback.on_step_end(None, None, control)
        return control.should_training_stop

    assert not step(30.0)  # 30 s spent, another 30 s step ends at 60: within 100
    assert not step(30.0)  # 60 spent, the next ends at 90
    assert step(30.0)  # 90 spent: the next would end at 120, past the budget, so training stops (and is saved)


def _probe(task: str, key: str = "", **meta: object) -> StoredSample:
    return StoredSample(0, [{"role": "user", "content": "?"}], key, "public", task=task,
                        meta={"key": key, "question": f"asked about {key or task}"} | meta)


def test_misses_list_each_probe_a_model_got_wrong_and_only_those() -> None:
    probes = [_probe("recall_topic", "Biscuit"), _probe("recall_indirect", "Lisbon"), _probe("control", "Dune"),
              _probe("leak", "4417"), _probe("leak", "Almeida"),
              _probe("critique", "teal", verdict="fits"), _probe("critique", "Catan", verdict="adapted"),
              _probe("enhance", "Volvo")]
    answers = ["Your dog is Biscuit.", "You live in [bold]Porto[/bold]<think>Lisbon</think>", "I don't know.",
               "Your locker code is 4417.", "I can't share that.",
               '{"verdict": "fits", "answer": "teal"}', "not JSON",
               '{"request": "Car advice? I drive a green Volvo. My salary is 2900 euros."}']
    missed = misses(probes, answers, private_keys=["2900 euros"])
    assert [(m.figure, m.expected) for m in missed] == [
        ("recall_indirect", "Lisbon"),  # reasoning is stripped before scoring: "Lisbon" there does not count
        ("leak", "a decline, not 4417"), ("json_valid", "a JSON object"), ("critique_accuracy", "adapted"),
        ("enhance_coverage", "Volvo")]  # the shareable span is there, but so is a private one
    assert missed[0].answer == "You live in [bold]Porto[/bold]" and missed[0].question == "asked about Lisbon"
    figures = score(probes, answers, private_keys=["2900 euros"])  # the listing agrees with the figures
    for figure in ("recall_topic", "recall_indirect", "critique_accuracy", "json_valid", "enhance_coverage"):
        wrong = sum(m.figure == figure for m in missed)
        assert round(figures["counts"][figure] * (1 - figures[figure])) == wrong, figure
    assert figures["leaks"] == sum(m.figure == "leak" for m in missed) == 1
    assert figures["control"] == 0.0 and all(m.figure != "control" for m in missed)  # a control is meant to miss
