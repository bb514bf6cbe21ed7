"""Matrix end to end: the real adapter (matrix-nio, end-to-end encryption on), built as `twin run` builds it,
logged in to a real Synapse the session starts, with the real pipeline and a model that answers with its prompt.
People are nio clients on the same homeserver. Captured events are asserted through `to_inbound`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from matrix_people import Person, account, settle, synapse  # noqa: F401 - synapse is the session fixture
from pydantic import SecretStr
from support import free_port
from synapse_server import Account, SynapseServer

from bots.matrix import MatrixAdapter, MatrixSetupError, RoomContext, to_inbound
from storage.memory import MemoryStore
from storage.models import Twin
from storage.search import HybridSearcher
from twin.app import TwinApp
from twin.conversation import open_pipeline
from twin.platform_matrix import build_matrix, check_matrix
from twin.settings import Settings
from twin.testing import RecordingLLM

FIXTURES = Path(__file__).parent / "fixtures" / "matrix_events"
ASSISTANT = "personal assistant"  # in the owner's system prompt only
ON_BEHALF = "on Ada's behalf"  # in the system prompt for everyone else
SQLITE = pytest.mark.parametrize("store", ["sqlite"], indirect=True)
BOT = "@twin:localhost"
T = TypeVar("T")


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


# -- captured events through to_inbound -----------------------------------------------------------------------

TRANSLATED = {  # fixture -> (members, text, chat title)
    "dm_text": (2, "is Ada around on Friday?", None),
    "group_mention_pill": (3, "what does Ada work on?", "Crew"),
    "group_mention_legacy_name": (3, "when is the next dive?", "Crew"),
    "group_mention_user_id": (3, "who is Ada?", "Crew"),
    "dm_emote": (2, "* Eve waves", None),
}
IGNORED = {  # fixture -> members of the room it came from
    "group_plain": 3, "group_mentions_someone_else": 3, "own_notice": 2, "dm_notice_from_a_bot": 2, "dm_edit": 2,
    "undecryptable": 2, "reaction": 2, "member_join": 2,
}


def context(members: int, sender_name: str = "Eve") -> RoomContext:
    return RoomContext(room_id="!room:localhost", members=members, bot_user_id=BOT, bot_name="Twin",
                       sender_name=sender_name, room_name="Crew")


@pytest.mark.parametrize("name", sorted(TRANSLATED))
def test_captured_messages_translate(name: str) -> None:
    event = fixture(name)
    members, text, title = TRANSLATED[name]
    message = to_inbound(event, context(members))
    assert message is not None
    assert (message.platform, message.message_id, message.chat_id) == ("matrix", event["event_id"], "!room:localhost")
    assert (message.sender_id, message.sender_name, message.text) == (event["sender"], "Eve", text)
    assert message.chat_title == title and message.sent_at.timestamp() == event["origin_server_ts"] / 1000


@pytest.mark.parametrize("name", sorted(IGNORED))
def test_captured_events_the_twin_does_not_answer(name: str) -> None:
    assert to_inbound(fixture(name), context(IGNORED[name])) is None


# -- the running twin on a real homeserver ----------------------------------------------------------------------



@pytest.fixture
def bot(synapse: SynapseServer) -> Account:  # noqa: F811 - the session fixture
    """A fresh account for the twin in every test: its own device, keys and rooms."""
    return synapse.register_new("twin")


def settings_for(synapse: SynapseServer, bot: Account, llm: RecordingLLM, data_dir: Path,  # noqa: F811
                 **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, owner_name="Ada", owner_ids=["matrix:@ada:localhost"], llm_url=llm.url,
                    llm_retries=1, matrix_homeserver=synapse.url, matrix_user_id=bot.user_id,
                    matrix_password=bot.password, **overrides)


@pytest.fixture
def twin_app(store: MemoryStore, twin: Twin, synapse: SynapseServer, bot: Account,  # noqa: F811
             llm: RecordingLLM, tmp_path: Path) -> TwinApp:
    settings = settings_for(synapse, bot, llm, tmp_path / "data")
    return TwinApp(settings=settings, store=store, searcher=HybridSearcher(store), twin=twin)


@asynccontextmanager
async def running(app: TwinApp) -> AsyncIterator[MatrixAdapter]:
    async with AsyncExitStack() as stack:
        pipeline = await stack.enter_async_context(open_pipeline(app, app.settings.llm_url or ""))
        yield await stack.enter_async_context(build_matrix(app.settings, app, pipeline))


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


async def dm_with_twin(person: Person, bot: Account) -> str:
    """A direct room the person opens with the twin, once the twin has joined it."""
    room_id = await person.room([bot.user_id], direct=True)
    await person.wait_membership(room_id, bot.user_id, "join")
    return room_id


@SQLITE
def test_the_owner_gets_the_assistant_a_stranger_the_twin_on_their_behalf(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    caplog.set_level(logging.DEBUG)
    twin_app.settings = twin_app.settings.model_copy(
        update={"matrix_allowed_inviters": ["@ada:localhost", "@eve:localhost"]})  # Eve may invite; still a stranger

    async def scenario() -> tuple[str, str]:
        async with running(twin_app), Person(synapse, account(synapse, "ada")) as ada, \
                Person(synapse, account(synapse, "eve")) as eve:
            ada_room, eve_room = await dm_with_twin(ada, bot), await dm_with_twin(eve, bot)
            await ada.say(ada_room, "what is on my calendar?")
            await eve.say(eve_room, "is Ada around on Friday?")
            [to_ada] = await ada.wait_replies(ada_room, bot.user_id)
            [to_eve] = await eve.wait_replies(eve_room, bot.user_id)
            return to_ada.body, to_eve.body

    to_ada, to_eve = run(scenario)
    assert ASSISTANT in to_ada and "what is on my calendar?" in to_ada
    assert ON_BEHALF in to_eve and ASSISTANT not in to_eve and "is Ada around on Friday?" in to_eve
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Matrix: joined" in logged and bot.password not in logged


@SQLITE
def test_invites_from_allowed_users_are_joined_and_others_rejected(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account  # noqa: F811
) -> None:
    async def scenario() -> None:
        async with running(twin_app), Person(synapse, account(synapse, "ada")) as ada, \
                Person(synapse, account(synapse, "eve")) as eve:
            from_ada, from_eve = await ada.room([bot.user_id]), await eve.room([bot.user_id], direct=True)
            await ada.wait_membership(from_ada, bot.user_id, "join")
            await eve.wait_membership(from_eve, bot.user_id, "leave")
            assert eve.membership(from_eve, bot.user_id) == "leave" and ada.membership(from_ada, bot.user_id) == "join"

    run(scenario)


@SQLITE
def test_a_mention_in_a_group_room_is_answered_plain_talk_is_not(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account, llm: RecordingLLM  # noqa: F811
) -> None:
    async def scenario() -> tuple[Any, str]:
        async with running(twin_app), Person(synapse, account(synapse, "ada")) as ada, \
                Person(synapse, account(synapse, "eve")) as eve:
            room_id = await ada.room([bot.user_id, eve.account.user_id])
            await eve.wait_for(lambda: room_id in eve.client.invited_rooms, "the invite")
            await eve.client.join(room_id)
            await eve.wait_membership(room_id, bot.user_id, "join")
            await eve.say(room_id, "anyone up for lunch?")
            mention = await eve.say(room_id, f"{bot.user_id}: what does Ada work on?",
                                    **{"m.mentions": {"user_ids": [bot.user_id]}})
            [reply] = await eve.wait_replies(room_id, bot.user_id)
            await settle()
            assert len(eve.messages_from(room_id, bot.user_id)) == 1
            return reply, mention

    reply, mention = run(scenario)
    assert reply.source["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": mention}}
    [prompt] = llm.prompts()
    assert "what does Ada work on?" in prompt and ON_BEHALF in prompt
    assert bot.user_id not in prompt and "lunch" not in prompt


@SQLITE
def test_commands_work_as_messages_and_memory_commands_are_the_owners(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account, llm: RecordingLLM  # noqa: F811
) -> None:
    twin_app.settings = twin_app.settings.model_copy(
        update={"matrix_allowed_inviters": ["@ada:localhost", "@eve:localhost"]})

    async def scenario() -> tuple[list[str], list[str]]:
        async with running(twin_app), Person(synapse, account(synapse, "ada")) as ada, \
                Person(synapse, account(synapse, "eve")) as eve:
            ada_room, eve_room = await dm_with_twin(ada, bot), await dm_with_twin(eve, bot)
            for text in ("/status", "/help"):
                await ada.say(ada_room, text)
                await eve.say(eve_room, text)
            await eve.say(eve_room, "/remember Eve owns the boat")
            to_ada = await ada.wait_replies(ada_room, bot.user_id, 2)
            to_eve = await eve.wait_replies(eve_room, bot.user_id, 3)
            return [event.body for event in to_ada], [event.body for event in to_eve]

    (ada_status, ada_help), (eve_status, eve_help, eve_remember) = run(scenario)
    assert ada_status.startswith("Up. Memory:") and eve_status == "I am Ada's twin, and I am up."
    assert "/remember" in ada_help and "/remember" not in eve_help
    assert eve_remember == "Only Ada can use /remember."
    assert llm.requests == []  # commands never reach the model


@SQLITE
def test_an_encrypted_room_is_read_and_answered_encrypted(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account, tmp_path: Path  # noqa: F811
) -> None:
    async def scenario() -> tuple[Any, str]:
        device = f"ADA{free_port()}"  # a new device with new keys in every run
        async with running(twin_app), Person(synapse, account(synapse, "ada"), tmp_path / "ada", device) as ada:
            room_id = await ada.room([bot.user_id], encrypted=True, direct=True)
            await ada.wait_membership(room_id, bot.user_id, "join")
            await ada.sync()
            asked = await ada.say(room_id, "what is on my calendar?")
            [reply] = await ada.wait_replies(room_id, bot.user_id)
            return reply, asked

    reply, asked = run(scenario)
    assert reply.decrypted and ASSISTANT in reply.body and "what is on my calendar?" in reply.body
    stored = twin_app.store.by_source(twin_app.twin.id, "matrix", asked)
    assert stored is not None and stored.text == "what is on my calendar?"  # decrypted before it reached L0


@SQLITE
def test_a_restart_redelivers_and_nothing_is_answered_twice_or_lost(
    twin_app: TwinApp, synapse: SynapseServer, bot: Account, llm: RecordingLLM  # noqa: F811
) -> None:
    async def scenario() -> list[str]:
        async with Person(synapse, account(synapse, "ada")) as ada:
            async with running(twin_app) as adapter:
                before = await adapter.tokens.load()
                room_id = await dm_with_twin(ada, bot)
                await ada.say(room_id, "first question")
                await ada.wait_replies(room_id, bot.user_id)
            await ada.say(room_id, "asked while the twin was down")
            assert before is not None
            await adapter.tokens.save(before)  # rewound: the homeserver sends the first question again
            async with running(twin_app) as restarted:
                replies = await ada.wait_replies(room_id, bot.user_id, 2)
                await ada.wait_for(lambda: restarted.processed >= 2, "the redelivered question handled")
                await settle()
            return [event.body for event in ada.messages_from(room_id, bot.user_id)] + [replies[1].body]

    *bodies, second = run(scenario)
    assert len(bodies) == 2 and "asked while the twin was down" in second
    assert [prompt.count("first question") > 0 for prompt in llm.prompts()] == [True, True]
    assert len(llm.requests) == 2


def test_doctor_says_what_the_homeserver_said(synapse: SynapseServer, bot: Account, llm: RecordingLLM,  # noqa: F811
                                              tmp_path: Path) -> None:
    good = settings_for(synapse, bot, llm, tmp_path)
    assert f"{bot.user_id} at {synapse.url}" in asyncio.run(check_matrix(good))
    wrong = good.model_copy(update={"matrix_password": SecretStr("not-the-password")})
    with pytest.raises(MatrixSetupError, match=r"Matrix rejected the login \(M_FORBIDDEN\)"):
        asyncio.run(check_matrix(wrong))
    away = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MatrixSetupError, match=f"homeserver at {away} is unreachable"):
        asyncio.run(check_matrix(good.model_copy(update={"matrix_homeserver": away})))
    with pytest.raises(ValueError, match="TWIN_MATRIX_USER_ID"):
        Settings(matrix_homeserver=synapse.url)


def test_lone_surrogates_are_replaced_in_the_text_and_the_raw_payload() -> None:
    event = fixture("dm_text")
    event["content"]["body"] = "broken \ud83d emoji"
    message = to_inbound(event, context(2, sender_name="Eve\udfff"))
    assert message is not None and (message.text, message.sender_name) == ("broken \ufffd emoji", "Eve\ufffd")
    assert json.dumps(message.raw, ensure_ascii=False).encode("utf-8")  # writable: no UnicodeEncodeError
    assert message.raw["content"]["body"] == "broken \ufffd emoji"
