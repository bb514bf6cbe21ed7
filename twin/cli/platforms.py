"""`twin doctor`: checks each configured chat platform's credentials and connectivity, in plain words."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import typer

from twin.cli.common import out

if TYPE_CHECKING:  # the platforms load when the command runs: `twin --help` starts fast
    from twin.settings import Settings

CHECK_TIMEOUT = 15.0  # seconds for one platform to answer
Check = Callable[["Settings"], Awaitable[str]]


async def check_telegram(settings: Settings) -> str:
    """What the Bot API says about the token: the bot's @username, or TelegramSetupError."""
    import httpx

    from bots.telegram import check_bot

    assert settings.telegram_token is not None
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
        username = await check_bot(client, settings.telegram_api_url, settings.telegram_token.get_secret_value())
    return f"{username} at {settings.telegram_api_url.rstrip('/')}, {settings.telegram_mode}"


def platform_checks() -> dict[str, Check]:
    """The check of each platform, by name."""
    from twin.platform_matrix import check_matrix
    from twin.platform_slack import check_slack

    return {"telegram": check_telegram, "slack": check_slack, "matrix": check_matrix}


async def run_checks(settings: Settings) -> dict[str, str | None]:
    """Each configured platform: None when it works, else what is wrong; prints one line per platform."""
    from bots.base import PlatformSetupError  # each platform's setup error is one
    from twin.platforms import configured_platforms

    checks = platform_checks()
    problems: dict[str, str | None] = {}
    for name in configured_platforms(settings):
        try:
            detail = await checks[name](settings)
        except PlatformSetupError as error:
            problems[name] = str(error)
            out.print(f"✗ {name}: {error}", style="red")
        else:
            problems[name] = None
            out.print(f"✓ {name}: {detail}", style="green")
    return problems


def doctor() -> None:
    """Check each configured chat platform: token accepted, server reachable. Exit code 1 if anything is wrong."""
    from twin.cli.common import load_settings
    from twin.platforms import configured_platforms

    settings = load_settings()
    if not configured_platforms(settings):
        out.print("No chat platform is configured (set TWIN_TELEGRAM_TOKEN, TWIN_SLACK_BOT_TOKEN or "
                  "TWIN_MATRIX_HOMESERVER); `twin run` uses the console.")
        return
    problems = asyncio.run(run_checks(settings))
    if any(problems.values()):
        raise typer.Exit(1)
