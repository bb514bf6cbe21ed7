"""Replies back into Bot API calls: split to Telegram's length limit, sent with retries and backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TypeVar

from telegram import Bot, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import BadRequest, ChatMigrated, NetworkError, RetryAfter, TelegramError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential

from bots.telegram.inbound import ReplyTarget
from bots.text import split_text

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096  # Telegram's longest text message, in UTF-16 code units
T = TypeVar("T")


class TelegramDeliveryError(Exception):
    """A reply Telegram did not accept, after the retries."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a Bot API call is retried."""

    attempts: int = 5
    base_delay: float = 0.5  # seconds before the first retry; doubles each time
    max_delay: float = 30.0
    max_retry_after: float = 120.0  # a longer flood wait is not sat out: the call fails instead


def split_message(text: str) -> list[str]:
    """The reply in parts Telegram accepts (4096 UTF-16 units each), cut at natural breaks."""
    return split_text(text, MESSAGE_LIMIT)


def is_transient(error: BaseException) -> bool:
    """Flood waits, timeouts and network or server errors pass; a rejected request (400) does not."""
    return isinstance(error, RetryAfter | NetworkError) and not isinstance(error, BadRequest)


def retry_after_seconds(error: RetryAfter) -> float:
    """The flood wait Telegram asked for, in seconds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # PTB 22 warns while int time periods are phased out
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential(multiplier=policy.base_delay, max=policy.max_delay)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryAfter):
            return retry_after_seconds(error)
        return backoff(state)

    return wait


def _stop(policy: RetryPolicy) -> Callable[[RetryCallState], bool]:
    attempts = stop_after_attempt(policy.attempts)

    def stop(state: RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        too_long = isinstance(error, RetryAfter) and retry_after_seconds(error) > policy.max_retry_after
        return too_long or attempts(state)

    return stop


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """The call's result, retried on transient errors; TelegramDeliveryError when it keeps failing."""
    retrying = AsyncRetrying(stop=_stop(policy), wait=_wait(policy), retry=retry_if_exception(is_transient),
                             reraise=True, before_sleep=_log_retry)
    try:
        async for attempt in retrying:
            with attempt:
                return await call()
    except TelegramError as error:
        raise TelegramDeliveryError(f"{type(error).__name__}: {error}") from error
    raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("Bot API call failed (%s: %s); attempt %d, retrying", type(error).__name__, error,
                state.attempt_number)


TYPING_EVERY = 4.0  # seconds; Telegram shows "typing…" for 5 s after each sendChatAction


@asynccontextmanager
async def typing_while(bot: Bot, target: ReplyTarget) -> AsyncIterator[None]:
    """Telegram shows the twin typing in the chat while the block runs (an answer being written)."""
    async def keep_typing() -> None:
        while True:
            try:
                await bot.send_chat_action(chat_id=target.chat_id, action=ChatAction.TYPING,
                                           business_connection_id=target.business_connection_id,
                                           message_thread_id=target.thread_id)
            except TelegramError as error:  # only a sign of life: the answer goes out either way
                log.debug("Telegram: no typing action in %s: %s", target.chat_id, error)
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def send_reply(bot: Bot, target: ReplyTarget, text: str, policy: RetryPolicy) -> list[int]:
    """Send the text to the target in as many messages as it takes; their message ids. A group that became a
    supergroup (ChatMigrated) gets the rest at its new chat id, once."""
    sent: list[int] = []
    migrated = False
    for index, part in enumerate(split_message(text)):
        quote = target.reply_to if index == 0 else None
        try:
            sent.append(await _send_part(bot, target, part, quote, policy))
        except TelegramDeliveryError as error:
            moved = error.__cause__
            if migrated or not isinstance(moved, ChatMigrated):
                raise
            log.warning("Telegram: chat %s became supergroup %s; sending there", target.chat_id, moved.new_chat_id)
            target, migrated = replace(target, chat_id=int(moved.new_chat_id)), True
            sent.append(await _send_part(bot, target, part, quote, policy))
    return sent


async def _send_part(bot: Bot, target: ReplyTarget, part: str, quote: int | None, policy: RetryPolicy) -> int:
    message = await with_retries(lambda: bot.send_message(
        chat_id=target.chat_id, text=part, business_connection_id=target.business_connection_id,
        message_thread_id=target.thread_id,
        # the quoted message may not exist in a migrated chat: sent without the quote then
        reply_parameters=ReplyParameters(quote, allow_sending_without_reply=True) if quote else None,
    ), policy)
    return message.message_id
