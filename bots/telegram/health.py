"""Whether the bot token and the Bot API server work: one getMe, explained in plain words."""

from __future__ import annotations

import httpx

from bots.base import PlatformSetupError


class TelegramSetupError(PlatformSetupError):
    """The token or the Bot API server does not work; the message says what to fix."""


async def check_bot(client: httpx.AsyncClient, api_url: str, token: str) -> str:
    """The bot's @username; TelegramSetupError when the server is unreachable or refuses the token."""
    api = api_url.rstrip("/")
    try:
        response = await client.get(f"{api}/bot{token}/getMe")
    except httpx.HTTPError as error:
        detail = str(error).replace(token, "<token>") or type(error).__name__
        raise TelegramSetupError(f"the Telegram Bot API at {api} is unreachable: {detail}") from error
    if response.status_code in (401, 404):
        hint = "" if response.status_code == 401 else f": is it the whole token from @BotFather, and {api} a Bot API?"
        raise TelegramSetupError(f"Telegram rejected the token ({response.status_code}){hint}")
    try:
        body = response.json()
    except ValueError as error:
        raise TelegramSetupError(f"{api} did not answer like a Bot API (HTTP {response.status_code})") from error
    if response.status_code != 200 or not body.get("ok"):
        raise TelegramSetupError(f"getMe failed at {api}: HTTP {response.status_code} {body.get('description', '')}")
    return f"@{body['result'].get('username', '?')}"
