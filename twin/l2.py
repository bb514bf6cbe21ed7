"""Composition of L2 (the personal model): the registry, deploying to and unloading from the model server,
retrain requests and the runner the scheduler's retrain job calls (the teacher and judge: twin.teacher_judge).
Nothing here imports torch: training runs in a child process (training.sft)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from core.training_commands import Notify, status_notice, tell_chats, tell_requesters
from serving.endpoint import LLMServerError
from serving.files import file_lock
from serving.server import ManagedVLLM
from storage.models import Audience
from storage.retrain_requests import RetrainRequests
from storage.training import AUDIENCES, Adapter, StoredSample, TrainingStore
from storage.training_forgetting import TrainingForgetting
from training.loop import RetrainDeps, RetrainOutcome, retrain
from twin.app import TwinApp
from twin.settings import Settings
from twin.teacher_judge import judge_for, teacher_for

log = logging.getLogger(__name__)

ROUTINE_EVERY = timedelta(days=7)  # without a request, retrain (only if there is something new) weekly


def adapters_dir(settings: Settings) -> Path:
    """Where trained adapters live: <data_dir>/adapters/<name>."""
    return settings.data_dir / "adapters"


def deploy_to(settings: Settings) -> Callable[[Adapter], None]:
    """Load an adapter into the model server. The local vLLM when it is not running: nothing to do now, the
    serving adapters are loaded when it starts (`load_serving`). Raises when the server refuses it."""
    def deploy(adapter: Adapter) -> None:
        server = ManagedVLLM(settings)
        if not server.external and not server.status()["running"]:
            return
        server.load_adapter(adapter.name, adapter.path, replace=True)
    return deploy


def unload(settings: Settings, names: list[str]) -> None:
    """Unload adapters from the model server, where it has them (best effort: they no longer serve anyway)."""
    server = ManagedVLLM(settings)
    for name in names:
        try:
            server.unload_adapter(name)
        except LLMServerError as error:
            log.info("unloading %s: %s", name, error)


def load_serving(app: TwinApp) -> None:
    """At start: load every audience's serving adapter into the model server (best effort, logged)."""
    training = TrainingStore(app.store.engine)
    serving = [name for name in (training.serving(app.twin.id, a) for a in AUDIENCES) if name]
    if not serving:
        return
    server = ManagedVLLM(app.settings)
    loaded = {entry["name"] for entry in server.status()["adapters"]}
    for name in serving:
        adapter = training.get(app.twin.id, name)
        if adapter is None or name in loaded:
            continue
        try:
            server.load_adapter(name, adapter.path)
        except LLMServerError as error:
            log.warning("could not load the serving adapter %s: %s", name, error)


def _count_tokens(base: str):  # noqa: ANN202 - a CountTokens
    """A counter of a chat's tokens in the base model's template (the length filter's measure)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)

    def count(messages: list[dict[str, str]]) -> int:
        return len(tokenizer.apply_chat_template(messages, tokenize=True))
    return count


def _forgotten(app: TwinApp) -> Callable[[list[str]], list[bool]]:
    """Which texts match a tombstone (what the owner forgot): such a sample is never trained on."""
    from sqlmodel import Session

    from storage.tombstones import Tombstones

    def check(texts: list[str]) -> list[bool]:
        with Session(app.store.engine) as session:
            return Tombstones().buried(session, app.twin.id, [("training", "-", t) for t in texts], match_text=True)
    return check


def retrain_deps(app: TwinApp, *, deploy: bool = True, teacher: bool = True) -> RetrainDeps:
    """What `training.loop.retrain` needs for this twin."""
    from serving.bundled import resolve_base_model
    from storage.facts import FactStore

    experts = app.settings.experts
    expert_audience = "contact" if experts and all(e.visibility == "contacts" for e in experts.values()) \
        else "stranger"
    return RetrainDeps(
        twin_id=app.twin.id, owner_name=app.twin.display_name, training=TrainingStore(app.store.engine),
        facts=FactStore(app.store.engine), adapters_dir=adapters_dir(app.settings),
        base_model=lambda: resolve_base_model(app.settings), count_tokens=_count_tokens,
        recipe=app.settings.training, deploy=deploy_to(app.settings) if deploy else None,
        teach=teacher_for(app) if teacher else None, judge=judge_for(app) if teacher else None,
        embed=lambda texts: app.store.embedder.embed(texts).tolist(),
        forgotten=_forgotten(app), expert_audience=expert_audience,
    )


# -- retrain requests: durable (another process may ask: `twin forget`), and immediate in this process -----

Wake = Callable[[], object]  # makes the retrain job run now, where this process runs the scheduler


def request_retrain(engine: Engine, twin_id: int, reason: str, audiences: list[str] | None = None,
                    wake: Wake | None = None) -> None:
    """Record that a retrain is wanted (the running twin's retrain job picks it up) and wake the job."""
    RetrainRequests(engine).request(twin_id, reason, list(audiences or AUDIENCES))
    if wake is not None:
        wake()


def pending_retrain(engine: Engine, twin_id: int) -> dict | None:
    """The retrain request the job has not taken up yet, if any: {'requested_at', 'reason', 'audiences'}."""
    return RetrainRequests(engine).pending(twin_id)


def retrain_one_at_a_time(app: TwinApp, audience: str, *, deploy: bool = True, **options: object) -> RetrainOutcome:
    """`training.loop.retrain` under a lock on the data dir: the job and `twin train` (any process) never train
    at once, so two runs can neither pick the same adapter name nor share the CPU."""
    with file_lock(app.settings.run_dir / "retrain.lock"):
        return retrain(retrain_deps(app, deploy=deploy), audience, deploy=deploy, **options)  # type: ignore[arg-type]


def on_withdrawn(app: TwinApp, wake: Wake | None = None) -> Callable[[list[str]], None]:
    """What the forget layer calls with the adapters it withdrew: unload them, schedule a retrain."""
    def withdrawn(names: list[str]) -> None:
        unload(app.settings, names)
        training = TrainingStore(app.store.engine)
        audiences = sorted({a.audience for name in names if (a := training.get(app.twin.id, name)) is not None})
        request_retrain(app.store.engine, app.twin.id, f"withdrew {', '.join(names)} (forgotten data)", audiences,
                        wake)
    return withdrawn


def training_forgetting(app: TwinApp, wake: Wake | None = None) -> TrainingForgetting:
    """The forget layer for L2, wired to unload and retrain."""
    return TrainingForgetting(app.store.engine, on_withdrawn(app, wake))


def retrain_runner(app: TwinApp, notify: Notify | None = None) -> Callable[[], Awaitable[list[RetrainOutcome]]]:
    """What the scheduler's retrain job runs: a pending request's audiences (always), or a weekly routine run
    of every audience that has something new; training is in a child process, off the event loop. With `notify`,
    the chats that asked for the run (/retrain) hear each stage as it starts, in a short line, and the outcome."""
    requests = RetrainRequests(app.store.engine)

    def run(loop: asyncio.AbstractEventLoop) -> tuple[list[RetrainOutcome], list[tuple[str, str]]]:
        audiences, only_if_new = requests.take(app.twin.id, ROUTINE_EVERY)
        wanted = list(AUDIENCES) if audiences is None else audiences or []
        chats = requests.asked_from(app.twin.id) if notify is not None and wanted else []
        outcomes = []
        for audience in wanted:
            def stage(text: str, audience: str = audience, *, long: bool = False) -> None:  # the training thread
                log.info("retraining %s: %s", audience, text)
                if long and chats and notify is not None:  # posted to the event loop, never waited on
                    asyncio.run_coroutine_threadsafe(tell_chats(chats, status_notice(audience, text), notify), loop)
            outcomes.append(retrain_one_at_a_time(app, audience, only_if_new=only_if_new, stage=stage))
        for outcome in outcomes:
            log.info("retrain %s: %s", outcome.audience, outcome.message)
        if outcomes:
            requests.record_outcomes(app.twin.id, [{"audience": o.audience, "status": o.status,
                                                    "message": o.message} for o in outcomes])
        return outcomes, chats

    async def runner() -> list[RetrainOutcome]:
        outcomes, chats = await asyncio.to_thread(run, asyncio.get_running_loop())
        if notify is not None and outcomes:
            await tell_requesters(chats, [outcome.message for outcome in outcomes], notify)
        return outcomes

    return runner


def training_lock(app: TwinApp):  # noqa: ANN201 - a context manager
    """One training run at a time per data dir (any process)."""
    return file_lock(app.settings.run_dir / "retrain.lock")


def serving_prompts(app: TwinApp, audience: str, probes: Sequence[StoredSample]) -> list[list[dict[str, str]]]:
    """Each probe's question in the prompt serving would build for it: the audience's retrieved memory and
    profile (only what it may see), through the same builders (core.prompts) and search the pipeline uses."""
    from core.profile import ProfileView
    from core.prompts import PromptBudget, assistant_prompt, memory_block, on_behalf_prompt
    from storage.facts import FactStore
    from storage.models import ItemKind
    from storage.profiles import ProfileStore
    from storage.search import SearchScope
    from training.probes import ASKER

    budget, owner = PromptBudget(), app.twin.display_name
    profile = ProfileView(app.twin.id, owner, FactStore(app.store.engine), ProfileStore(app.store.engine),
                          embed=app.store.embedder.embed, query_vector=app.store.query_vectors.vector)  # as served
    prompts = []
    for probe in probes:
        question = probe.meta.get("question", "")
        if probe.task in ("critique", "enhance") or not question:
            prompts.append(probe.prompt)  # their memory block is the task's own
            continue
        asker = audience
        found = app.searcher.search(question, SearchScope(app.twin.id, audience=asker), budget.memory_items)
        items = [r.item for r in found if r.item.kind != ItemKind.reply][: budget.memory_items]
        block = memory_block(items, budget, profile=profile.for_prompt(asker, question))
        prompts.append(assistant_prompt(owner, block, [], question, budget) if audience == Audience.owner
                       else on_behalf_prompt(owner, ASKER, block, [], question, budget))
    return prompts


def evaluate_adapter(app: TwinApp, adapter: str, audience: str, mode: str, progress=None):  # noqa: ANN001, ANN201
    """`twin eval`: the audience's frozen probe set, answered by the base model and the adapter named (or serving),
    from the weights alone or from the full serving prompt."""
    from serving.bundled import resolve_base_model
    from storage.facts import FactStore
    from training.evaluation import ModelUnderTest, evaluate_weights
    from training.loop import cards_of
    from training.probes import version_of

    training = TrainingStore(app.store.engine)
    name = training.serving(app.twin.id, audience) if adapter == "serving" else adapter
    chosen = training.get(app.twin.id, name) if name and name != "base" else None
    if name not in (None, "base") and chosen is None:
        raise LookupError(f"no adapter named {name}")
    audience = chosen.audience if chosen is not None else audience
    probes = training.samples(app.twin.id, audience, "probe")
    if not probes:
        raise LookupError(f"no probe set for {audience} yet: `twin train --audience ...` builds it")
    hidden_keys: list[str] = []
    if audience != Audience.owner:
        _, visible, _ = cards_of(FactStore(app.store.engine), app.twin.id, audience)
        _, every, _ = cards_of(FactStore(app.store.engine), app.twin.id, Audience.owner)
        hidden_keys = [c.key for c in every if c.fact_id not in {v.fact_id for v in visible}]
    models = [ModelUnderTest("base")] + ([ModelUnderTest(chosen.name, chosen.path)] if chosen is not None else [])
    prompts = serving_prompts(app, audience, probes) if mode == "serving" else None
    return evaluate_weights(resolve_base_model(app.settings), models, probes, [], version_of(probes, audience),
                            hidden_keys, progress=progress, prompts=prompts, bf16=app.settings.training.bf16)
