"""Replies back into Web API calls: a client that retries rate limits and server errors, replies split to size."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bots.slack.inbound import ReplyTarget
from bots.text import split_text

MESSAGE_LIMIT = 4000  # Slack truncates longer text and advises at most 4,000 characters per message
RETRIES = 4  # per Web API call, for each kind of transient failure
BACKOFF = BackoffRetryIntervalCalculator(backoff_factor=0.5)  # 0.5 s, 1 s, 2 s ... with jitter
EVENT_TYPE = "twin_reply"  # message metadata on every reply part: which message it answers, which part it is


class SlackDeliveryError(Exception):
    """A Web API call Slack did not accept, after the retries."""


def build_client(token: str, api_url: str, timeout: int = 30, retries: int = RETRIES) -> AsyncWebClient:
    """A Web API client at `api_url` that waits out 429 Retry-After and backs off on 5xx and dropped connections."""
    return AsyncWebClient(token=token, base_url=api_url.rstrip("/") + "/", timeout=timeout, retry_handlers=[
        AsyncRateLimitErrorRetryHandler(max_retry_count=retries),
        AsyncServerErrorRetryHandler(max_retry_count=retries, interval_calculator=BACKOFF),
        AsyncConnectionErrorRetryHandler(max_retry_count=retries, interval_calculator=BACKOFF),
    ])


def marked(text: str, owner_name: str) -> str:
    """A reply the twin posts for the owner, marked so nobody takes it for the owner's own words."""
    return f"_({owner_name}'s twin, answering while {owner_name} is away)_\n{text}"


def reply_metadata(source_id: str, part: int) -> dict[str, Any]:
    """The metadata posted with one part of the reply to a message."""
    return {"event_type": EVENT_TYPE, "event_payload": {"source_id": source_id, "part": part}}


async def post(client: AsyncWebClient, target: ReplyTarget, text: str, answering: str | None = None,
               skip: frozenset[int] = frozenset(), **extra: Any) -> list[str]:
    """chat.postMessage, in as many messages as the text needs; the ts of each message posted. With `answering`
    (the message id it answers) each part carries reply metadata, and the parts in `skip` are not posted."""
    posted: list[str] = []
    try:
        for number, part in enumerate(split_text(text, MESSAGE_LIMIT)):
            if number in skip:
                continue
            if answering is not None:
                extra["metadata"] = reply_metadata(answering, number)
            response = await client.chat_postMessage(channel=target.channel, thread_ts=target.thread_ts, text=part,
                                                     unfurl_links=False, **extra)
            posted.append(str(response.get("ts")))
    except (SlackApiError, SlackClientError) as error:
        raise SlackDeliveryError(describe(error)) from error
    return posted


async def call(request: Awaitable[AsyncSlackResponse]) -> dict[str, Any]:
    """The response data of one Web API call; SlackDeliveryError when Slack refuses it."""
    try:
        response = await request
    except (SlackApiError, SlackClientError) as error:
        raise SlackDeliveryError(describe(error)) from error
    return dict(response.data) if isinstance(response.data, dict) else {}


def describe(error: Exception) -> str:
    """Slack's error code (e.g. 'channel_not_found'), else the error's text; never a token."""
    if isinstance(error, SlackApiError):
        return f"{error.response.status_code} {error.response.get('error', 'error')}"
    return f"{type(error).__name__}: {error}"
