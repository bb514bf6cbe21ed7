"""Whether the bot token and the Web API work: one auth.test, explained in plain words."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bots.base import PlatformSetupError

HINTS = {
    "invalid_auth": "Slack rejected the bot token (invalid_auth): use the Bot User OAuth Token (xoxb-...)",
    "not_authed": "no bot token was sent (not_authed): set TWIN_SLACK_BOT_TOKEN",
    "account_inactive": "the token belongs to a deleted user or an uninstalled app (account_inactive): reinstall it",
    "token_revoked": "the bot token was revoked (token_revoked): reinstall the app and copy the new token",
}


class SlackSetupError(PlatformSetupError):
    """The token or the Web API does not work; the message says what to fix."""


async def check_auth(client: AsyncWebClient) -> str:
    """'@bot in workspace' from auth.test; SlackSetupError when Slack is unreachable or refuses the token."""
    api = client.base_url.rstrip("/")
    try:
        response = await client.auth_test()
    except SlackApiError as error:
        code = str(error.response.get("error", "")) if isinstance(error.response.data, dict) else ""
        raise SlackSetupError(HINTS.get(code, f"auth.test failed at {api}: HTTP {error.response.status_code} "
                                              f"{code or 'and no Slack error code'}")) from error
    except (SlackClientError, OSError) as error:
        raise SlackSetupError(f"the Slack Web API at {api} is unreachable: {type(error).__name__}: {error}") from error
    return f"@{response.get('user', '?')} in {response.get('team', '?')} ({api})"
