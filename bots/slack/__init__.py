"""Slack: events into core messages, replies into Web API calls (slack-bolt's AsyncApp)."""

from bots.slack.adapter import SlackAdapter, SlackOptions, build_app
from bots.slack.health import SlackSetupError, check_auth
from bots.slack.inbound import PLATFORM, ReplyTarget, command_to_inbound, reply_target, to_inbound
from bots.slack.outbound import SlackDeliveryError, build_client, marked, post

__all__ = [
    "PLATFORM", "ReplyTarget", "SlackAdapter", "SlackDeliveryError", "SlackOptions",
    "SlackSetupError", "build_app", "build_client", "check_auth", "command_to_inbound", "marked", "post",
    "reply_target", "to_inbound",
]
