"""The chat platforms of `twin run`: which are configured, each built from settings, all run on one asyncio loop
with the pipeline until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Protocol

from twin.platform_matrix import build_matrix
from twin.platform_slack import build_slack
from twin.settings import Settings

if TYPE_CHECKING:  # the CLI imports this module; the pipeline is built only when platforms run
    from core.pipeline import Pipeline
    from core.training_commands import Notify
    from twin.app import TwinApp

log = logging.getLogger(__name__)
Adapter = AbstractAsyncContextManager[object]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def configured_platforms(settings: Settings) -> list[str]:
    """The platforms with credentials in the settings, in start order."""
    configured = (("telegram", settings.telegram_token is not None), ("slack", settings.slack_bot_token is not None),
                  ("matrix", settings.matrix_homeserver is not None))
    return [name for name, is_set in configured if is_set]


def telegram_owner_chats(owner_ids: list[str]) -> tuple[int, ...]:
    """The owner's Telegram user ids (their private chat ids) among settings' owner ids."""
    chats = []
    for entry in owner_ids:
        platform, _, account = entry.rpartition(":")
        if platform in ("telegram", "") and account.lstrip("-").isdigit():
            chats.append(int(account))
    return tuple(chats)


def build_telegram(settings: Settings, app: TwinApp, pipeline: Pipeline) -> Adapter:
    """The Telegram adapter for these settings, feeding this pipeline."""
    from bots.telegram import BusinessConnections, TelegramAdapter, TelegramOptions, build_application
    from core.commands import COMMANDS
    from storage.state import StateStore

    assert settings.telegram_token is not None
    secret = settings.telegram_webhook_secret
    options = TelegramOptions(
        mode=settings.telegram_mode, webhook_url=settings.telegram_webhook_url,
        webhook_secret=secret.get_secret_value() if secret else None,
        webhook_listen=settings.telegram_webhook_listen, webhook_port=settings.telegram_webhook_port,
        owner_chat_ids=telegram_owner_chats(settings.owner_ids),
        commands=tuple(spec for spec in COMMANDS if spec.name in pipeline.command_handlers),
    )
    application = build_application(settings.telegram_token.get_secret_value(), settings.telegram_api_url)
    connections = BusinessConnections(StateStore(app.store.engine), app.twin.id)
    return TelegramAdapter(application, pipeline.handle, connections, pipeline.audiences, options, ledger=pipeline,
                           revise=pipeline.edited)


class StartsMessages(Protocol):
    async def send_text(self, chat_id: str, text: str) -> None: ...


def platform_notify(adapters: dict[str, object]) -> Notify:
    """Messages the twin starts itself (a retrain's outcome), sent through the running adapter of the platform."""
    async def notify(platform: str, chat_id: str, text: str) -> None:
        adapter = adapters.get(platform)
        if adapter is None:
            raise LookupError(f"{platform} is not running: {chat_id} cannot be told")
        sender: StartsMessages = adapter  # type: ignore[assignment] - every adapter has send_text
        await sender.send_text(chat_id, text)

    return notify


BUILDERS: dict[str, Callable[[Settings, TwinApp, Pipeline], Adapter]] = {
    "telegram": build_telegram, "slack": build_slack, "matrix": build_matrix,
}


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """The twin on every configured platform, with its background jobs, until `stop` is set; closed in reverse.
    Refuses to start (StartupRefused) when the serving adapters were trained on another base model."""
    from twin.app import open_twin
    from twin.conversation import model_server
    from twin.startup import check_after_open

    with open_twin(settings) as app:
        check_after_open(app)
        with model_server(settings) as url:
            await _serve(app, url, stop)


async def _serve(app: TwinApp, url: str, stop: asyncio.Event) -> None:
    from twin.conversation import open_pipeline
    from twin.health import serve_health
    from twin.l2 import retrain_runner
    from twin.scheduler import background_jobs

    settings = app.settings
    async with open_pipeline(app, url) as pipeline, AsyncExitStack() as running:
        adapters: dict[str, object] = {}  # filled below; the retrain job tells the chats that asked through them
        await running.enter_async_context(background_jobs(app, pipeline.responder.llm,
                                                           retrainer=retrain_runner(app, platform_notify(adapters))))
        platforms = configured_platforms(settings)
        for name in platforms:
            adapters[name] = await running.enter_async_context(BUILDERS[name](settings, app, pipeline))
        await running.enter_async_context(serve_health(app, url, adapters))
        log.info("the twin of %s is running on %s", app.twin.display_name, ", ".join(platforms))
        await stop.wait()
        log.info("stopping")


async def serve_until_signalled(settings: Settings) -> None:
    """`serve` with SIGINT and SIGTERM setting the stop event."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(settings, stop)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def run_platforms(settings: Settings) -> None:
    """Run the configured platforms in the foreground, logging to stderr (no conversation there) and the log file."""
    from twin.logs import log_to_terminal

    log_to_terminal()
    asyncio.run(serve_until_signalled(settings))
