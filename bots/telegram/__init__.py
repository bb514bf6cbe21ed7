"""Telegram: updates into core messages, replies into Bot API calls (python-telegram-bot 22)."""

from bots.telegram.adapter import BusinessConnections, TelegramAdapter, TelegramOptions, build_application
from bots.telegram.health import TelegramSetupError, check_bot
from bots.telegram.inbound import (
    PLATFORM,
    EditedMessage,
    ReplyTarget,
    business_connection_of,
    reply_target,
    to_edit,
    to_inbound,
)
from bots.telegram.outbound import RetryPolicy, TelegramDeliveryError, split_message

__all__ = [
    "PLATFORM", "BusinessConnections", "EditedMessage", "ReplyTarget", "RetryPolicy", "TelegramAdapter",
    "TelegramDeliveryError", "TelegramOptions", "TelegramSetupError", "build_application",
    "business_connection_of", "check_bot", "reply_target", "split_message", "to_edit", "to_inbound",
]
