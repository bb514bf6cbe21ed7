"""Posting once across restarts: each part the twin posts carries message metadata naming the message it answers,
so after a crash between 'Slack accepted it' and 'the ledger marked it delivered' the restart looks in the channel
(or thread) and posts only the parts that are missing. Slash commands a crash left unanswered lost their
response_url: their answer goes as an ephemeral message instead."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.inbound import ReplyTarget
from bots.slack.outbound import EVENT_TYPE, MESSAGE_LIMIT, SlackDeliveryError, call, post
from bots.text import split_text

log = logging.getLogger(__name__)
SLACK_CLOCK = timedelta(seconds=1)  # replies are looked for after the message's time, less this margin
PAGES = 5  # of 200 messages each, newer than the message answered: a reply is found long before that


async def post_once(client: AsyncWebClient, target: ReplyTarget, text: str, source_id: str, since: datetime,
                    resent: bool) -> None:
    """Post the reply to `source_id`, each part tagged. A reply resent after a crash may be in Slack already: then
    only the parts Slack does not have go out."""
    there = await parts_in_slack(client, target, source_id, since) if resent else frozenset()
    if there:
        log.info("Slack: %d parts of the reply to %s were posted before the restart", len(there), source_id)
    await post(client, target, text, answering=source_id, skip=there)


async def answer_privately(client: AsyncWebClient, channel: str, user: str, text: str, source_id: str,
                           since: datetime) -> None:
    """An ephemeral answer to the user in the channel, or (where Slack refuses that, e.g. a channel the bot is not
    in) a message in their DM with the bot. Ephemeral messages cannot be read back: at least once."""
    try:
        for part in split_text(text, MESSAGE_LIMIT):
            await call(client.chat_postEphemeral(channel=channel, user=user, text=part))
    except SlackDeliveryError as error:
        log.warning("Slack: no ephemeral answer to %s in %s (%s); sending it to their DM", source_id, channel, error)
        await post_once(client, ReplyTarget(channel=user), text, source_id, since, resent=True)


async def parts_in_slack(client: AsyncWebClient, target: ReplyTarget, source_id: str, since: datetime
                         ) -> frozenset[int]:
    """The parts of the reply to `source_id` already posted where the reply goes (messages after `since`). A
    lookup Slack refuses (a missing *:history scope) finds nothing: the reply goes out again, at least once."""
    try:
        channel = await _channel_id(client, target.channel)
        since -= SLACK_CLOCK
        found: set[int] = set()
        cursor = None
        for _ in range(PAGES):
            query = {"channel": channel, "oldest": f"{since.timestamp():.6f}", "limit": 200,
                     "include_all_metadata": True, "cursor": cursor}
            if target.thread_ts:
                page = await call(client.conversations_replies(ts=target.thread_ts, **query))
            else:
                page = await call(client.conversations_history(**query))
            found.update(_parts(page.get("messages") or [], source_id))
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                break
        return frozenset(found)
    except SlackDeliveryError as error:
        log.warning("Slack: could not look for the reply to %s already posted (%s); sending it again",
                    source_id, error)
        return frozenset()


async def _channel_id(client: AsyncWebClient, channel: str) -> str:
    """A channel id; for a user id (replies to DMs the owner received go to the bot's DM) that DM's id."""
    if not channel.startswith(("U", "W")):
        return channel
    opened = await call(client.conversations_open(users=channel))
    return str((opened.get("channel") or {}).get("id") or channel)


def _parts(messages: list[dict[str, Any]], source_id: str) -> set[int]:
    found = set()
    for message in messages:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == EVENT_TYPE and payload.get("source_id") == source_id:
            found.add(int(payload.get("part", 0)))
    return found
