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


async def post(client: AsyncWebClient, target: ReplyTarget, text: str, **extra: Any) -> list[str]:
    """chat.postMessage, in as many messages as the text needs; the ts of each message posted."""
    posted: list[str] = []
    try:
        for part in split_text(text, MESSAGE_LIMIT):
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
