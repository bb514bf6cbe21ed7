"""Slack across restarts, against the Web API test server (which keeps what was posted and answers
conversations.history / replies from it): a reply Slack already has is not posted again, a half-posted split
reply is completed, slash commands a crash left unanswered are answered ephemerally, and a slow users.info for a
new sender does not let a later message in the same chat overtake."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from slack_server import SlackAPIServer
from test_slack import ADA, SQLITE, fixture, run_twin, send_event, slack_api, twin_app  # noqa: F401 - fixtures

from bots.slack import SlackAdapter, command_to_inbound
from core.autoreply import Autoreply
from storage.deliveries import DELIVERED, RECEIVED, DeliveryLedger
from storage.state import StateStore
from twin.app import TwinApp
from twin.conversation import open_pipeline
from twin.testing import RecordingLLM

MENTION_ID = "C01GENERAL:1735732803.000400"  # app_mention.json
DM_ID = "D0BOTEVE:1735732801.000200"  # dm_to_bot.json


def state(app: TwinApp, message_id: str) -> str | None:
    return DeliveryLedger(app.store.engine).state(app.twin.id, "slack", message_id)


def crashed_before_the_ledger_heard(app: TwinApp, message_id: str) -> None:
    """The reply reached Slack, the process died before marking it delivered."""
    DeliveryLedger(app.store.engine).move(app.twin.id, "slack", message_id, RECEIVED)


async def nothing(_adapter: SlackAdapter, _http: Any) -> None:
    """A start: recovery runs before `running` yields."""


@SQLITE
def test_a_reply_slack_already_has_is_not_posted_again(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM  # noqa: F811
) -> None:
    async def answered(adapter: SlackAdapter, http: Any) -> None:
        await send_event(http, fixture("app_mention"))
        await slack_api.wait_for(lambda: state(twin_app, MENTION_ID) == DELIVERED)

    run_twin(twin_app, answered)
    crashed_before_the_ledger_heard(twin_app, MENTION_ID)
    run_twin(twin_app, nothing)
    [reply] = slack_api.posted()
    assert reply["metadata"] == {"event_type": "twin_reply", "event_payload": {"source_id": MENTION_ID, "part": 0}}
    [lookup] = slack_api.called("conversations.replies")  # the reply went to the mention's thread: looked for there
    assert lookup["channel"] == "C01GENERAL" and lookup["ts"] == "1735732803.000400"
    assert lookup["include_all_metadata"] in ("1", "true", True)
    assert state(twin_app, MENTION_ID) == DELIVERED and len(llm.requests) == 1


@SQLITE
def test_a_split_reply_cut_short_by_a_crash_gets_only_its_missing_parts(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM  # noqa: F811
) -> None:
    paragraphs = [f"Part {i}. " + " ".join(f"Ada likes reef diving and slow morning number {i}-{j}."
                                           for j in range(17)) for i in range(10)]
    llm.script.append("\n\n".join(paragraphs))

    async def answered(adapter: SlackAdapter, http: Any) -> None:
        await send_event(http, fixture("dm_to_bot"))
        await slack_api.wait_for(lambda: state(twin_app, DM_ID) == DELIVERED)

    run_twin(twin_app, answered)
    assert len(slack_api.posted()) == 3
    slack_api.lose_last_posts(2)  # only the first part reached Slack before the crash
    crashed_before_the_ledger_heard(twin_app, DM_ID)
    run_twin(twin_app, nothing)
    posted = slack_api.posted()
    assert [post["metadata"]["event_payload"]["part"] for post in posted] == [0, 1, 2, 1, 2]
    assert slack_api.called("conversations.history")[0]["channel"] == "D0BOTEVE"
    in_channel = [message["text"] for message in slack_api.channels["D0BOTEVE"]]
    assert "\n\n".join(in_channel) == "\n\n".join(paragraphs)  # whole, once, in order
    assert state(twin_app, DM_ID) == DELIVERED and len(llm.requests) == 1


@SQLITE
def test_a_draft_the_owner_already_got_is_not_sent_again(
    twin_app: TwinApp, slack_api: SlackAPIServer  # noqa: F811
) -> None:
    asked = "C01GENERAL:1735732804.000500"  # channel_message_mentioning_owner.json

    async def drafted(adapter: SlackAdapter, http: Any) -> None:
        await Autoreply(StateStore(twin_app.store.engine), twin_app.twin.id).set("draft")
        await send_event(http, fixture("channel_message_mentioning_owner"))
        await slack_api.wait_for(lambda: state(twin_app, asked) == DELIVERED)

    run_twin(twin_app, drafted)
    crashed_before_the_ledger_heard(twin_app, asked)
    run_twin(twin_app, nothing)
    [draft] = slack_api.posted()
    assert draft["channel"] == ADA and draft["metadata"]["event_payload"] == {"source_id": asked, "part": 0}
    assert slack_api.called("conversations.open")[0]["users"] == ADA  # the owner's DM, looked up by user id
    assert state(twin_app, asked) == DELIVERED


@SQLITE
def test_slash_commands_a_crash_left_unanswered_are_answered_ephemerally(
    twin_app: TwinApp, slack_api: SlackAPIServer  # noqa: F811
) -> None:
    refused = fixture("slash_command") | {"trigger_id": "trigger-1", "text": "help", "channel_id": "C09ELSEWHERE"}
    remember = fixture("slash_command") | {"trigger_id": "trigger-2"}

    async def stored_then_crashed() -> None:
        async with open_pipeline(twin_app, twin_app.settings.llm_url or "") as pipeline:
            for body in (refused, remember):
                await pipeline.record(command_to_inbound(body))  # in L0 and the ledger, never answered

    asyncio.run(stored_then_crashed())
    slack_api.fail_next("chat.postEphemeral", status=200, error="channel_not_found")  # the bot is not in there
    run_twin(twin_app, nothing)
    tried, ephemeral = slack_api.called("chat.postEphemeral")  # the first was refused (with ok: false)
    assert (tried["channel"], ephemeral["channel"], ephemeral["user"]) == ("C09ELSEWHERE", "C01GENERAL", ADA)
    assert ephemeral["text"].startswith("Remembered as fact #1")
    [dm] = slack_api.posted()
    assert dm["channel"] == ADA and "/remember" in dm["text"]  # the help answer, to Ada's DM with the bot
    assert {state(twin_app, "command:trigger-1"), state(twin_app, "command:trigger-2")} == {DELIVERED}


@SQLITE
def test_a_slow_name_lookup_for_a_new_sender_keeps_arrival_order(
    twin_app: TwinApp, slack_api: SlackAPIServer  # noqa: F811
) -> None:
    slack_api.slow("users.info", 1.0)
    first = fixture("app_mention")  # from Eve, no profile in the event: users.info is asked, slowly
    second = copy.deepcopy(first)
    second["event_id"] = "Ev04SECOND"
    second["event"] |= {"client_msg_id": "c0ffee00-0002", "user": "U03MAL", "ts": "1735732809.000900",
                        "event_ts": "1735732809.000900", "text": "<@U0TWINBOT> and Mallory asks",
                        "user_profile": {"real_name": "Mallory"}}

    async def scenario(adapter: SlackAdapter, http: Any) -> list[dict[str, Any]]:
        await send_event(http, first)
        await send_event(http, second)
        return await slack_api.wait_posted(2)

    replies = run_twin(twin_app, scenario)
    assert [reply["thread_ts"] for reply in replies] == ["1735732803.000400", "1735732809.000900"]
    stored = twin_app.store.by_source(twin_app.twin.id, "slack", MENTION_ID)
    assert stored is not None and stored.sender_name == "Eve Moneypenny"


@SQLITE
def test_without_the_history_scope_the_reply_is_posted_again(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM  # noqa: F811
) -> None:
    async def answered(adapter: SlackAdapter, http: Any) -> None:
        await send_event(http, fixture("dm_to_bot"))
        await slack_api.wait_for(lambda: state(twin_app, DM_ID) == DELIVERED)

    run_twin(twin_app, answered)
    crashed_before_the_ledger_heard(twin_app, DM_ID)
    slack_api.fail_next("conversations.history", status=200, error="missing_scope")
    run_twin(twin_app, nothing)
    first, again = slack_api.posted()  # at least once: the same logged reply, not a new answer
    assert first["text"] == again["text"] and len(llm.requests) == 1
    assert state(twin_app, DM_ID) == DELIVERED


def dm_from_eve(number: int) -> dict[str, Any]:
    """Eve's DM to the bot number `number` (no profile in the event: the adapter asks users.info for her name)."""
    envelope = fixture("dm_to_bot")
    ts = f"17357328{10 + number}.000100"
    envelope["event_id"] = f"Ev0DM{number}"
    envelope["event"] |= {"client_msg_id": f"c0ffee00-01{number}", "ts": ts, "event_ts": ts,
                          "text": f"question number {number} about the ferry"}
    return envelope


@SQLITE
def test_messages_acked_while_the_sender_lookup_hangs_survive_a_crash(
    twin_app: TwinApp, slack_api: SlackAPIServer, llm: RecordingLLM  # noqa: F811
) -> None:
    slack_api.hold("users.info")
    dms = [dm_from_eve(number) for number in (1, 2, 3)]

    async def crashed_during_the_lookup(adapter: SlackAdapter, http: Any) -> None:
        for envelope in dms:
            assert (await send_event(http, envelope)).status_code == 200  # acked: Slack will not send them again
        await slack_api.wait_for(lambda: "users.info" in slack_api.held)
        # leaving now drops the handlers where they wait, as a kill would

    run_twin(twin_app, crashed_during_the_lookup)
    assert not slack_api.posted()
    slack_api.release("users.info")

    async def restarted(adapter: SlackAdapter, http: Any) -> list[dict[str, Any]]:
        return await slack_api.wait_posted(3)

    replies = run_twin(twin_app, restarted)
    assert [f"question number {n}" in reply["text"] for n, reply in zip((1, 2, 3), replies, strict=True)] == [True] * 3
    ids = [f"D0BOTEVE:17357328{10 + n}.000100" for n in (1, 2, 3)]
    assert {state(twin_app, message_id) for message_id in ids} == {DELIVERED}
    stored = twin_app.store.by_source(twin_app.twin.id, "slack", ids[0])
    assert stored is not None and stored.sender_name == "Eve Moneypenny"  # the name followed the message
