"""The Matrix adapter: a matrix-nio AsyncClient as the twin's bot user, its sync loop fed to the core pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any

from nio import AsyncClient, InviteMemberEvent, MatrixRoom, MegolmEvent, RoomMessage, SyncResponse

from bots.base import KeyedLocks, answer_and_send, recover
from bots.matrix.client import Credentials, MatrixError, checked, close, log_in, send_text
from bots.matrix.inbound import PLATFORM, RoomContext, invite_accepted, to_inbound
from bots.ordering import stored_then_in_turn
from core.delivery import DeliveryHooks
from core.messages import Handler, InboundMessage, Reply
from storage.state import StateStore

log = logging.getLogger(__name__)
SYNC_TOKEN_KEY = "sync_token"
MAX_SYNC_BACKOFF = 60.0  # seconds between sync attempts while the homeserver keeps failing


@dataclass(frozen=True)
class MatrixOptions:
    """Whose invites are joined and how long one sync long-poll waits."""

    allowed_inviters: frozenset[str] = frozenset()
    sync_timeout_ms: int = 30_000


class SyncTokens:
    """Where the sync stream was last fully handled, kept in the database across restarts."""

    def __init__(self, state: StateStore, twin_id: int) -> None:
        self.state = state
        self.twin_id = twin_id

    async def load(self) -> str | None:
        """The saved token; None before the first start."""
        value = await asyncio.to_thread(self.state.get, self.twin_id, PLATFORM, SYNC_TOKEN_KEY)
        return str(value["next_batch"]) if value else None

    async def save(self, token: str) -> None:
        """Remember that everything up to this token was handled."""
        await asyncio.to_thread(self.state.put, self.twin_id, PLATFORM, SYNC_TOKEN_KEY, {"next_batch": token})


class MatrixAdapter:
    """Joins rooms allowed users invite it to, hands messages to the pipeline, sends the replies."""

    def __init__(self, client: AsyncClient, credentials: Credentials, handle: Handler, tokens: SyncTokens,
                 options: MatrixOptions, ledger: DeliveryHooks | None = None) -> None:
        self.client = client
        self.credentials = credentials
        self.handle = handle
        self.tokens = tokens
        self.options = options
        self.ledger = ledger  # marks replies delivered; hands back what a crash left unfinished
        self.processed = 0  # messages fully handled, answered or not
        self._batch: list[asyncio.Task[None]] = []  # work started by the sync being handled
        self._pending: set[asyncio.Task[None]] = set()
        self._checkpoint: asyncio.Task[None] | None = None
        self._locks: KeyedLocks[str] = KeyedLocks()  # per room, in arrival order
        self._sync_task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()  # nio knows the rooms (and their encryption) only after a sync
        self.sync_error: str | None = None  # the last sync's failure, until a sync succeeds again

    async def __aenter__(self) -> MatrixAdapter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Log in, catch up (once, unanswered, on the very first start), then sync in the background."""
        user_id = await log_in(self.client, self.credentials)
        await self._keep_keys()
        self.client.add_event_callback(self.on_invite, InviteMemberEvent)
        since = await self.tokens.load()
        if since is None:  # the first start: what was said before the twin existed is not for it
            since = await self._sync(None, timeout_ms=0)
            await self.tokens.save(since)
        self.client.add_event_callback(self.on_event, (RoomMessage, MegolmEvent))
        await self.recover()
        self._sync_task = asyncio.create_task(self._sync_forever(since), name="matrix-sync")
        log.info("Matrix: %s syncing with %s", user_id, self.credentials.homeserver)

    async def health(self) -> str | None:
        """None while the sync loop runs and its last sync worked, else what is wrong."""
        if self._sync_task is None or self._sync_task.done():
            return "not syncing"
        return f"sync failing: {self.sync_error}" if self.sync_error else None

    async def stop(self) -> None:
        """Stop syncing, let the answers under way finish, remember where the stream stands, close."""
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        if self._pending:
            await asyncio.wait(self._pending)
        if self._checkpoint is not None:
            await self._checkpoint
        await close(self.client)

    async def recover(self) -> None:
        """Answer what a crash left unanswered and send replies that were never delivered (the pipeline knows)."""
        await recover(self.ledger, PLATFORM, self._finish)

    async def _finish(self, message: InboundMessage) -> None:
        self._spawn(self.deliver(message))  # beside the sync loop, in its room's turn

    async def _sync(self, since: str | None, timeout_ms: int, full_state: bool = True) -> str:
        """One sync (nio runs the callbacks in it); the next batch token."""
        response: SyncResponse = await checked(self.client.sync(timeout=timeout_ms, since=since,
                                                                full_state=full_state))
        self._synced.set()
        return str(response.next_batch)

    async def _sync_forever(self, since: str) -> None:
        """Long-poll the homeserver; each batch's token is saved once the batch's messages are handled."""
        first, failures = True, 0
        while True:
            try:
                since = await self._sync(since, self.options.sync_timeout_ms, full_state=first)
            except MatrixError as error:
                failures += 1
                self.sync_error = str(error)
                log.warning("Matrix: sync failed (%s); retrying", error)
                await asyncio.sleep(min(MAX_SYNC_BACKOFF, 2.0 ** failures))
                continue
            first, failures, self.sync_error = False, 0, None
            self._checkpoint_after(since)
            await self._keep_keys()

    def _checkpoint_after(self, token: str) -> None:
        """Save the token once this batch's work (and every earlier batch's) is done: a crash re-delivers it."""
        batch, self._batch, previous = self._batch, [], self._checkpoint

        async def save() -> None:
            if previous is not None:
                await previous
            await asyncio.gather(*batch, return_exceptions=True)
            await self.tokens.save(token)

        self._checkpoint = asyncio.create_task(save())

    async def _keep_keys(self) -> None:
        """Encryption upkeep between syncs: upload, query and claim keys, flush to-device messages."""
        client = self.client
        try:
            if client.should_upload_keys:
                await checked(client.keys_upload())
            if client.should_query_keys:
                await checked(client.keys_query())
            if client.should_claim_keys:
                await checked(client.keys_claim(client.get_users_for_key_claiming()))
            if client.olm is not None:
                await client.send_to_device_messages()
        except MatrixError as error:
            log.warning("Matrix: key upkeep failed (%s); trying again after the next sync", error)

    async def on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        """An invite to the twin: joined when an allowed user sent it, else rejected."""
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        self._spawn(self._answer_invite(room.room_id, event.sender))

    async def _answer_invite(self, room_id: str, inviter: str) -> None:
        try:
            if invite_accepted(inviter, self.options.allowed_inviters):
                await checked(self.client.join(room_id))
                log.info("Matrix: joined %s (invited by %s)", room_id, inviter)
            else:
                await checked(self.client.room_leave(room_id))
                log.info("Matrix: rejected the invite to %s from %s (not an allowed inviter)", room_id, inviter)
        except MatrixError as error:
            log.error("Matrix: the invite to %s could not be answered: %s", room_id, error)

    async def on_event(self, room: MatrixRoom, event: RoomMessage | MegolmEvent) -> None:
        """A timeline message (decrypted when it was encrypted): translated, and answered in the background."""
        if isinstance(event, MegolmEvent) and event.sender != self.client.user_id:
            log.warning("Matrix: could not decrypt %s in %s (session %s)", event.event_id, room.room_id,
                        event.session_id)
        message = to_inbound(event.source, self.context(room, event.sender))
        if message is not None:
            self._spawn(self.deliver(message))

    def context(self, room: MatrixRoom, sender: str) -> RoomContext:
        """The room as the translation needs it."""
        me = self.client.user_id
        return RoomContext(room_id=room.room_id, members=room.member_count, bot_user_id=me,
                           bot_name=room.user_name(me), sender_name=room.user_name(sender),
                           room_name=room.display_name)

    async def send_text(self, chat_id: str, text: str) -> None:
        """A message the twin starts itself (a retrain's outcome) in a room; MatrixError if not sent."""
        await send_text(self.client, chat_id, text)

    async def deliver(self, message: InboundMessage) -> None:
        """Run the message through the pipeline and send the answer; a chat's answers go out in order."""
        try:
            # Queued for the room at once and stored while it waits, like on every platform.
            async with stored_then_in_turn(self._locks(message.chat_id), self._stored(message)):
                await answer_and_send(self.handle, self.ledger, message, partial(self._send, message),
                                      (MatrixError,), "Matrix")
        finally:
            self.processed += 1

    async def _send(self, message: InboundMessage, reply: Reply) -> None:
        direct = bool((message.raw or {}).get("direct"))
        await self._synced.wait()  # a reply recovered at start waits for the rooms, first in its room's turn
        await send_text(self.client, message.chat_id, reply.text, reply_to=None if direct else message.message_id,
                        answering=message.message_id)

    async def _stored(self, message: InboundMessage) -> None:
        if self.ledger is not None:
            await self.ledger.accept(message)

    def _spawn(self, work: Awaitable[Any]) -> None:
        """Run the work beside the sync loop; the current batch's checkpoint waits for it."""
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._batch.append(task)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        task.add_done_callback(_report_failure)


def _report_failure(task: asyncio.Task[None]) -> None:
    """An answer or invite that failed unexpectedly is logged, not lost with its task."""
    if not task.cancelled() and task.exception() is not None:
        log.error("Matrix: %s failed", task.get_name(), exc_info=task.exception())
