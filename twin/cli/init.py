"""`twin init`: the first settings, asked for (or given as options), each checked, written as a TOML file.

The file is TWIN_CONFIG_FILE, else `<data dir>/twin.toml`, which the settings read beneath the environment.
Every answer is checked before anything is written: a model endpoint must answer /v1/models (and serve the
model named), a Telegram token must pass getMe. Secrets go into the file (readable by its owner only)."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer

from twin.cli.common import console, fail, out

CHECK_TIMEOUT = 10.0  # seconds for an endpoint or the Bot API to answer


class ModelChoice(StrEnum):
    bundled = "bundled"  # SmolLM2-135M on the local vLLM: for trying the twin out
    local = "local"  # an OpenAI-compatible server on this machine or the network (Ollama, vLLM, llama.cpp)
    hosted = "hosted"  # a hosted OpenAI-compatible endpoint, with its key


def toml_value(value: Any) -> str:
    """A TOML value: strings and lists of strings as JSON writes them (valid TOML basic strings and arrays)."""
    return json.dumps(value, ensure_ascii=False)


def settings_toml(values: dict[str, Any]) -> str:
    """The settings as TOML lines, in the order given."""
    lines = ["# Written by `twin init`; the environment (TWIN_*) and .env override what is here."]
    lines += [f"{name} = {toml_value(value)}" for name, value in values.items() if value not in (None, "", [])]
    return "\n".join(lines) + "\n"


def check_endpoint(url: str, key: str | None, served: str | None) -> str:
    """The model name to use at this OpenAI-compatible endpoint; typer.BadParameter when it does not answer."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=CHECK_TIMEOUT)
        names = [entry["id"] for entry in response.json()["data"]] if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        raise typer.BadParameter(f"{url} does not answer /models like an OpenAI-compatible API: {error}",
                                 param_hint="--llm-url") from None
    if names is None:
        hint = " (is --llm-api-key right?)" if response.status_code in (401, 403) else ""
        raise typer.BadParameter(f"{url}/models answered HTTP {response.status_code}{hint}", param_hint="--llm-url")
    if served is None and names:
        return names[0]
    if served not in names:
        raise typer.BadParameter(f"{url} serves {', '.join(names) or 'no model'}, not {served!r}",
                                 param_hint="--llm-model-name")
    return served


def check_telegram(token: str, api_url: str) -> str:
    """The bot's @username; typer.BadParameter when the Bot API refuses the token."""
    import asyncio

    import httpx

    from bots.telegram import TelegramSetupError, check_bot

    async def ask() -> str:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
            return await check_bot(client, api_url, token)

    try:
        return asyncio.run(ask())
    except TelegramSetupError as error:
        raise typer.BadParameter(str(error), param_hint="--telegram-token") from None


def _ask(value: str | None, question: str, *, secret: bool = False, default: str | None = None) -> str | None:
    """The option's value, else (in a terminal) the answer to the question, else the default."""
    if value is not None or not sys.stdin.isatty():
        return value if value is not None else default
    answer = typer.prompt(question, default=default or "", hide_input=secret, show_default=not secret, err=True)
    return answer.strip() or None


def _model_settings(model: ModelChoice, url: str | None, key: str | None, name: str | None) -> dict[str, Any]:
    if model is ModelChoice.bundled:
        return {"llm_model": "bundled"}
    url = _ask(url, "The model server's /v1 URL (e.g. http://localhost:11434/v1 for Ollama)")
    if not url:
        raise typer.BadParameter("a local or hosted model needs its /v1 URL", param_hint="--llm-url")
    if model is ModelChoice.hosted:
        key = _ask(key, "Its API key", secret=True)
    served = check_endpoint(url, key, _ask(name, "The model's name there (empty: the first it serves)"))
    console.print(f"✓ {url} answers and serves {served}", style="green")
    return {"llm_url": url, "llm_api_key": key, "llm_served_name": served}


def init(
    owner_name: Annotated[str | None, typer.Option(help="Your name, as the twin calls you.")] = None,
    owner_id: Annotated[list[str] | None, typer.Option(
        "--owner-id", help="Your id on a platform (repeatable), e.g. telegram:12345 or slack:U01ADA.")] = None,
    model: Annotated[ModelChoice | None, typer.Option(
        help="bundled (135M, for trying out), local (an OpenAI-compatible server) or hosted (with a key).")] = None,
    llm_url: Annotated[str | None, typer.Option(help="The model server's /v1 URL (local or hosted).")] = None,
    llm_api_key: Annotated[str | None, typer.Option(help="The hosted endpoint's API key.")] = None,
    llm_model_name: Annotated[str | None, typer.Option(help="The model's name at the endpoint.")] = None,
    telegram_token: Annotated[str | None, typer.Option(help="A bot token from @BotFather (checked).")] = None,
    telegram_api_url: Annotated[str, typer.Option(help="The Bot API server.")] = "https://api.telegram.org",
    slack_bot_token: Annotated[str | None, typer.Option(help="xoxb-... (with --slack-app-token).")] = None,
    slack_app_token: Annotated[str | None, typer.Option(help="xapp-... for Socket Mode.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a settings file that exists.")] = False,
) -> None:
    """Write the first settings: your name and ids, the model to talk with, the platforms; each answer checked."""
    from twin.settings import settings_file

    path = settings_file()
    if path.exists() and not force:
        fail(f"{path} exists: edit it, or run `twin init --force` to write it again", code=2)
    try:
        values = _answers(owner_name, owner_id, model, llm_url, llm_api_key, llm_model_name, telegram_token,
                          telegram_api_url, slack_bot_token, slack_app_token)
    except typer.BadParameter as error:
        fail(f"{error.param_hint}: {error.message}; nothing was written" if error.param_hint else error.message, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may hold tokens
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(settings_toml(values))
    out.print(f"wrote {path}; start the twin with `twin run`", highlight=False)


def _answers(owner_name: str | None, owner_ids: list[str] | None, model: ModelChoice | None, llm_url: str | None,
             llm_api_key: str | None, llm_model_name: str | None, telegram_token: str | None, telegram_api_url: str,
             slack_bot_token: str | None, slack_app_token: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {"owner_name": _ask(owner_name, "Your name", default="Owner")}
    ids = owner_ids or [part.strip() for part in (_ask(None, "Your platform ids, comma-separated (e.g. "
                                                       "telegram:12345), or empty") or "").split(",")]
    values["owner_ids"] = [entry for entry in ids if entry]
    choice = model or ModelChoice(_ask(None, "Model: bundled (135M, for trying out), local or hosted",
                                       default="bundled"))
    values |= _model_settings(choice, llm_url, llm_api_key, llm_model_name)
    token = _ask(telegram_token, "A Telegram bot token from @BotFather (empty: no Telegram)", secret=True)
    if token:
        console.print(f"✓ Telegram: {check_telegram(token, telegram_api_url)}", style="green")
        values |= {"telegram_token": token, "telegram_api_url": telegram_api_url}
    values |= {"slack_bot_token": slack_bot_token, "slack_app_token": slack_app_token}
    return values
