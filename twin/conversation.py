"""Builds the conversation side of a twin: the LLM client, the experts and the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from functools import partial

import httpx

from bots.console import CONSOLE, CONSOLE_OWNER_ID
from core.audience import AudienceResolver, owner_accounts
from core.drafts import DraftForgetting, Drafts
from core.endpoints import ModelEndpoint
from core.experts import Expert
from core.forgetting import ForgetConversation, Forgetter
from core.indexer import BackgroundIndexer
from core.l1 import read_again
from core.llm import OpenAIChatClient
from core.memory_commands import MemoryCommands
from core.pipeline import Pipeline, reply_source_id
from core.profile import ProfileView
from core.respond import ModelRouter, Responder
from core.training_commands import RetrainTrigger, TrainingCommands
from storage.facts import FactStore
from storage.forget import L0Forgetting
from storage.l1_forgetting import L1Forgetting
from storage.log_forgetting import LogForgetting
from storage.models import Visibility
from storage.people import PeopleDirectory
from storage.profiles import ProfileStore
from storage.retrain_requests import RetrainRequests
from storage.state import StateStore
from storage.training import AUDIENCES, TrainingStore
from twin.app import TwinApp
from twin.l2 import load_serving, training_forgetting
from twin.scheduler import run_retrain_now
from twin.settings import Settings

CONSOLE_HISTORY = "console_history"  # twin.cli.line_editor keeps the console's history there
EXPERT_AUDIENCE = {"public": "stranger", "contacts": "contact", "private": "owner"}


@contextmanager
def model_server(settings: Settings) -> Iterator[str]:
    """The configured model server's URL, or the local vLLM's: reused if running, else started and stopped after."""
    if settings.llm_url:
        yield settings.llm_url
        return
    from serving.server import ManagedVLLM

    server = ManagedVLLM(settings)
    url = server.ensure_running()
    try:
        yield url
    finally:
        server.stop()  # stops only a server this process started


LOCAL_REPETITION_PENALTY = 1.15  # SmolLM2-135M repeats itself under greedy decoding without it


def text_sampling(settings: Settings) -> dict:
    """Extra sampling fields for free-text replies: vLLM's repetition penalty where it is known to be vLLM."""
    penalty = settings.llm_repetition_penalty
    if penalty is None and not settings.llm_url:
        penalty = LOCAL_REPETITION_PENALTY
    return {"repetition_penalty": penalty} if penalty is not None else {}


def _http(url: str, key: str | None, timeout: float) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=url.rstrip("/") + "/", headers=headers, timeout=timeout)


def _expert(name: str, config: ModelEndpoint, http: httpx.AsyncClient) -> Expert:
    client = OpenAIChatClient(http, default_model=config.model, max_tokens=1024)
    return Expert(name=name, model=config.model, client=client, audience=EXPERT_AUDIENCE[config.visibility])


def build_drafts(app: TwinApp) -> Drafts:
    """The twin's drafts (draft mode), in the state store."""
    return Drafts(StateStore(app.store.engine), app.store, app.twin.id, reply_source_id)


def build_forgetter(app: TwinApp, drafts: Drafts | None = None) -> Forgetter:
    """Forgetting over L0 and every layer derived from it (drafts; training data and adapters: withdrawn, retrained).
    The training layer comes first: it finds what was derived from the facts L1 removes."""
    wake = partial(run_retrain_now, app.twin.id)
    engine = app.store.engine
    history = app.settings.data_dir / CONSOLE_HISTORY  # what was typed at the console
    layers = [training_forgetting(app, wake), L1Forgetting(engine), DraftForgetting(drafts or build_drafts(app)),
              LogForgetting(app.settings.logs_dir, engine, also=[history])]
    return Forgetter(L0Forgetting(app.store), layers)


def retrain_trigger(app: TwinApp) -> RetrainTrigger:
    """What /retrain does: a request for every audience, with the chat that asked (it hears the outcome), and the
    retrain job woken."""
    twin_id = app.twin.id

    def trigger(reason: str, reply_to: tuple[str, str] | None) -> None:
        RetrainRequests(app.store.engine).request(twin_id, reason, list(AUDIENCES), reply_to=reply_to)
        run_retrain_now(twin_id)

    return trigger


def claim_owner_accounts(app: TwinApp, people: PeopleDirectory, owners: frozenset[str]) -> None:
    """The owner's platform accounts (the console's included) belong to the owner's person, so their messages
    are the owner's and `twin people list` shows the owner once (an older data dir is repaired here)."""
    for account in sorted(owners):
        platform, _, external_id = account.partition(":")
        if external_id:
            read_again(FactStore(app.store.engine), app.twin.id,
                       people.claim_for_owner(app.twin.id, platform, external_id))
    app.store.forget_cached_people()


@asynccontextmanager
async def open_pipeline(app: TwinApp, url: str) -> AsyncIterator[Pipeline]:
    """The pipeline for one twin, talking to the model server at `url`; clients closed on exit."""
    settings = app.settings
    async with AsyncExitStack() as stack:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        http = await stack.enter_async_context(_http(url, key, settings.llm_timeout))
        llm = OpenAIChatClient(http, default_model=settings.llm_served_name, max_tokens=settings.llm_max_tokens,
                               attempts=settings.llm_retries, text_sampling=text_sampling(settings))
        experts = {}
        for name, config in settings.experts.items():
            expert_key = config.api_key.get_secret_value() if config.api_key else None
            expert_http = await stack.enter_async_context(_http(config.url, expert_key, config.timeout))
            experts[name] = _expert(name, config, expert_http)
        twin_id = app.twin.id
        owners = owner_accounts([*settings.owner_ids, f"{CONSOLE}:{CONSOLE_OWNER_ID}"])
        people = PeopleDirectory(app.store.engine)
        await asyncio.to_thread(claim_owner_accounts, app, people, owners)
        audiences = AudienceResolver(people, twin_id, app.twin.display_name, owners)
        facts = FactStore(app.store.engine)
        profile = ProfileView(twin_id, app.twin.display_name, facts, ProfileStore(app.store.engine),
                              embed=app.store.embedder.embed, query_vector=app.store.query_vectors.vector)
        router = ModelRouter(settings.llm_served_name, settings.llm_adapters, TrainingStore(app.store.engine), twin_id)
        await asyncio.to_thread(load_serving, app)  # the serving adapters, into a model server that just started
        responder = Responder(twin_id, app.twin.display_name, app.searcher, llm, router, experts, profile=profile)
        memory = MemoryCommands(twin_id, app.twin.display_name, app.store, facts, profile)
        indexer = await stack.enter_async_context(BackgroundIndexer(app.store))
        drafts = build_drafts(app)
        forgetting = ForgetConversation(build_forgetter(app, drafts), twin_id)
        yield Pipeline(twin_id, app.twin.display_name, app.store, audiences, responder,
                       Visibility(settings.default_visibility), indexer, forgetting, drafts=drafts,
                       more_commands=memory.handlers() | TrainingCommands(
                           app.twin.display_name, retrain_trigger(app), RetrainRequests(app.store.engine),
                           twin_id).handlers())
