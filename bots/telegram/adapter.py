"""The Telegram adapter: python-telegram-bot's Application fed to the core pipeline, replies sent back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

from telegram import Bot, BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bots.base import KeyedLocks, answer_and_send, recover
from bots.logs import redact_in_logs
from bots.ordering import stored_then_in_turn
from bots.telegram.inbound import (
    PLATFORM,
    BusinessConnection,
    EditedMessage,
    ReplyTarget,
    business_connection_of,
    reply_target,
    to_edit,
    to_inbound,
)
from bots.telegram.outbound import RetryPolicy, TelegramDeliveryError, send_reply, typing_while, with_retries
from core.audience import AudienceResolver
from core.commands import COMMANDS, CommandSpec
from core.delivery import DeliveryHooks
from core.messages import Handler, InboundMessage, Reply
from storage.state import StateStore

log = logging.getLogger(__name__)

Reviser = Callable[[InboundMessage], Awaitable[bool]]  # an edit into L0 (Pipeline.edited): False when not stored
ALLOWED_UPDATES = ("message", "edited_message", "business_connection", "business_message",
                   "edited_business_message")


@dataclass(frozen=True)
class TelegramOptions:
    """How the adapter receives updates and whom it shows the owner's command menu."""

    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None  # the public URL Telegram posts updates to
    webhook_secret: str | None = None  # Telegram sends it in X-Telegram-Bot-Api-Secret-Token
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    poll_timeout: int = 10  # seconds one getUpdates long poll waits
    owner_chat_ids: tuple[int, ...] = ()  # private chats that get the owner's command menu
    commands: tuple[CommandSpec, ...] = COMMANDS  # the menu: the commands this deployment handles
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def build_application(token: str, api_url: str, concurrency: int = 32) -> Application:
    """A PTB Application against the Bot API at `api_url` (official or self-hosted); many chats at once."""
    redact_in_logs(token)  # PTB and httpx log the API URLs, and they hold the token
    api = api_url.rstrip("/")
    return (
        ApplicationBuilder().token(token).base_url(f"{api}/bot").base_file_url(f"{api}/file/bot")
        .concurrent_updates(concurrency).job_queue(None).build()
    )


class BusinessConnections:
    """Telegram Business connections to the bot, remembered in the database across restarts."""

    def __init__(self, state: StateStore, twin_id: int) -> None:
        self.state = state
        self.twin_id = twin_id

    async def save(self, connection: BusinessConnection) -> None:
        """Remember a connection (or that it was disabled)."""
        await asyncio.to_thread(self.state.put, self.twin_id, PLATFORM, self._key(connection.id), asdict(connection))

    async def get(self, connection_id: str) -> BusinessConnection | None:
        """The connection, if it was seen."""
        value = await asyncio.to_thread(self.state.get, self.twin_id, PLATFORM, self._key(connection_id))
        return BusinessConnection(**value) if value else None

    @staticmethod
    def _key(connection_id: str) -> str:
        return f"business_connection:{connection_id}"


class TelegramAdapter:
    """Receives updates (long polling or a webhook), hands each to the pipeline, sends the reply back."""

    def __init__(self, application: Application, handle: Handler, connections: BusinessConnections,
                 audiences: AudienceResolver, options: TelegramOptions, ledger: DeliveryHooks | None = None,
                 revise: Reviser | None = None) -> None:
        self.application = application
        self.handle = handle
        self.revise = revise  # edits revise the stored message; without it they are ignored
        self.ledger = ledger  # marks replies delivered; hands back what a crash left unfinished
        self.connections = connections
        self.audiences = audiences
        self.options = options
        self.processed = 0  # updates fully handled, answered or not
        self._locks: KeyedLocks[str] = KeyedLocks()  # per chat (and business connection), in arrival order

    @property
    def bot(self) -> Bot:
        """The PTB bot: the Bot API client."""
        return self.application.bot

    async def __aenter__(self) -> TelegramAdapter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Log in (getMe), register the command menu, start receiving updates."""
        self.application.add_handler(TypeHandler(Update, self.on_update))
        self.application.add_error_handler(self._on_error)
        await self.application.initialize()
        await self.register_commands()
        await self.application.start()
        await self._receive()
        log.info("Telegram: @%s is up (%s)", self.bot.username, self.options.mode)
        await self.recover()

    async def health(self) -> str | None:
        """None while updates are received (polling or the webhook server), else what is wrong."""
        updater = self.application.updater
        if not self.application.running or updater is None or not updater.running:
            return f"not receiving updates ({self.options.mode} stopped)"
        return None

    async def recover(self) -> None:
        """Answer what a crash left received but unanswered, and send replies that were never delivered."""
        await recover(self.ledger, PLATFORM, self._finish)

    async def _finish(self, message: InboundMessage) -> None:
        if message.raw:
            await self.process({"update_id": 0, "business_message" if message.to_owner else "message": message.raw})

    async def stop(self) -> None:
        """Stop receiving, finish the updates in hand, close the HTTP client."""
        if self.application.updater and self.application.updater.running:
            await self.application.updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    async def _receive(self) -> None:
        updater = self.application.updater
        assert updater is not None  # built with the default updater
        if self.options.mode == "polling":
            await updater.start_polling(timeout=self.options.poll_timeout, allowed_updates=list(ALLOWED_UPDATES))
            return
        url = self.options.webhook_url or ""
        await updater.start_webhook(
            listen=self.options.webhook_listen, port=self.options.webhook_port,
            url_path=urlsplit(url).path.lstrip("/"), webhook_url=url, secret_token=self.options.webhook_secret,
            allowed_updates=list(ALLOWED_UPDATES),
        )

    async def register_commands(self) -> None:
        """setMyCommands: everyone's commands for all chats, every command in the owner's private chats."""
        public = [BotCommand(spec.name, spec.summary) for spec in self.options.commands if not spec.owner_only]
        everything = [BotCommand(spec.name, spec.summary) for spec in self.options.commands]
        calls = [lambda: self.bot.set_my_commands(public)]
        calls += [lambda chat=chat: self.bot.set_my_commands(everything, scope=BotCommandScopeChat(chat))
                  for chat in self.options.owner_chat_ids]
        for call in calls:
            try:
                await with_retries(call, self.options.retry)
            except TelegramDeliveryError as error:  # e.g. the owner never opened a chat with the bot
                log.warning("Telegram: the command menu was not registered: %s", error)

    async def on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """PTB's handler for every update."""
        try:
            await self.process(update.to_dict())
        finally:
            self.processed += 1

    async def process(self, payload: dict[str, Any]) -> None:
        """Track business connections; translate a message, run it through the pipeline, deliver the reply."""
        connection = business_connection_of(payload)
        if connection is not None:
            async with self._locks(f"connection:{connection.id}"):  # messages through it wait for the save
                await self.connections.save(connection)
            log.info("Telegram Business connection %s: %s", connection.id, "on" if connection.enabled else "off")
            return
        edit = to_edit(payload, self.bot.username)
        if edit is not None:
            await self._edited(edit, payload)
            return
        message = to_inbound(payload, self.bot.username)
        if message is None:
            return
        # Business messages are checked before anything is stored (below); others are stored while they wait.
        store = self.ledger.accept(message) if self.ledger is not None and not message.to_owner else _nothing()
        # Queued for the chat before the first await: answered, and the answers sent, in arrival order.
        async with stored_then_in_turn(self._locks(message.chat_id), store):
            if message.to_owner and not await self._owner_connected(payload["business_message"]):
                return
            target = reply_target(payload)
            assert target is not None  # to_inbound translates messages only, and every message has a chat
            # "typing…" while the answer is written; not in the owner's business chats, where it would show the
            # owner typing to someone the twin may not answer (autoreply off)
            async with typing_while(self.bot, target) if not message.to_owner else contextlib.nullcontext():
                await answer_and_send(self.handle, self.ledger, message, partial(self._send, target),
                                      (TelegramDeliveryError,), "Telegram")

    async def _send(self, target: ReplyTarget, reply: Reply) -> None:
        await send_reply(self.bot, target, reply.text, self.options.retry)

    async def send_text(self, chat_id: str, text: str) -> None:
        """A message the twin starts itself (a retrain's outcome) in a chat it talks in; TelegramDeliveryError if not
        sent (a business chat is the owner's, not the bot's: nothing is started there)."""
        if not chat_id.lstrip("-").isdigit():
            raise TelegramDeliveryError(f"the twin does not start messages in chat {chat_id}")
        await send_reply(self.bot, ReplyTarget(int(chat_id)), text, self.options.retry)

    async def _edited(self, edit: EditedMessage, payload: dict[str, Any]) -> None:
        """An edit: after the chat's earlier updates (the original is stored by then), the stored message revised.
        No reply; an edit of a message never stored (or forgotten) stores nothing."""
        message = edit.message
        async with stored_then_in_turn(self._locks(message.chat_id), _nothing()):
            if self.revise is None:
                return
            if message.to_owner and not await self._owner_connected(payload["edited_business_message"]):
                return
            if await self.revise(message):
                log.info("Telegram: %s was edited; memory revised", message.message_id)

    async def _owner_connected(self, message: dict[str, Any]) -> bool:
        """Whether a business message came through the owner's enabled connection (not someone else's)."""
        connection_id = str(message.get("business_connection_id", ""))
        async with self._locks(f"connection:{connection_id}"):
            connection = await self._connection(connection_id)
        if connection is None or not (connection.enabled and connection.can_reply):
            return False
        owners = await asyncio.to_thread(self.audiences.owns, PLATFORM, connection.user_id)
        if not owners:
            log.warning("Telegram: ignoring business messages of connection %s: not the owner's", connection.id)
        return owners

    async def _connection(self, connection_id: str) -> BusinessConnection | None:
        """A known connection, else asked of Telegram (the update announcing it may predate this process)."""
        known = await self.connections.get(connection_id)
        if known is not None or not connection_id:
            return known
        try:
            fetched = await with_retries(lambda: self.bot.get_business_connection(connection_id), self.options.retry)
        except TelegramDeliveryError as error:
            log.warning("Telegram: business connection %s unknown: %s", connection_id, error)
            return None
        connection = business_connection_of({"business_connection": fetched.to_dict()})
        if connection is not None:
            await self.connections.save(connection)
        return connection

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        if isinstance(error, TelegramError | OSError):
            log.warning("Telegram: %s: %s", type(error).__name__, error)
            return
        log.error("Telegram: an update failed", exc_info=error)


async def _nothing() -> None:
    """Nothing to store first."""
