"""Telegram end to end: the real python-telegram-bot Application, built as `twin run` builds it, against a Bot API
test server over HTTP (polling and webhook), with the real pipeline and a model that answers with its prompt."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from support import free_port
from telegram_server import ADA, EVE, MALLORY, TOKEN, BotAPIServer, business, connection, private

from bots.telegram import TelegramAdapter, to_inbound
from core.autoreply import SAID
from core.commands import COMMANDS
from storage.deliveries import DeliveryLedger
from storage.memory import MemoryStore
from storage.models import Twin
from storage.search import HybridSearcher, SearchScope
from twin.app import TwinApp
from twin.conversation import open_pipeline
from twin.platforms import build_telegram
from twin.settings import Settings
from twin.testing import RecordingLLM

FIXTURES = Path(__file__).parent / "fixtures" / "telegram_updates"
ASSISTANT = "personal assistant"  # in the owner's system prompt only
ON_BEHALF = "on Ada's behalf"  # in the system prompt for everyone else
SQLITE = pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the pipeline's backends are tested elsewhere
T = TypeVar("T")


def fixture(name: str) -> dict[str, Any]:
    """A captured update, without its update_id (the server numbers updates in the order they are pushed)."""
    update = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return {key: value for key, value in update.items() if key != "update_id"}





def settings_for(bot_api: BotAPIServer, llm: RecordingLLM, **overrides: Any) -> Settings:
    values = {"owner_name": "Ada", "owner_ids": ["telegram:111111"], "llm_url": llm.url, "llm_retries": 1,
              "telegram_token": TOKEN, "telegram_api_url": bot_api.url} | overrides
    return Settings(**values)


@pytest.fixture
def twin_app(store: MemoryStore, twin: Twin, bot_api: BotAPIServer, llm: RecordingLLM) -> TwinApp:
    return TwinApp(settings=settings_for(bot_api, llm), store=store, searcher=HybridSearcher(store), twin=twin)


@asynccontextmanager
async def running(app: TwinApp) -> AsyncIterator[TelegramAdapter]:
    """The twin on Telegram, built by the composition root as `twin run` builds it."""
    async with AsyncExitStack() as stack:
        pipeline = await stack.enter_async_context(open_pipeline(app, app.settings.llm_url))
        yield await stack.enter_async_context(build_telegram(app.settings, app, pipeline))


def run_twin(app: TwinApp, scenario: Callable[[TelegramAdapter], Awaitable[T]]) -> T:
    async def go() -> T:
        async with running(app) as adapter:
            return await scenario(adapter)

    return asyncio.run(go())


async def processed(bot_api: BotAPIServer, adapter: TelegramAdapter, count: int) -> None:
    await bot_api.wait_for(lambda: adapter.processed >= count)


@SQLITE
def test_polling_answers_the_owner_as_assistant_and_others_on_their_behalf(
    twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # a CLI test in this process may have quieted it (twin.logs)
    from_eve = private("is Ada around on Friday?", EVE)

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        bot_api.push(private("what is on my plate this week?", ADA))
        bot_api.push(from_eve)
        return await bot_api.wait_sent(2)

    replies = {sent["chat_id"]: sent["text"] for sent in run_twin(twin_app, scenario)}
    assert ASSISTANT in replies[111111] and ON_BEHALF not in replies[111111]
    assert ON_BEHALF in replies[222222] and ASSISTANT not in replies[222222]
    assert "is Ada around on Friday?" in replies[222222]  # the recording model answered with its prompt
    stored = twin_app.store.by_source(twin_app.twin.id, "telegram", f"222222:{from_eve['message']['message_id']}")
    assert stored is not None and stored.text == "is Ada around on Friday?"
    assert bot_api.called("deleteWebhook"), "polling starts by removing any webhook"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request" in logged and "<token>" in logged  # the client did log its requests, redacted
    assert TOKEN not in logged and TOKEN.split(":")[1] not in logged


@SQLITE
def test_many_new_people_at_once_each_get_one_reply(twin_app: TwinApp, bot_api: BotAPIServer) -> None:
    people = [{"id": 500000 + n, "is_bot": False, "first_name": f"Guest{n}"} for n in range(8)]

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        for person in people:  # one getUpdates batch; the adapter handles the chats in parallel
            bot_api.push(private(f"hello from guest {person['id']}", person))
        await processed(bot_api, adapter, len(people))
        return bot_api.sent()

    sent = run_twin(twin_app, scenario)
    assert sorted(message["chat_id"] for message in sent) == [person["id"] for person in people]
    assert all(f"hello from guest {message['chat_id']}" in message["text"] for message in sent)


@SQLITE
def test_commands_menu_is_registered_and_help_shows_each_speaker_their_commands(
    twin_app: TwinApp, bot_api: BotAPIServer
) -> None:
    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        bot_api.push(private("/help", EVE))
        first = await bot_api.wait_sent(1)
        bot_api.push(private("/help", ADA))
        return [first[0], (await bot_api.wait_sent(2))[1]]

    eve_help, ada_help = run_twin(twin_app, scenario)
    menus = {json.dumps(call.get("scope"), sort_keys=True): [c["command"] for c in call["commands"]]
             for call in bot_api.called("setMyCommands")}
    owner_menu = menus[json.dumps({"chat_id": 111111, "type": "chat"})]
    assert {"help", "status", "introduce"} <= set(menus["null"])
    assert not {"ask", "autoreply"} & set(menus["null"])  # the owner's commands are in the owner's menu only
    assert {"help", "status", "introduce", "ask", "autoreply"} <= set(owner_menu)
    assert set(owner_menu) <= {spec.name for spec in COMMANDS}
    assert "/introduce" in eve_help["text"] and "/autoreply" not in eve_help["text"]
    assert "/autoreply on|off" in ada_help["text"]


@SQLITE
def test_in_groups_only_what_is_addressed_to_the_bot_is_answered(
    twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM
) -> None:
    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        for name in ("group_without_mention", "group_command_to_other_bot", "group_mention"):
            bot_api.push(fixture(name))
        await processed(bot_api, adapter, 3)
        return bot_api.sent()

    [answer] = run_twin(twin_app, scenario)
    assert answer["chat_id"] == -1001234567890 and answer["reply_parameters"]["message_id"] == 501
    [request] = llm.requests
    assert request["messages"][-1] == {"role": "user", "content": "what does Ada work on?"}


@SQLITE
def test_a_redelivered_update_is_answered_once_also_after_a_restart(
    twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM
) -> None:
    update = bot_api.push(private("hello twin", EVE))
    bot_api.push(update)  # the same update twice, as after a lost confirmation

    async def first(adapter: TelegramAdapter) -> None:
        await processed(bot_api, adapter, 2)

    async def after_restart(adapter: TelegramAdapter) -> None:
        bot_api.push(update)
        await processed(bot_api, adapter, 1)

    run_twin(twin_app, first)
    run_twin(twin_app, after_restart)
    assert len(bot_api.sent()) == 1 and len(llm.requests) == 1
    assert twin_app.store.count(twin_app.twin.id) == 2  # the message and the reply


@SQLITE
def test_a_5000_character_reply_arrives_as_two_messages(
    twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM
) -> None:
    paragraphs = [f"Part {i}. " + " ".join(f"Ada likes reef diving and slow morning number {i}-{j}."
                                           for j in range(12)) for i in range(10)]  # no repeats: the guard drops those
    long_answer = "\n\n".join(paragraphs)
    assert 4096 < len(long_answer) <= 8192
    llm.script.append(long_answer)

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        bot_api.push(private("tell me everything", ADA))
        return await bot_api.wait_sent(2)

    first, second = run_twin(twin_app, scenario)
    assert first["text"] + "\n\n" + second["text"] == long_answer
    assert second["text"].startswith("Part ")


@SQLITE
def test_a_429_and_a_502_are_retried_until_the_message_goes_through(
    twin_app: TwinApp, bot_api: BotAPIServer
) -> None:
    bot_api.fail_next("sendMessage", 429, retry_after=1)
    bot_api.fail_next("sendMessage", 502, retry_after=None)

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        bot_api.push(private("are you there?", EVE))
        return await bot_api.wait_sent(1)

    [sent] = run_twin(twin_app, scenario)
    statuses = [call.status for call in bot_api.calls if call.method == "sendMessage"]
    assert statuses == [429, 502, 200]
    assert "are you there?" in sent["text"]


@SQLITE
def test_business_messages_are_answered_for_the_owner_only_while_autoreply_is_on(
    twin_app: TwinApp, bot_api: BotAPIServer
) -> None:
    unanswered = business("Hello?", EVE)

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        bot_api.push({"business_connection": connection(ADA)})
        bot_api.push(business("Are you coming tonight?", EVE))
        await processed(bot_api, adapter, 2)
        assert bot_api.sent() == []  # autoreply is off by default
        bot_api.push(private("/autoreply on", ADA))
        await bot_api.wait_sent(1)
        bot_api.push(business("What time should I be there?", EVE))
        bot_api.push(business("See you at eight", ADA))  # the owner in their own chat: not a question
        await processed(bot_api, adapter, 5)
        await bot_api.wait_sent(2)
        bot_api.push(private("/autoreply off", ADA))
        await bot_api.wait_sent(3)
        bot_api.push(unanswered)
        await processed(bot_api, adapter, 7)
        return bot_api.sent()

    switched_on, on_behalf, switched_off = run_twin(twin_app, scenario)
    assert switched_on["text"] == SAID["on"] and switched_off["text"] == SAID["off"]
    assert on_behalf["business_connection_id"] == "BCabc123" and on_behalf["chat_id"] == 222222
    assert ON_BEHALF in on_behalf["text"] and "What time should I be there?" in on_behalf["text"]
    source_id = f"business:222222:{unanswered['business_message']['message_id']}"
    kept = twin_app.store.by_source(twin_app.twin.id, "telegram", source_id)
    assert kept is not None and kept.text == "Hello?"  # unanswered, but in memory


@SQLITE
def test_business_messages_through_others_or_disabled_connections_are_ignored(
    twin_app: TwinApp, bot_api: BotAPIServer
) -> None:
    bot_api.business_connections["BClate"] = connection(ADA, "BClate")  # announced before the twin started
    via_mallory = business("through Mallory's account", EVE, "BCmallory")

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        bot_api.push(private("/autoreply on", ADA))
        await bot_api.wait_sent(1)
        bot_api.push({"business_connection": connection(MALLORY, "BCmallory")})
        bot_api.push({"business_connection": connection(ADA, "BCabc123", enabled=False)})
        bot_api.push(via_mallory)
        bot_api.push(business("through a disabled connection", EVE, "BCabc123"))
        bot_api.push(business("through a connection made before the twin started", EVE, "BClate"))
        await processed(bot_api, adapter, 6)
        return bot_api.sent()

    _, answered = run_twin(twin_app, scenario)
    assert answered["business_connection_id"] == "BClate"
    assert bot_api.called("getBusinessConnection") == [{"business_connection_id": "BClate"}]
    source_id = f"business:222222:{via_mallory['business_message']['message_id']}"
    assert twin_app.store.by_source(twin_app.twin.id, "telegram", source_id) is None  # not even stored


@SQLITE
def test_webhook_mode_checks_the_secret_token(twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM) -> None:
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/telegram/updates"
    twin_app.settings = settings_for(bot_api, llm, telegram_mode="webhook", telegram_webhook_url=webhook,
                                     telegram_webhook_secret="right-secret_1", telegram_webhook_port=port)
    update = {"update_id": 4242, **private("hello over the webhook", EVE)}

    async def post(client: httpx.AsyncClient, secret: str | None) -> int:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        return (await client.post(webhook, json=update, headers=headers)).status_code

    async def scenario(adapter: TelegramAdapter) -> list[int]:
        async with httpx.AsyncClient() as client:
            refused = [await post(client, "wrong-secret"), await post(client, None)]
            accepted = [await post(client, "right-secret_1"), await post(client, "right-secret_1")]
            await processed(bot_api, adapter, 2)
        return refused + accepted

    assert run_twin(twin_app, scenario) == [403, 403, 200, 200]
    [registered] = bot_api.called("setWebhook")
    assert registered["url"] == webhook and registered["secret_token"] == "right-secret_1"
    [answer] = bot_api.sent()  # the redelivered update was not answered again
    assert "hello over the webhook" in answer["text"]
    assert not bot_api.called("getUpdates")


def eve_says(message_id: int, text: str, date: int) -> dict[str, Any]:
    """Eve's private message with this id (the captured one's sender and chat), at `date`."""
    update = fixture("private_text")
    update["message"] |= {"message_id": message_id, "text": text, "date": date}
    return update


@SQLITE
def test_an_edit_revises_the_stored_message_and_its_neighbours_index_without_a_reply(
    twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM
) -> None:
    llm.script.extend(["Hello Eve.", "I will check her calendar.", "Noted, thanks."])
    edit = fixture("edited_message")  # message 10: "... free on Friday?" -> "... free on Saturday?"
    never_stored = {"edited_message": edit["edited_message"] | {"message_id": 99, "text": "a Quixotrand edit"}}

    async def scenario(adapter: TelegramAdapter) -> int:
        for n, update in enumerate([eve_says(9, "hello there", 1735732700), fixture("private_text"),
                                    eve_says(11, "and bring the underwater camera", 1735732900)]):
            bot_api.push(update)
            await bot_api.wait_sent(n + 1)
        count = twin_app.store.count(twin_app.twin.id)
        bot_api.push(edit)
        bot_api.push(never_stored)
        await processed(bot_api, adapter, 5)
        return count

    count_before = run_twin(twin_app, scenario)
    store, twin_id = twin_app.store, twin_app.twin.id
    assert len(bot_api.sent()) == 3, "an edit gets no reply"
    assert store.count(twin_id) == count_before == 6, "and creates no item"
    revised = store.by_source(twin_id, "telegram", "222222:10")
    assert revised is not None and revised.text == "Hi, is Ada free on Saturday?"
    assert revised.raw is not None and revised.raw["edit_date"] == 1735732860
    assert store.by_source(twin_id, "telegram", "222222:99") is None  # an edit of nothing stored stores nothing
    scope = SearchScope(twin_id=twin_id)
    searcher = HybridSearcher(store)
    # The old words are gone from every index entry that held them: the message's own, and its neighbours'
    # (the message before it holds the next turn's words, the ones after hold the earlier turns').
    assert searcher.search("Friday", scope, mode="lexical") == []
    found = [result.item.source_id for result in searcher.search("Saturday", scope, mode="lexical")]
    assert found[0] == "222222:10" and {"222222:9", "222222:11"} <= set(found)
    assert searcher.search("is Ada free on Saturday?", scope)[0].item.source_id == "222222:10"
    assert searcher.search("Quixotrand", scope, mode="lexical") == []
    asked = bot_api.called("getUpdates")[0]["allowed_updates"]  # Telegram sends edits only when asked for them
    assert {"edited_message", "edited_business_message"} <= set(asked)


@SQLITE
def test_a_reply_to_a_group_that_became_a_supergroup_goes_to_the_new_chat(
    twin_app: TwinApp, bot_api: BotAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    update = fixture("group_mention")
    update["message"]["chat"] = {"id": -4012345678, "title": "Reef divers", "type": "group"}
    bot_api.migrated[-4012345678] = -1009876543210  # the group was upgraded while the twin was answering

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        bot_api.push(update)
        await processed(bot_api, adapter, 1)
        return bot_api.sent()

    [answer] = run_twin(twin_app, scenario)
    assert answer["chat_id"] == -1009876543210 and "what does Ada work on?" in answer["text"]
    attempts = [(call.params["chat_id"], call.status) for call in bot_api.calls if call.method == "sendMessage"]
    assert attempts == [(-4012345678, 400), (-1009876543210, 200)]  # the old chat once, not retried
    assert "became supergroup -1009876543210" in caplog.text
    message = twin_app.store.by_source(twin_app.twin.id, "telegram", "-4012345678:501")
    assert message is not None
    assert twin_app.store.by_source(twin_app.twin.id, "telegram", "-4012345678:501:reply") is not None


@SQLITE
def test_business_edits_revise_only_through_the_owners_connection(twin_app: TwinApp, bot_api: BotAPIServer) -> None:
    edit = fixture("edited_business_message")  # message 55 through BCabc123, the owner's connection
    through_mallory = {"edited_business_message": edit["edited_business_message"]
                       | {"business_connection_id": "BCmallory", "text": "Mallory rewrote this"}}

    async def scenario(adapter: TelegramAdapter) -> None:
        bot_api.push({"business_connection": connection(ADA)})
        bot_api.push({"business_connection": connection(MALLORY, "BCmallory")})
        bot_api.push(fixture("business_message"))  # autoreply is off: stored, not answered
        bot_api.push(edit)
        bot_api.push(through_mallory)
        await processed(bot_api, adapter, 5)

    run_twin(twin_app, scenario)
    stored = twin_app.store.by_source(twin_app.twin.id, "telegram", "business:222222:55")
    assert stored is not None and stored.text == "Are you coming to the night dive tonight?"
    assert twin_app.store.count(twin_app.twin.id) == 1 and bot_api.sent() == []


def said_in(request: dict[str, Any]) -> list[int]:
    """The numbers of the same-second questions a prompt holds, in the order it holds them."""
    text = "\n".join(str(turn["content"]) for turn in request["messages"][1:])
    return [int(number) for number in re.findall(r"same second question (\d+)", text)]


@SQLITE
def test_messages_of_the_same_second_keep_their_order_live_and_after_a_restart(
    twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM
) -> None:
    live = [private(f"same second question {n}", EVE) for n in range(1, 6)]  # one `date` second, one batch
    crashed = [private(f"same second question {n}", MALLORY) for n in range(6, 11)]

    async def stored_then_crashed() -> None:  # all five arrive together, none is answered
        messages = [to_inbound(update, "ada_twin_bot") for update in crashed]
        ledger = DeliveryLedger(twin_app.store.engine)
        for sent in reversed(messages):  # the ledger's rows are written beside the answers, in any order
            ledger.received(twin_app.twin.id, "telegram", sent.message_id, sent.chat_id, sent.sender_id,
                            sent.sender_name, False)
        async with open_pipeline(twin_app, twin_app.settings.llm_url) as pipeline:
            await asyncio.gather(*(pipeline.accept(sent) for sent in messages))

    asyncio.run(stored_then_crashed())

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        for update in live:
            bot_api.push(update)
        return await bot_api.wait_sent(10)

    run_twin(twin_app, scenario)
    prompts = [said_in(request) for request in llm.requests]
    for first in (1, 6):  # each answer, in arrival order, saw exactly the questions before it, in order
        answers = [said for said in prompts if said and first <= said[-1] < first + 5]
        assert answers == [list(range(first, last + 1)) for last in range(first, first + 5)]


@SQLITE
def test_a_message_with_a_lone_surrogate_is_stored_and_answered(
    twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM
) -> None:
    update = bot_api.push(private("is the \ud83d ferry on time?", EVE))

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        return await bot_api.wait_sent(1)

    [reply] = run_twin(twin_app, scenario)
    assert "is the \ufffd ferry on time?" in reply["text"]
    stored = twin_app.store.by_source(twin_app.twin.id, "telegram", f"222222:{update['message']['message_id']}")
    assert stored is not None and stored.text == "is the \ufffd ferry on time?"
    assert stored.raw is not None and stored.raw["text"] == "is the \ufffd ferry on time?"


@SQLITE
def test_the_chat_shows_the_twin_typing_while_the_answer_is_written(
    twin_app: TwinApp, bot_api: BotAPIServer, llm: RecordingLLM
) -> None:
    llm.delay = 1.5  # the model takes its time

    async def scenario(adapter: TelegramAdapter) -> list[dict[str, Any]]:
        bot_api.push(private("is Ada around on Friday?", EVE))
        return await bot_api.wait_sent(1)

    run_twin(twin_app, scenario)
    actions = [(call.method, call.params.get("chat_id"), call.params.get("action")) for call in bot_api.calls
               if call.method in ("sendChatAction", "sendMessage")]
    assert actions[0] == ("sendChatAction", 222222, "typing")  # before the answer, in Eve's chat
    assert actions[-1][0] == "sendMessage"
