"""Slack end to end: the real bolt AsyncApp, built as `twin run` builds it, receiving signed Events API requests
over HTTP (and Socket Mode over a local websocket), posting through a Web API test server, with the real
pipeline and a model that answers with its prompt. Captured payloads are asserted through `to_inbound`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier
from slack_server import APP_TOKEN, BOT_TOKEN, BOT_USER, SIGNING_SECRET, SlackAPIServer
from support import free_port

from bots.slack import SlackAdapter, SlackSetupError, command_to_inbound, reply_target, to_inbound
from core.autoreply import SAID, Autoreply
from core.messages import InboundMessage
from storage.memory import MemoryStore
from storage.models import Twin
from storage.people import Speaker
from storage.search import HybridSearcher
from storage.state import StateStore
from twin.app import TwinApp
from twin.conversation import open_pipeline
from twin.platform_slack import build_slack, check_slack
from twin.settings import Settings
from twin.testing import RecordingLLM

FIXTURES = Path(__file__).parent / "fixtures" / "slack_events"
ADA, EVE = "U01ADA", "U02EVE"
ASSISTANT = "personal assistant"  # in the owner's system prompt only
ON_BEHALF = "on Ada's behalf"  # in the system prompt for everyone else
MARK = "(Ada's twin, answering while Ada is away)"
SQLITE = pytest.mark.parametrize("store", ["sqlite"], indirect=True)
T = TypeVar("T")
EVENTS = "/slack/events"  # the endpoint path (TWIN_SLACK_PATH default)


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


# -- captured payloads through to_inbound ---------------------------------------------------------------------

TRANSLATED = {  # fixture -> (chat, message id, sender, text, to_owner, reply channel, reply thread)
    "dm_to_bot": ("D0BOTEVE", "D0BOTEVE:1735732801.000200", EVE, "is Ada around on Friday?", False, "D0BOTEVE", None),
    "dm_to_bot_in_thread": ("D0BOTADA", "D0BOTADA:1735732802.000300", ADA, "and after that?", False, "D0BOTADA",
                            "1735732790.000100"),
    "app_mention": ("C01GENERAL", "C01GENERAL:1735732803.000400", EVE, "what does Ada work on?", False, "C01GENERAL",
                    "1735732803.000400"),
    "channel_message_mentioning_owner": ("C01GENERAL", "C01GENERAL:1735732804.000500", EVE,
                                         "<@U01ADA> can you review my draft today?", True, "C01GENERAL",
                                         "1735732804.000500"),
    "dm_to_owner": ("D0ADAEVE", "D0ADAEVE:1735732806.000700", EVE, "Are you coming tonight?", True, EVE, None),
}
IGNORED = ["channel_message_mentioning_bot", "channel_chatter", "bot_message", "own_message", "message_changed",
           "message_deleted", "reaction_added"]


@pytest.mark.parametrize("name", sorted(TRANSLATED))
def test_captured_messages_translate(name: str) -> None:
    message = to_inbound(fixture(name), BOT_USER, frozenset({ADA}))
    assert message is not None
    chat, message_id, sender, text, to_owner, channel, thread = TRANSLATED[name]
    assert (message.platform, message.chat_id, message.message_id) == ("slack", chat, message_id)
    assert (message.sender_id, message.text, message.to_owner) == (sender, text, to_owner)
    target = reply_target(message)
    assert (target.channel, target.thread_ts) == (channel, thread)


@pytest.mark.parametrize("name", IGNORED)
def test_captured_events_the_twin_does_not_answer(name: str) -> None:
    assert to_inbound(fixture(name), BOT_USER, frozenset({ADA})) is None


def test_a_dm_to_the_owner_is_not_theirs_without_their_id_and_the_slash_command_maps_to_the_core() -> None:
    assert to_inbound(fixture("dm_to_owner"), BOT_USER, frozenset()).to_owner is False  # type: ignore[union-attr]
    message = command_to_inbound(fixture("slash_command"))
    assert (message.text, message.sender_id, message.chat_id) == ("/remember I dive on Sundays", ADA, "C01GENERAL")
    assert "response_url" not in (message.raw or {})  # a capability URL: not kept in memory
    assert command_to_inbound(fixture("slash_command") | {"text": "  "}).text == "/help"


# -- the running twin -----------------------------------------------------------------------------------------


@pytest.fixture
def slack_api() -> Iterator[SlackAPIServer]:
    with SlackAPIServer() as server:
        yield server



@pytest.fixture
def twin_app(store: MemoryStore, twin: Twin, slack_api: SlackAPIServer, llm: RecordingLLM) -> TwinApp:
    settings = Settings(owner_name="Ada", owner_ids=[f"slack:{ADA}"], llm_url=llm.url, llm_retries=1,
                        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=slack_api.url,
                        slack_port=free_port())
    return TwinApp(settings=settings, store=store, searcher=HybridSearcher(store), twin=twin)


@asynccontextmanager
async def running(app: TwinApp) -> AsyncIterator[SlackAdapter]:
    async with AsyncExitStack() as stack:
        pipeline = await stack.enter_async_context(open_pipeline(app, app.settings.llm_url or ""))
        yield await stack.enter_async_context(build_slack(app.settings, app, pipeline))


def run_twin(app: TwinApp, scenario: Callable[[SlackAdapter, httpx.AsyncClient], Awaitable[T]]) -> T:
    async def go() -> T:
        origin = f"http://127.0.0.1:{app.settings.slack_port}"
        async with running(app) as adapter, httpx.AsyncClient(base_url=origin, timeout=10) as http:
            return await scenario(adapter, http)

    return asyncio.run(go())


def signed(body: str, secret: str = SIGNING_SECRET, age: float = 0, **headers: str) -> dict[str, str]:
    """Slack's request signature headers over the raw body."""
    timestamp = str(int(time.time() - age))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature, **headers}


async def send_event(http: httpx.AsyncClient, envelope: dict[str, Any], **headers: str) -> httpx.Response:
    body = json.dumps(envelope)
    headers = {"Content-Type": "application/json", **signed(body, **headers)}
    return await http.post(EVENTS, content=body, headers=headers)


async def send_form(http: httpx.AsyncClient, fields: dict[str, str]) -> httpx.Response:
    body = urlencode(fields)
    return await http.post(EVENTS, content=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                      **signed(body)})


async def slash(http: httpx.AsyncClient, api: SlackAPIServer, text: str, user: str = ADA) -> dict[str, Any]:
    """`/twin TEXT` typed by `user`; the ephemeral answer posted to its response_url."""
    before = len(api.responses)
    fields = fixture("slash_command") | {"text": text, "user_id": user, "trigger_id": f"trigger-{time.time_ns()}",
                                         "response_url": api.response_url("twin")}
    assert (await send_form(http, fields)).status_code == 200
    await api.wait_for(lambda: len(api.responses) > before)
    return api.responses[before]


async def click(http: httpx.AsyncClient, action_id: str, draft_id: str, user: str = ADA) -> httpx.Response:
    payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": "T01TEAM"}, "api_app_id": "A01TWIN",
               "trigger_id": "trigger-click", "container": {"type": "message", "channel_id": "D0BOTADA"},
               "actions": [{"type": "button", "action_id": action_id, "block_id": "twin_draft", "value": draft_id}]}
    return await send_form(http, {"payload": json.dumps(payload)})


@SQLITE
def test_the_owner_gets_the_assistant_others_the_twin_on_their_behalf(
    twin_app: TwinApp, slack_api: SlackAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    from_ada = fixture("dm_to_bot_in_thread")

    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> list[dict[str, Any]]:
        assert (await send_event(http, fixture("dm_to_bot"))).status_code == 200
        assert (await send_event(http, from_ada)).status_code == 200
        return await slack_api.wait_posted(2)

    replies = {post["channel"]: post for post in run_twin(twin_app, scenario)}
    assert ON_BEHALF in replies["D0BOTEVE"]["text"] and ASSISTANT not in replies["D0BOTEVE"]["text"]
    assert "Eve Moneypenny" in replies["D0BOTEVE"]["text"]  # the name came from users.info
    assert ASSISTANT in replies["D0BOTADA"]["text"] and replies["D0BOTADA"]["thread_ts"] == "1735732790.000100"
    assert MARK not in replies["D0BOTEVE"]["text"]  # a DM to the twin is the twin's own conversation
    stored = twin_app.store.by_source(twin_app.twin.id, "slack", "D0BOTEVE:1735732801.000200")
    assert stored is not None and stored.text == "is Ada around on Friday?"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "chat.postMessage" in logged  # the Web API client did log its requests at DEBUG
    assert BOT_TOKEN not in logged and SIGNING_SECRET not in logged


@SQLITE
def test_a_bad_signature_a_stale_timestamp_and_no_signature_get_401(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM
) -> None:
    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> list[int]:
        body = json.dumps(fixture("dm_to_bot"))
        forged = await http.post(EVENTS, content=body, headers=signed(body, secret="not-the-secret"))
        stale = await http.post(EVENTS, content=body, headers=signed(body, age=600))
        unsigned = await http.post(EVENTS, content=body)
        genuine = await send_event(http, fixture("dm_to_bot"))
        await slack_api.wait_posted(1)
        return [forged.status_code, stale.status_code, unsigned.status_code, genuine.status_code]

    assert run_twin(twin_app, scenario) == [401, 401, 401, 200]
    assert len(llm.requests) == 1 and len(slack_api.posted()) == 1  # only the genuine request reached the twin


@SQLITE
def test_a_slack_retry_is_acked_and_answered_once(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM
) -> None:
    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> list[int]:
        first = await send_event(http, fixture("dm_to_bot"))
        retry = await send_event(http, fixture("dm_to_bot"), **{"X-Slack-Retry-Num": "1",
                                                                  "X-Slack-Retry-Reason": "http_timeout"})
        await slack_api.wait_for(lambda: adapter.processed >= 2)
        return [first.status_code, retry.status_code]

    assert run_twin(twin_app, scenario) == [200, 200]
    assert len(slack_api.posted()) == 1 and len(llm.requests) == 1


@SQLITE
def test_autoreply_on_answers_for_the_owner_marked_as_the_twin(twin_app: TwinApp, slack_api: SlackAPIServer) -> None:
    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> list[dict[str, Any]]:
        await send_event(http, fixture("channel_message_mentioning_owner"))
        await slack_api.wait_for(lambda: adapter.processed >= 1)
        assert slack_api.posted() == []  # autoreply is off by default: kept for Ada
        refused = await slash(http, slack_api, "autoreply on", user=EVE)
        assert "Only Ada" in refused["text"]
        switched = await slash(http, slack_api, "autoreply on")
        assert switched["text"] == SAID["on"] and switched["response_type"] == "ephemeral"
        await send_event(http, fixture("dm_to_owner"))
        return await slack_api.wait_posted(1)

    [answer] = run_twin(twin_app, scenario)
    assert answer["channel"] == EVE  # the bot's DM with Eve: it cannot post in Ada's own DM
    assert answer["text"].startswith(f"_{MARK}_") and ON_BEHALF in answer["text"]
    assert "Are you coming tonight?" in answer["text"]


@SQLITE
def test_draft_mode_asks_the_owner_first_approve_posts_discard_does_not(
    twin_app: TwinApp, slack_api: SlackAPIServer
) -> None:
    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> None:
        assert (await slash(http, slack_api, "autoreply draft"))["text"] == SAID["draft"]
        await send_event(http, fixture("channel_message_mentioning_owner"))
        await slack_api.wait_posted(1)
        await send_event(http, fixture("dm_to_owner"))
        await slack_api.wait_posted(2)
        assert all(post["channel"] == ADA for post in slack_api.posted())  # drafts, to Ada only
        await click(http, "twin_draft_approve", "C01GENERAL:1735732804.000500")
        await click(http, "twin_draft_approve", "C01GENERAL:1735732804.000500")  # a double click
        await click(http, "twin_draft_approve", "D0ADAEVE:1735732806.000700", user=EVE)  # not Eve's to decide
        await click(http, "twin_draft_discard", "D0ADAEVE:1735732806.000700")
        await slack_api.wait_for(lambda: len(slack_api.called("chat.update")) >= 2)

    run_twin(twin_app, scenario)
    draft, _, approved = slack_api.posted()
    buttons = [element["action_id"] for element in draft["blocks"][-1]["elements"]]
    assert buttons == ["twin_draft_approve", "twin_draft_edit", "twin_draft_discard"]
    assert "*Eve Moneypenny* wrote to you" in json.dumps(draft["blocks"])
    assert "can you review my draft today?" in json.dumps(draft["blocks"])
    assert (approved["channel"], approved["thread_ts"]) == ("C01GENERAL", "1735732804.000500")
    assert approved["text"].startswith(f"_{MARK}_") and ON_BEHALF in approved["text"]
    outcomes = [update["blocks"][0]["text"]["text"].split(":")[0] for update in slack_api.called("chat.update")]
    assert sorted(outcomes) == ["*Discarded", "*Sent"]
    logged = {source_id: twin_app.store.by_source(twin_app.twin.id, "slack", f"{source_id}:reply")
              for source_id in ("C01GENERAL:1735732804.000500", "D0ADAEVE:1735732806.000700")}
    assert [row.raw["draft"] for row in logged.values()] == ["sent", "discarded"]  # what became of each


@SQLITE
def test_an_answer_decided_as_a_draft_stays_a_draft_when_autoreply_changes_meanwhile(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM
) -> None:
    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> None:
        await slash(http, slack_api, "autoreply draft")
        llm.delay = 1.5  # the owner switches while the answer is being written
        await send_event(http, fixture("dm_to_owner"))
        await slack_api.wait_for(lambda: len(llm.requests) >= 1)
        assert (await slash(http, slack_api, "autoreply off"))["text"] == SAID["off"]
        await slack_api.wait_posted(1)

    run_twin(twin_app, scenario)
    [draft] = slack_api.posted()
    assert draft["channel"] == ADA  # proposed to Ada as decided, never posted to Eve unapproved
    assert [e["action_id"] for e in draft["blocks"][-1]["elements"]][0] == "twin_draft_approve"


@SQLITE
def test_edit_opens_a_modal_and_the_owners_text_is_sent(twin_app: TwinApp, slack_api: SlackAPIServer) -> None:
    draft_id = "D0ADAEVE:1735732806.000700"

    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> None:
        await slash(http, slack_api, "autoreply draft")
        await send_event(http, fixture("dm_to_owner"))
        await slack_api.wait_posted(1)
        await click(http, "twin_draft_edit", draft_id)
        await slack_api.wait_for(lambda: bool(slack_api.called("views.open")))
        view = slack_api.called("views.open")[0]["view"]
        submitted = {"type": "view_submission", "user": {"id": ADA}, "team": {"id": "T01TEAM"},
                     "api_app_id": "A01TWIN", "trigger_id": "trigger-submit", "view": view | {
                         "state": {"values": {"draft": {"text": {"type": "plain_text_input",
                                                                "value": "Yes, from eight. Ada"}}}}}}
        assert (await send_form(http, {"payload": json.dumps(submitted)})).status_code == 200
        await slack_api.wait_posted(2)

    run_twin(twin_app, scenario)
    assert "Are you coming tonight?" in slack_api.called("views.open")[0]["view"]["blocks"][0]["element"][
        "initial_value"]
    sent = slack_api.posted()[1]
    assert sent["channel"] == EVE and sent["text"] == f"_{MARK}_\nYes, from eight. Ada"
    logged = twin_app.store.by_source(twin_app.twin.id, "slack", f"{draft_id}:reply")
    assert logged is not None and logged.text == "Yes, from eight. Ada" and logged.raw["draft"] == "sent"


@SQLITE
def test_socket_mode_through_a_local_websocket(twin_app: TwinApp, slack_api: SlackAPIServer) -> None:
    twin_app.settings = twin_app.settings.model_copy(update={"slack_app_token": SecretStr(APP_TOKEN)})

    async def go() -> str:
        async with running(twin_app):
            envelope_id = await slack_api.push_socket(fixture("app_mention"))
            await slack_api.wait_posted(1)
            await slack_api.wait_for(lambda: any(ack.get("envelope_id") == envelope_id for ack in slack_api.acks))
            return envelope_id

    asyncio.run(go())
    [opened] = [call for call in slack_api.calls if call.method == "apps.connections.open"]
    assert opened.token == APP_TOKEN
    [answer] = slack_api.posted()
    assert (answer["channel"], answer["thread_ts"]) == ("C01GENERAL", "1735732803.000400")
    assert "what does Ada work on?" in answer["text"]


@SQLITE
def test_a_429_is_waited_out_and_a_long_reply_is_split(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM
) -> None:
    paragraphs = [f"Part {i}. " + " ".join(f"Ada likes reef diving and slow morning number {i}-{j}."
                                           for j in range(17)) for i in range(10)]  # no repeats: the guard drops those
    llm.script.append("\n\n".join(paragraphs))
    slack_api.fail_next("chat.postMessage", 429, retry_after=1)

    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> list[dict[str, Any]]:
        await send_event(http, fixture("dm_to_bot"))
        return await slack_api.wait_posted(3)

    started = time.monotonic()
    parts = run_twin(twin_app, scenario)
    assert time.monotonic() - started >= 1  # Retry-After was honoured
    statuses = [call.status for call in slack_api.calls if call.method == "chat.postMessage"]
    assert statuses == [429, 200, 200, 200]
    assert all(len(part["text"]) <= 4000 for part in parts) and parts[1]["text"].startswith("Part ")
    assert "\n\n".join(part["text"] for part in parts) == "\n\n".join(paragraphs)


def test_doctor_says_what_auth_test_said(slack_api: SlackAPIServer) -> None:
    base = {"slack_signing_secret": SIGNING_SECRET, "slack_api_url": slack_api.url}
    assert "@ada_twin in Ada's workspace" in asyncio.run(check_slack(Settings(slack_bot_token=BOT_TOKEN, **base)))
    with pytest.raises(SlackSetupError, match="invalid_auth"):
        asyncio.run(check_slack(Settings(slack_bot_token="xoxb-wrong", **base)))
    with pytest.raises(SlackSetupError, match="unreachable"):
        asyncio.run(check_slack(Settings(slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
                                         slack_api_url=f"http://127.0.0.1:{free_port()}/api/")))
    with pytest.raises(ValueError, match="TWIN_SLACK_SIGNING_SECRET"):
        Settings(slack_bot_token=BOT_TOKEN)


@SQLITE
def test_draft_mode_holds_back_answers_where_the_platform_shows_no_drafts(store: MemoryStore, twin: Twin) -> None:
    autoreply = Autoreply(StateStore(store.engine), twin.id)
    eve = Speaker(person_id=None, name="Eve", trust="stranger")

    async def answered(drafts_shown: bool) -> str | None:
        message = InboundMessage("slack", "D0ADAEVE:1.0", "D0ADAEVE", EVE, "Eve", "hi", to_owner=True)
        return await autoreply.decide(message, eve, drafts_shown)

    asyncio.run(autoreply.set("draft"))
    assert asyncio.run(answered(True)) == "draft"
    assert asyncio.run(answered(False)) is None  # no approval step there


@SQLITE
def test_a_slash_command_is_stored_on_arrival_and_answered_in_its_turn_in_the_channel(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM
) -> None:
    llm.delay = 3.0  # the mention before it is still being answered when the command arrives
    trigger = f"trigger-{time.time_ns()}"
    command = fixture("slash_command") | {"text": "status", "trigger_id": trigger,
                                          "response_url": slack_api.response_url("twin")}

    def stored() -> bool:
        return twin_app.store.by_source(twin_app.twin.id, "slack", f"command:{trigger}") is not None

    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> tuple[bool, list[dict[str, Any]]]:
        await send_event(http, fixture("app_mention"))  # in C01GENERAL, like the command
        await slack_api.wait_for(lambda: len(llm.requests) == 1)
        assert (await send_form(http, command)).status_code == 200  # acked at once
        await slack_api.wait_for(stored, timeout=2.0)  # in memory while it waits: a crash now cannot lose it
        answered_meanwhile = bool(slack_api.responses or slack_api.posted())
        await slack_api.wait_for(lambda: bool(slack_api.responses), timeout=10.0)
        return answered_meanwhile, slack_api.posted()

    answered_meanwhile, posted = run_twin(twin_app, scenario)
    assert not answered_meanwhile
    assert len(posted) == 1 and "what does Ada work on?" in posted[0]["text"]  # the mention was answered first
    [response] = slack_api.responses
    assert response["text"].startswith("Up.") and response["response_type"] == "ephemeral"


def test_lone_surrogates_are_replaced_in_the_text_and_the_raw_payload() -> None:
    envelope = fixture("dm_to_bot")
    envelope["event"]["text"] = "broken \ud83d emoji"
    message = to_inbound(envelope, BOT_USER, frozenset({ADA}))
    assert message is not None and message.text == "broken \ufffd emoji"
    assert json.dumps(message.raw, ensure_ascii=False).encode("utf-8")  # writable: no UnicodeEncodeError
    assert message.raw["event"]["text"] == "broken \ufffd emoji"
    command = command_to_inbound(fixture("slash_command") | {"text": "remember \udc00 half", "user_name": "ada\ud800"})
    assert (command.text, command.sender_name) == ("/remember \ufffd half", "ada\ufffd")
    assert json.dumps(command.raw, ensure_ascii=False).encode("utf-8")


@SQLITE
def test_forgetting_a_drafted_message_leaves_no_byte_of_it_and_a_later_approve_sends_nothing(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM, tmp_path: Path
) -> None:
    asked = fixture("channel_message_mentioning_owner")
    asked["event"]["text"] = "<@U01ADA> the code word is BLUEHERON, keep it quiet"
    llm.script.append("My draft: meet by the GOLDFINCH statue at noon")
    draft_id = "C01GENERAL:1735732804.000500"

    async def scenario(adapter: SlackAdapter, http: httpx.AsyncClient) -> tuple[str, str]:
        await slash(http, slack_api, "autoreply draft")
        await send_event(http, asked)
        await slack_api.wait_posted(1)  # the draft, in Ada's DM
        preview = (await slash(http, slack_api, "forget BLUEHERON"))["text"]
        done = (await slash(http, slack_api, "forget yes"))["text"]
        await click(http, "twin_draft_approve", draft_id)
        await asyncio.sleep(1.0)  # time for a wrong post
        return preview, done

    preview, done = run_twin(twin_app, scenario)
    assert "draft answer to Eve Moneypenny: My draft: meet by the GOLDFINCH" in preview  # the preview lists it
    assert done.startswith("Forgotten:") and "1 drafts" in done
    assert [post["channel"] for post in slack_api.posted()] == [ADA]  # the Approve click sent nothing
    [update] = slack_api.called("chat.update")  # the DM now says it was forgotten, and holds no word of it
    assert "forgotten" in json.dumps(update["blocks"]) and "GOLDFINCH" not in json.dumps(update["blocks"])
    for word in (b"BLUEHERON", b"GOLDFINCH"):
        held = [str(f) for f in tmp_path.rglob("*") if f.is_file() and word in f.read_bytes()]
        assert held == [], f"{word!r} is still in {held}"

