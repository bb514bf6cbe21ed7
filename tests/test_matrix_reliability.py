"""Matrix reliability against the real Synapse: a reply sent again after a crash is one event (transaction ids),
the first start leaves history alone, a 429 is waited out as the homeserver says, and no token reaches the logs."""

from __future__ import annotations

import logging
import re
from typing import Any

from matrix_people import Person, account, ok, settle, synapse  # noqa: F401 - synapse is the session fixture
from matrix_proxy import LimitingProxy
from nio import MessageDirection, RoomMessageNotice
from synapse_server import Account, SynapseServer
from test_matrix import SQLITE, bot, dm_with_twin, run, running, twin_app  # noqa: F401 - fixtures

from bots.logs import MASK
from bots.matrix import transaction_id
from storage.deliveries import DELIVERED, RECEIVED, DeliveryLedger
from twin.app import TwinApp
from twin.testing import RecordingLLM


async def notices_in_room(person: Person, room_id: str, sender: str) -> list[RoomMessageNotice]:
    """The sender's notices in the room as the homeserver has them (/messages), not as a sync saw them."""
    response = await ok(person.client.room_messages(room_id, direction=MessageDirection.back, limit=100))
    return [event for event in response.chunk if isinstance(event, RoomMessageNotice) and event.sender == sender]


@SQLITE
def test_a_reply_sent_again_after_a_crash_is_one_event_in_the_room(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account, llm: RecordingLLM  # noqa: F811
) -> None:
    ledger = DeliveryLedger(twin_app.store.engine)

    async def scenario() -> tuple[list[RoomMessageNotice], str | None]:
        async with Person(synapse, account(synapse, "ada")) as ada:
            async with running(twin_app) as first:
                room_id = await dm_with_twin(ada, bot)
                asked = await ada.say(room_id, "first question")
                await ada.wait_replies(room_id, bot.user_id)
            # The crash came after the homeserver took the reply and before the ledger heard of it.
            ledger.move(twin_app.twin.id, "matrix", asked, RECEIVED)
            async with running(twin_app) as restarted:  # a new login: a new access token, the same device
                await ada.wait_for(lambda: restarted.processed >= 1, "the undelivered reply sent again")
                assert restarted.client.device_id == first.client.device_id == "TWIN"  # dedup is per device
                assert restarted.client.access_token != first.client.access_token
            await settle(0.5)
            return await notices_in_room(ada, room_id, bot.user_id), ledger.state(twin_app.twin.id, "matrix", asked)

    notices, state = run(scenario)
    assert len(notices) == 1 and "first question" in notices[0].body  # the homeserver kept one event
    assert state == DELIVERED and len(llm.requests) == 1  # sent again, never regenerated


def test_transaction_ids_are_stable_per_message_and_part() -> None:
    first = transaction_id("$abc:localhost", 0)
    assert first == transaction_id("$abc:localhost", 0) and first != transaction_id("$abc:localhost", 1)
    assert first != transaction_id("$abd:localhost", 0) and re.fullmatch(r"[A-Za-z0-9\-]+", first)


@SQLITE
def test_the_first_start_leaves_what_was_said_before_alone(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account, llm: RecordingLLM  # noqa: F811
) -> None:
    async def scenario() -> tuple[str, str, int]:
        async with Person(synapse, account(synapse, "ada")) as ada, Person(synapse, bot, device="ELSEWHERE") as me:
            room_id = await ada.room([bot.user_id], direct=True)  # the twin's account joins from another client
            await me.wait_for(lambda: room_id in me.client.invited_rooms, "the invite")
            await ok(me.client.join(room_id))
            await ada.wait_membership(room_id, bot.user_id, "join")
            before = await ada.say(room_id, "said before the twin ever ran")
            async with running(twin_app):
                await ada.say(room_id, "said once it runs")
                await ada.wait_replies(room_id, bot.user_id)
                await settle()
            return before, room_id, len(await notices_in_room(ada, room_id, bot.user_id))

    before, _room_id, replies = run(scenario)
    assert replies == 1
    [prompt] = llm.prompts()
    assert "said once it runs" in prompt and "said before the twin ever ran" not in prompt
    assert twin_app.store.by_source(twin_app.twin.id, "matrix", before) is None  # not even stored


@SQLITE
def test_a_429_from_the_homeserver_is_retried_after_retry_after_ms(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account  # noqa: F811
) -> None:
    sends = re.compile(r"/rooms/[^/]+/send/m\.room\.message/")

    async def scenario() -> tuple[list[Any], str]:
        async with LimitingProxy(synapse.url, sends, limit=1, retry_after_ms=1500) as proxy, \
                Person(synapse, account(synapse, "ada")) as ada:
            twin_app.settings = twin_app.settings.model_copy(update={"matrix_homeserver": proxy.url})
            async with running(twin_app):
                room_id = await dm_with_twin(ada, bot)
                await ada.say(room_id, "are you there?")
                [reply] = await ada.wait_replies(room_id, bot.user_id)
            return proxy.matching(), reply.body

    attempts, body = run(scenario)
    assert [seen.status for seen in attempts] == [429, 200] and "are you there?" in body
    assert attempts[1].at - attempts[0].at >= 1.5  # waited as long as the homeserver asked
    assert attempts[0].path == attempts[1].path  # the same transaction id: the retry cannot duplicate


@SQLITE
def test_the_access_token_never_reaches_the_logs(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account, caplog: Any  # noqa: F811
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> str:
        async with running(twin_app) as adapter, Person(synapse, account(synapse, "ada")) as ada:
            room_id = await dm_with_twin(ada, bot)
            await ada.say(room_id, "what is on my calendar?")
            await ada.wait_replies(room_id, bot.user_id)
            logging.getLogger("twin.test").debug("request to %s?access_token=%s", synapse.url,
                                                 adapter.client.access_token)  # as a library would log a URL
            return str(adapter.client.access_token)

    token = run(scenario)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token and token not in logged and bot.password not in logged
    assert f"access_token={MASK}" in logged  # redaction is what kept it out, not silence
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
