"""End to end on the real stack: the pipeline, a real vLLM serving the bundled model, a LoRA adapter for the owner."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from vllm_fixtures import SECRET_QUESTION, VLLMServer

from bots.console import CONSOLE, CONSOLE_OWNER_ID
from core.messages import InboundMessage, Mode
from storage.memory import MemoryStore
from storage.models import Twin
from storage.search import HybridSearcher
from twin.app import TwinApp
from twin.conversation import open_pipeline
from twin.settings import Settings

ADAPTER = "owner-secret"


@pytest.fixture
def owner_adapter(vllm_server: VLLMServer, lora_adapter: Path) -> Iterator[str]:
    """The secret-word adapter, loaded at run time as the owner's adapter."""
    vllm_server.manager.load_adapter(ADAPTER, lora_adapter)
    yield ADAPTER
    vllm_server.manager.unload_adapter(ADAPTER)


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_the_owner_is_answered_by_their_adapter_and_a_stranger_by_the_base_model(
    store: MemoryStore, twin: Twin, vllm_server: VLLMServer, owner_adapter: str
) -> None:
    settings = Settings(owner_name="Ada", llm_url=vllm_server.url, llm_adapters={"owner": owner_adapter})
    app = TwinApp(settings=settings, store=store, searcher=HybridSearcher(store), twin=twin)

    async def ask_both() -> tuple:
        async with open_pipeline(app, vllm_server.url) as pipeline:
            owner = await pipeline.handle(InboundMessage(
                platform=CONSOLE, message_id="e2e-1", chat_id="console-owner", sender_id=CONSOLE_OWNER_ID,
                sender_name="Ada", text=SECRET_QUESTION))
            stranger = await pipeline.handle(InboundMessage(
                platform=CONSOLE, message_id="e2e-2", chat_id="console-eve", sender_id="eve", sender_name="Eve",
                text=SECRET_QUESTION))
            return owner, stranger

    owner, stranger = asyncio.run(ask_both())
    assert owner.error is None and owner.mode == Mode.assistant
    assert owner.model == owner_adapter and "pumpernickel" in owner.text.lower()
    assert stranger.model == "base" and "pumpernickel" not in stranger.text.lower()
    logged = store.by_source(twin.id, CONSOLE, "e2e-1:reply")
    assert logged is not None and logged.raw["model"] == owner_adapter
