"""Slack in the composition root: the adapter `twin run` starts and the check `twin doctor` runs, from settings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from twin.settings import Settings

if TYPE_CHECKING:  # built only when Slack runs: `twin --help` does not pay for bolt
    from bots.slack import SlackAdapter
    from core.pipeline import Pipeline
    from twin.app import TwinApp

SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")  # members are U..., Enterprise Grid members W...


def slack_owner_ids(owner_ids: list[str]) -> frozenset[str]:
    """The owner's Slack member ids among settings' owner ids ('slack:U01ADA', or a bare 'U01ADA')."""
    found = set()
    for entry in owner_ids:
        platform, _, account = entry.rpartition(":")
        if platform == "slack" or (platform == "" and SLACK_USER_ID.fullmatch(account)):
            found.add(account)
    return frozenset(found)


def slack_secrets(settings: Settings) -> list[str]:
    """The Slack tokens and signing secret that are set; kept out of every log line."""
    values = (settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token)
    return [value.get_secret_value() for value in values if value is not None]


def build_slack(settings: Settings, app: TwinApp, pipeline: Pipeline) -> SlackAdapter:
    """The Slack adapter for these settings, feeding this pipeline."""
    from bots.logs import redact_in_logs
    from bots.slack import PLATFORM, SlackAdapter, SlackOptions, build_app, build_client

    assert settings.slack_bot_token is not None
    for secret in slack_secrets(settings):
        redact_in_logs(secret)
    signing = settings.slack_signing_secret
    options = SlackOptions(
        owner_name=app.twin.display_name, owner_user_ids=slack_owner_ids(settings.owner_ids),
        host=settings.slack_host, port=settings.slack_port, path=settings.slack_path,
        app_token=settings.slack_app_token.get_secret_value() if settings.slack_app_token else None,
    )
    client = build_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
    app_ = build_app(client, signing.get_secret_value() if signing else None)
    adapter = SlackAdapter(app_, pipeline.handle, pipeline.drafts, pipeline.audiences, options, ledger=pipeline)
    if adapter.shows_drafts:  # draft mode answers Slack messages as drafts only then
        pipeline.drafts.show_on(PLATFORM, adapter)
    return adapter


async def check_slack(settings: Settings) -> str:
    """What auth.test says about the bot token: the bot and its workspace, or SlackSetupError."""
    from bots.slack import build_client, check_auth

    assert settings.slack_bot_token is not None
    client = build_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url, timeout=15, retries=1)
    detail = await check_auth(client)
    mode = "Socket Mode" if settings.slack_app_token else f"events at {settings.slack_host}:{settings.slack_port}"
    return f"{detail}, {mode}"
