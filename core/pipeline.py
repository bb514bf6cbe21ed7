"""The one pipeline every inbound message flows through, from any platform or the console."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

from core.audience import AudienceResolver
from core.autoreply import DRAFT, Autoreply
from core.commands import BY_NAME, CommandCall, help_text, parse_command
from core.delivery import Deliveries, stored_reply
from core.drafts import Draft, Drafts
from core.forgetting import ForgetConversation
from core.indexer import BackgroundIndexer
from core.llm import LLMOutputError, LLMUnavailable
from core.locks import KeyedLocks
from core.messages import InboundMessage, Mode, Reply, clean_text
from core.respond import Answer, CommandHandler, Responder
from storage.deliveries import DeliveryLedger
from storage.items import NewItem, reply_source_id
from storage.memory import AddResult, MemoryStore
from storage.models import Audience, Direction, ItemKind, L0Item, Visibility
from storage.people import Speaker
from storage.state import StateStore

log = logging.getLogger(__name__)

TWIN_SENDER_ID = "twin:self"  # the account the twin's own replies are logged under
HISTORY_TURNS = 6
TRUST_ORDER = tuple(Audience)  # most trusted first
UNREACHABLE = "I can't reach my model right now. Your message is saved and {owner} will see it."
GARBLED = "My model gave an answer I could not use. Your message is saved; please try again."
EMPTY = "Your message was empty. Write something, or /help for what I can do."


class Pipeline:
    """dedupe + L0 -> speaker -> command or retrieval -> compose -> generate -> guard -> log reply."""

    def __init__(
        self, twin_id: int, owner_name: str, store: MemoryStore, audiences: AudienceResolver, responder: Responder,
        default_visibility: Visibility = Visibility.private, indexer: BackgroundIndexer | None = None,
        forgetting: ForgetConversation | None = None, autoreply: Autoreply | None = None,
        more_commands: dict[str, CommandHandler] | None = None, deliveries: Deliveries | None = None,
        drafts: Drafts | None = None,
    ) -> None:
        self.twin_id = twin_id
        self.owner_name = owner_name
        self.store = store
        self.audiences = audiences
        self.responder = responder
        self.default_visibility = default_visibility
        self.indexer = indexer  # None: index inline, before the reply
        self.forgetting = forgetting
        self.autoreply = autoreply or Autoreply(StateStore(store.engine), twin_id)
        self.deliveries = deliveries or Deliveries(DeliveryLedger(store.engine), store, twin_id)
        self.drafts = drafts or Drafts(StateStore(store.engine), store, twin_id, reply_source_id)
        self.command_handlers: dict[str, CommandHandler] = {
            "help": self._help, "status": self._status, "introduce": self._introduce, "ask": self._ask,
            "forget": self._forget, "autoreply": self._autoreply,
        } | (more_commands or {})  # e.g. the memory commands (core.memory_commands)
        self._chat_locks: KeyedLocks[tuple[str, str]] = KeyedLocks()  # one message answered at a time per chat
        self._store_turns: KeyedLocks[tuple[str, str]] = KeyedLocks()  # a chat's messages stored in arrival order
        self._answered_here: set[tuple[str, str]] = set()  # (platform, message id) answered by this process

    async def handle(self, message: InboundMessage) -> Reply | None:
        """The reply to a message; None when it was answered before (a redelivery) or is not to be answered."""
        message = replace(message, text=clean_text(message.text))
        async with self._chat_locks((message.platform, message.chat_id)):  # keeps order, stops double answers
            stored, receipt = await self._record(message)
            try:
                return await self._answer_recorded(message, stored, receipt)
            finally:
                if receipt is not None:  # the ledger row is written alongside the answer, and is in before it goes
                    await receipt

    async def _answer_recorded(
        self, message: InboundMessage, stored: L0Item | Reply | None, receipt: asyncio.Future | None
    ) -> Reply | None:
        if stored is None or isinstance(stored, Reply):
            return stored  # None: answered and delivered before; a Reply: answered, never delivered
        speaker = await asyncio.to_thread(
            self.audiences.identify, message.platform, message.sender_id, message.sender_name
        )
        verdict = await self.autoreply.decide(message, speaker, self.drafts.shown_on(message.platform))
        if verdict is None:
            if receipt is not None:
                await receipt  # the row must exist before it is marked skipped
            await self.deliveries.skipped(message)
            return None  # sent to the owner's own account while autoreply is off: kept in L0, left to them
        reply = await self.respond(message, stored, speaker)
        if verdict == DRAFT:  # logged with the reply, so a resend after a crash is a draft too
            reply = replace(reply, draft=True)
        if reply.error is None:
            if reply.draft:  # kept where forgetting reaches it, before the adapter shows it
                await self.drafts.propose(Draft(id=message.message_id, platform=message.platform, text=reply.text,
                                                asker=message.sender_name, question=message.text, item_id=stored.id))
            await self.log_reply(message, reply)  # the reply row marks "answered"; the ledger waits for delivery
            self._answered_here.add((message.platform, message.message_id))
        return reply

    async def accept(self, message: InboundMessage) -> None:
        """Store a message the moment it arrives, before it waits its turn in its chat: a platform that already
        considers it delivered (Telegram confirms a batch when it sends the next) cannot lose it in a crash."""
        await self.record(replace(message, text=clean_text(message.text)))

    async def delivered(self, message: InboundMessage) -> None:
        """The adapter got the reply onto the platform: the message is done."""
        await self.deliveries.delivered(message)
        self._answered_here.discard((message.platform, message.message_id))

    async def unfinished(self, platform: str) -> list[InboundMessage]:
        """What a crash left unanswered or undelivered on this platform, for the adapter to finish at start."""
        return await self.deliveries.unfinished(platform)

    async def edited(self, message: InboundMessage) -> bool:
        """An edit of a stored message: its L0 text and raw payload replaced, it and its neighbours re-indexed; no
        answer. False (nothing stored) when the message was never stored or was forgotten."""
        message = replace(message, text=clean_text(message.text))
        # After the chat's queued messages; the indexer paused, as for a forget, so no batch races the revision.
        paused = self.indexer.paused() if self.indexer else contextlib.nullcontext()
        async with self._chat_locks((message.platform, message.chat_id)), paused:
            row = await asyncio.to_thread(self.store.revise, self.twin_id, message.platform, message.message_id,
                                          message.text, message.raw)
        if row is None:
            log.info("ignoring an edit of %s/%s: not in memory", message.platform, message.message_id)
        return row is not None

    async def record(self, message: InboundMessage) -> L0Item | Reply | None:
        """Append the message to L0 (once). For a message seen before: None when it was answered and delivered,
        its logged reply when that never reached the platform, else the stored item (answer it now)."""
        stored, receipt = await self._record(message)
        if receipt is not None:
            await receipt
        return stored

    async def _record(self, message: InboundMessage) -> tuple[L0Item | Reply | None, asyncio.Future | None]:
        item = NewItem(
            source=message.platform, source_id=message.message_id, chat=message.chat_id, sender=message.sender_name,
            sender_id=message.sender_id, text=message.text, occurred_at=message.sent_at,
            chat_title=message.chat_title, raw=message.raw,
            # The owner's own words are outbound: L1 extraction grounds facts about the owner only in those.
            direction=Direction.outbound if self.audiences.is_owner(message.platform, message.sender_id) else None,
        )
        # Taken before the first await: the writes of a chat's messages (their L0 ids) follow their arrival.
        async with self._store_turns((message.platform, message.chat_id)):
            result = await self._add(item, self.default_visibility)
        if result.added:  # the ledger row is written on another thread while the answer is prepared
            return result.rows[0], asyncio.ensure_future(self.deliveries.received(message))
        answered = await asyncio.to_thread(
            self.store.by_source, self.twin_id, message.platform, reply_source_id(message.message_id)
        )
        if answered is not None:
            # Answered by an earlier process and never delivered: send that reply. Answered by this process:
            # the adapter that asked first is delivering it now, so a concurrent duplicate gets nothing.
            answered_here = (message.platform, message.message_id) in self._answered_here
            if not answered_here and await self.deliveries.awaits_delivery(message):
                log.info("sending the reply to %s/%s again: it was never delivered", message.platform,
                         message.message_id)
                return stored_reply(message, answered), None
            log.info("skipping %s/%s: answered before", message.platform, message.message_id)
            return None, None
        stored = await asyncio.to_thread(self.store.by_source, self.twin_id, message.platform, message.message_id)
        if stored is not None and stored.sender_name == message.sender_id != message.sender_name:
            stored = await self._name_follows(message) or stored
        return stored, None

    async def _name_follows(self, message: InboundMessage) -> L0Item | None:
        """A message stored under its sender's id, before the platform was asked who that is, takes the name."""
        row = await asyncio.to_thread(self.store.name_sender, self.twin_id, message.platform, message.message_id,
                                      message.sender_name)
        await asyncio.to_thread(self.audiences.people.name_account, self.twin_id, message.platform,
                                message.sender_id, message.sender_name)
        if row is not None:  # its index entry says who wrote it
            if self.indexer is None:
                await asyncio.to_thread(self.store.index_ids, [row.id])
            else:
                self.indexer.submit([row.id])
        return row

    async def respond(self, message: InboundMessage, stored: L0Item, speaker: Speaker) -> Reply:
        """Run the command or the conversation; model failures become a plain reply, not a crash."""
        try:
            answer = await self._answer(message, stored, speaker)
        except LLMUnavailable as error:
            log.warning("model unreachable for %s/%s: %s", message.platform, message.message_id, error)
            return self._reply(message, speaker, Answer(UNREACHABLE.format(owner=self.owner_name), Mode.command),
                               error=str(error))
        except LLMOutputError as error:
            log.warning("unusable model output for %s/%s: %s", message.platform, message.message_id, error)
            return self._reply(message, speaker, Answer(GARBLED, Mode.command), error=str(error))
        return self._reply(message, speaker, answer)

    async def _answer(self, message: InboundMessage, stored: L0Item, speaker: Speaker) -> Answer:
        if not message.text.strip():
            return Answer(EMPTY, Mode.command)
        call = parse_command(message.text)
        if call is not None:
            return await self.command(call, speaker, message)
        history = await asyncio.to_thread(
            self.store.recent_in_chat, self.twin_id, message.platform, message.chat_id, stored.id, HISTORY_TURNS
        )
        exclude = [stored.id, *(item.id for item in history)]
        return await self.responder.converse(speaker, message.text, history, exclude)

    async def command(self, call: CommandCall, speaker: Speaker, message: InboundMessage) -> Answer:
        """A slash command; those that change memory or the model are the owner's alone."""
        spec = BY_NAME.get(call.name)
        handler = self.command_handlers.get(call.name)
        if spec is None or handler is None:
            return Answer(f"I don't know /{call.name}. /help lists what I can do.", Mode.command)
        if spec.owner_only and speaker.trust != "owner":
            return Answer(f"Only {self.owner_name} can use /{spec.name}.", Mode.command)
        return await handler(call.args, speaker, message)

    async def _help(self, _args: str, speaker: Speaker, _message: InboundMessage) -> Answer:
        return Answer(help_text(self.owner_name, speaker.trust == "owner", set(self.command_handlers)), Mode.command)

    async def _forget(self, args: str, _speaker: Speaker, message: InboundMessage) -> Answer:
        if self.forgetting is None:
            return Answer("Forgetting is not set up in this deployment.", Mode.command)
        async with self.indexer.paused() if self.indexer else contextlib.nullcontext():
            text = await self.forgetting.handle(args, (message.platform, message.chat_id))
        await self.drafts.retract_forgotten()  # the owner's view of each forgotten draft says so
        return Answer(text, Mode.command)

    async def _autoreply(self, args: str, _speaker: Speaker, _message: InboundMessage) -> Answer:
        return await self.autoreply.command(args)

    async def _introduce(self, name: str, speaker: Speaker, _message: InboundMessage) -> Answer:
        """The owner introduced to NAME (or to the speaker); someone else only gets what they may see themself."""
        if not name:
            return await self.responder.introduce(speaker)
        target = await asyncio.to_thread(self.audiences.audience_of, name)
        if speaker.trust != "owner" and TRUST_ORDER.index(target.trust) < TRUST_ORDER.index(speaker.trust):
            target = Speaker(person_id=target.person_id, name=target.name, trust=speaker.trust)
        return await self.responder.introduce(target)

    async def _ask(self, args: str, _speaker: Speaker, _message: InboundMessage) -> Answer:
        name, _, request = args.partition(" ")
        if not self.responder.experts:
            return Answer("No expert is configured (TWIN_EXPERTS).", Mode.command)
        if name not in self.responder.experts or not request.strip():
            known = ", ".join(sorted(self.responder.experts))
            return Answer(f"Usage: /ask EXPERT QUESTION, with EXPERT one of: {known}.", Mode.command)
        return await self.responder.ask_expert(name, request.strip())

    async def _status(self, _args: str, speaker: Speaker, _message: InboundMessage) -> Answer:
        if speaker.trust != "owner":
            return Answer(f"I am {self.owner_name}'s twin, and I am up.", Mode.command)
        count = await asyncio.to_thread(self.store.count, self.twin_id)
        model = await self.responder.model_for("owner")
        experts = ", ".join(sorted(self.responder.experts)) or "none"
        return Answer(f"Up. Memory: {count} items. Model: {model}. Experts: {experts}.", Mode.command)

    def _reply(self, message: InboundMessage, speaker: Speaker, answer: Answer, error: str | None = None) -> Reply:
        return Reply(
            chat_id=message.chat_id, text=answer.text, mode=answer.mode, audience=speaker.trust,
            in_reply_to=message.message_id, model=answer.model, context_ids=answer.context_ids, error=error,
            details=answer.details,
        )

    async def log_reply(self, message: InboundMessage, reply: Reply) -> None:
        """Store the reply in L0 under a source id derived from the message: it marks the message answered."""
        item = NewItem(
            source=message.platform, source_id=reply_source_id(message.message_id), chat=message.chat_id,
            sender=f"{self.owner_name}'s twin", sender_id=TWIN_SENDER_ID, text=reply.text,
            occurred_at=datetime.now(UTC), chat_title=message.chat_title, kind=ItemKind.reply,
            direction=Direction.outbound, visibility=Visibility.private,
            raw={"in_reply_to": message.message_id, "mode": reply.mode, "audience": reply.audience,
                 "model": reply.model, "context_ids": list(reply.context_ids), **reply.details,
                 **({"draft": "pending"} if reply.draft else {})},
        )
        await self._add(item, Visibility.private)

    async def _add(self, item: NewItem, visibility: Visibility) -> AddResult:
        """Write the L0 row now; index it now, or hand it to the background indexer."""
        # Live messages are blocked by a tombstone of their own source id only: someone saying a forgotten
        # sentence again is new information, a re-imported export is not.
        add = partial(self.store.add, self.twin_id, [item], visibility, match_forgotten_text=False)
        if self.indexer is None:
            return await asyncio.to_thread(add)
        result = await asyncio.to_thread(add, index=False)
        self.indexer.submit(result.added_ids)
        return result
