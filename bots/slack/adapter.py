"""The Slack adapter: slack-bolt's AsyncApp (Events API over HTTP, or Socket Mode) fed to the core pipeline."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bots.base import KeyedLocks, answer_and_send, recover
from bots.ordering import stored_then_in_turn
from bots.slack.drafts import (
    APPROVE,
    DISCARD,
    EDIT,
    EDIT_VIEW,
    decided_blocks,
    draft_blocks,
    edit_view,
    edited_text,
    forgotten_blocks,
    target_of,
)
from bots.slack.inbound import PLATFORM, ReplyTarget, command_to_inbound, reply_target, to_inbound
from bots.slack.outbound import MESSAGE_LIMIT, SlackDeliveryError, call, marked, post, reply_metadata
from bots.slack.recovery import answer_privately, parts_in_slack, post_once
from bots.text import split_text
from core.audience import AudienceResolver
from core.delivery import DeliveryHooks
from core.drafts import Draft, Drafts, Status
from core.messages import Handler, InboundMessage, Reply

log = logging.getLogger(__name__)
EVERY_EVENT = re.compile(r".*")  # to_inbound's table decides what is answered; bolt must not 404 the rest


@dataclass(frozen=True)
class SlackOptions:
    """Who the owner is, where the Events API endpoint listens, and whether Socket Mode is used instead."""

    owner_name: str
    owner_user_ids: frozenset[str] = frozenset()
    host: str = "127.0.0.1"
    port: int = 3000
    path: str = "/slack/events"
    app_token: str | None = None  # xapp-...: Socket Mode instead of an HTTP endpoint
    command: str = "/twin"  # the one slash command; `/twin help`, `/twin remember ...`


def build_app(client: AsyncWebClient, signing_secret: str | None) -> AsyncApp:
    """A bolt AsyncApp on this Web API client; it verifies request signatures with the signing secret."""
    return AsyncApp(client=client, signing_secret=signing_secret or "", process_before_response=False)


class SlackAdapter:
    """Receives events, slash commands and draft buttons; hands messages to the pipeline; posts the replies."""

    def __init__(self, app: AsyncApp, handle: Handler, drafts: Drafts, audiences: AudienceResolver,
                 options: SlackOptions, ledger: DeliveryHooks | None = None) -> None:
        self.app = app
        self.audiences = audiences  # who the owner is (core.audience): who may decide drafts
        self.handle = handle
        self.ledger = ledger  # stores messages on arrival, marks replies delivered, hands back unfinished work
        self.drafts = drafts  # the core keeps and decides them; this adapter shows them to the owner
        self.options = options
        self.processed = 0  # events fully handled, answered or not
        self._names: dict[str, str] = {}
        self._locks: KeyedLocks[str] = KeyedLocks()  # per channel, in arrival order
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._register()

    @property
    def shows_drafts(self) -> bool:
        """Drafts need the owner's Slack id (TWIN_OWNER_IDS): their DM is where drafts are shown."""
        return bool(self.options.owner_user_ids)

    @property
    def client(self) -> AsyncWebClient:
        """The Web API client."""
        return self.app.client

    @property
    def url(self) -> str:
        """The Events API endpoint (Event Subscriptions, Interactivity and the slash command all post here)."""
        return f"http://{self.options.host}:{self.options.port}{self.options.path}"

    async def __aenter__(self) -> SlackAdapter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _register(self) -> None:
        self.app.event(EVERY_EVENT)(self.on_event)
        self.app.command(self.options.command)(self.on_command)
        self.app.action(APPROVE)(self.on_approve)
        self.app.action(EDIT)(self.on_edit)
        self.app.action(DISCARD)(self.on_discard)
        self.app.view(EDIT_VIEW)(self.on_edit_submitted)

    async def start(self) -> None:
        """Connect over Socket Mode when an app token is set, else serve the Events API endpoint."""
        if self.options.app_token:
            self._socket = AsyncSocketModeHandler(self.app, self.options.app_token)
            await self._socket.connect_async()
            log.info("Slack: connected over Socket Mode")
            await self.recover()
            return
        server = web.Application()
        server.router.add_post(self.options.path, self.on_http)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.options.host, self.options.port).start()
        log.info("Slack: Events API endpoint at %s", self.url)
        await self.recover()

    async def health(self) -> str | None:
        """None while events can arrive (Socket Mode connected, or the endpoint served), else what is wrong."""
        if self._socket is not None:
            return None if await self._socket.client.is_connected() else "Socket Mode is not connected"
        return None if self._runner is not None else "the Events API endpoint is not served"

    async def stop(self) -> None:
        """Stop receiving; close the connection or the server."""
        if self._socket is not None:
            await self._socket.close_async()
        if self._runner is not None:
            await self._runner.cleanup()

    async def on_http(self, request: web.Request) -> web.Response:
        """One Events API request: bolt verifies its signature (401 otherwise), acks and dispatches it."""
        return await to_aiohttp_response(await self.app.async_dispatch(await to_bolt_request(request)))

    async def on_event(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """Every event (retries included: the pipeline answers a message once)."""
        try:
            message = to_inbound(body, context.bot_user_id or "", self.options.owner_user_ids)
            if message is not None:
                await self.deliver(message)
        finally:
            self.processed += 1

    async def recover(self) -> None:
        """Answer what a crash left received but unanswered, and post replies that were never delivered."""
        await recover(self.ledger, PLATFORM, self._finish)

    async def _finish(self, message: InboundMessage) -> None:
        if "command" in (message.raw or {}):
            await self.answer_command_later(message)
        else:
            await self.deliver(message)

    async def deliver(self, message: InboundMessage) -> None:
        """Run the message through the pipeline and post the answer: directly, marked, or as a draft."""
        # Queued for the chat before the first await (answers go out in arrival order) and stored while it waits,
        # before Slack is asked who wrote it: Slack got its 200 already, a crash during the lookup cannot lose it.
        async with stored_then_in_turn(self._locks(message.chat_id), self._stored(message)):
            message = await self._named(message)  # the pipeline gives the stored row the name
            await answer_and_send(self.handle, self.ledger, message, partial(self._send, message),
                                  (SlackDeliveryError,), "Slack")

    async def send_text(self, chat_id: str, text: str) -> None:
        """A message the twin starts itself (a retrain's outcome) in a channel or DM; SlackDeliveryError if not."""
        await post(self.client, ReplyTarget(chat_id), text)

    async def _send(self, message: InboundMessage, reply: Reply) -> None:
        target = reply_target(message)
        if reply.draft:  # decided with the answer: the switch may have moved since
            await self._propose(message, target, reply)
        else:
            await self._post_reply(message, target, reply)

    async def _stored(self, message: InboundMessage) -> None:
        """Store the message as it came (its sender's name follows once known)."""
        if self.ledger is not None:
            await self.ledger.accept(message)

    async def _post_reply(self, message: InboundMessage, target: ReplyTarget, reply: Reply) -> None:
        await post_once(self.client, target, self._outgoing(message, reply.text), message.message_id,
                        message.sent_at, resent=reply.resent)

    async def answer_command_later(self, message: InboundMessage) -> None:
        """A slash command a crash left unanswered: its response_url died with that process, so the answer goes to
        the person privately (recovery.answer_privately)."""
        async def privately(reply: Reply) -> None:
            await answer_privately(self.client, message.chat_id, message.sender_id, reply.text, message.message_id,
                                   message.sent_at)

        await answer_and_send(self.handle, self.ledger, message, privately, (SlackDeliveryError,), "Slack")

    def _outgoing(self, message: InboundMessage, text: str) -> str:
        return marked(text, self.options.owner_name) if message.to_owner else text

    async def _named(self, message: InboundMessage) -> InboundMessage:
        """The message with its sender's display name (users.info, cached); the id if Slack does not say."""
        if message.sender_name != message.sender_id:
            return message
        if message.sender_id not in self._names:
            try:
                user = (await call(self.client.users_info(user=message.sender_id))).get("user") or {}
            except SlackDeliveryError as error:
                log.warning("Slack: no name for %s: %s", message.sender_id, error)
                return message
            profile = user.get("profile") or {}
            self._names[message.sender_id] = str(user.get("real_name") or profile.get("display_name")
                                                 or message.sender_id)
        return replace(message, sender_name=self._names[message.sender_id])

    async def _propose(self, message: InboundMessage, target: ReplyTarget, reply: Reply) -> None:
        """Draft mode: the answer goes to the owner's DM with Approve / Edit / Discard, not to the asker."""
        if not self.shows_drafts:  # a draft logged by a process that knew the owner's Slack id
            log.warning("Slack: a draft for %s, but no owner Slack id to show it to", message.message_id)
            return
        owner = min(self.options.owner_user_ids)
        draft = await self.drafts.get(PLATFORM, message.message_id)
        if draft is None or draft.status != "pending":
            log.info("Slack: the draft answering %s was forgotten or decided meanwhile", message.message_id)
            return
        if reply.resent and await parts_in_slack(
                self.client, ReplyTarget(channel=owner), message.message_id, message.sent_at):
            log.info("Slack: the draft answering %s reached the owner before the restart", message.message_id)
            return
        await self.drafts.place(PLATFORM, draft.id, {"channel": target.channel, "thread_ts": target.thread_ts})
        posted = await call(self.client.chat_postMessage(channel=owner, blocks=draft_blocks(draft),
                                                         text=f"Draft answer to {draft.asker}",
                                                         metadata=reply_metadata(message.message_id, 0)))
        await self.drafts.place(PLATFORM, draft.id, {"dm_channel": posted.get("channel"), "dm_ts": posted.get("ts")})

    async def retract(self, draft: Draft) -> None:
        """A forgotten draft: its DM says so, and holds no word of it."""
        if draft.where.get("dm_channel") and draft.where.get("dm_ts"):
            await call(self.client.chat_update(channel=draft.where["dm_channel"], ts=draft.where["dm_ts"],
                                               blocks=forgotten_blocks(), text="Draft forgotten"))

    async def on_approve(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Approve: the draft goes to the original channel or thread, marked as the twin's."""
        await ack()
        await self.decide(body["user"]["id"], action["value"], "sent")

    async def on_discard(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Discard: nothing is posted."""
        await ack()
        await self.decide(body["user"]["id"], action["value"], "discarded")

    async def on_edit(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Edit: a modal with the draft in a text box opens; submitting it sends the edited text."""
        await ack()
        draft = await self.drafts.get(PLATFORM, action["value"])
        if draft is None or draft.status != "pending" or not await self._is_owner(body["user"]["id"]):
            return
        try:
            await call(self.client.views_open(trigger_id=body["trigger_id"], view=edit_view(draft)))
        except SlackDeliveryError as error:
            log.error("Slack: the edit box for draft %s did not open: %s", draft.id, error)

    async def on_edit_submitted(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        """The edit modal submitted: the owner's text is sent instead of the draft."""
        await ack()
        await self.decide(body["user"]["id"], view["private_metadata"], "sent", edited_text(view))

    async def decide(self, user_id: str, draft_id: str, status: Status, text: str | None = None) -> None:
        """The owner's decision on a pending draft (the core takes it once, however often the buttons are clicked;
        a forgotten draft is no longer there, and nothing is sent)."""
        if not await self._is_owner(user_id):
            log.warning("Slack: %s is not the owner and cannot decide drafts", user_id)
            return
        try:
            draft = await self.drafts.decide(PLATFORM, draft_id, status, text, self._send_approved)
            if draft is not None and draft.where.get("dm_channel") and draft.where.get("dm_ts"):
                await call(self.client.chat_update(channel=draft.where["dm_channel"], ts=draft.where["dm_ts"],
                                                   blocks=decided_blocks(draft), text=f"Draft {draft.status}"))
        except SlackDeliveryError as error:
            log.error("Slack: draft %s: %s", draft_id, error)

    async def _send_approved(self, draft: Draft, text: str) -> None:
        await post(self.client, target_of(draft), marked(text, self.options.owner_name))

    async def on_command(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """`/twin ...`: acked at once, then like a message (stored on arrival, run in its turn in the channel) as the
        core command, answered only to the person who typed it."""
        await ack()
        message = command_to_inbound(body)

        async def ephemerally(reply: Reply) -> None:
            for part in split_text(reply.text, MESSAGE_LIMIT):
                await respond(text=part, response_type="ephemeral")

        async with stored_then_in_turn(self._locks(message.chat_id), self._stored(message)):
            await answer_and_send(self.handle, self.ledger, await self._named(message), ephemerally,
                                  (SlackDeliveryError,), "Slack")

    async def _is_owner(self, user_id: str) -> bool:
        return await asyncio.to_thread(self.audiences.owns, PLATFORM, user_id)
