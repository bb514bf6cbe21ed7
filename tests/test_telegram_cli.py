"""`twin doctor` and `twin run` with Telegram configured, against the Bot API test server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import free_port, wait_until
from telegram_server import EVE, TOKEN, BotAPIServer, private
from typer.testing import CliRunner

from twin.cli import app as cli
from twin.testing import RecordingLLM


@pytest.mark.parametrize(("token", "api", "code", "said"), [
    (TOKEN, "server", 0, "telegram: @ada_twin_bot"),
    ("123456789:AAH-revoked-token", "server", 1, "Telegram rejected the token (401)"),
    (TOKEN, "nothing", 1, "is unreachable"),
])
def test_doctor_says_plainly_what_is_wrong(
    bot_api: BotAPIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str, api: str, code: int,
    said: str,
) -> None:
    url = bot_api.url if api == "server" else f"http://127.0.0.1:{free_port()}"
    for name, value in {"DATA_DIR": str(tmp_path), "TELEGRAM_TOKEN": token, "TELEGRAM_API_URL": url}.items():
        monkeypatch.setenv(f"TWIN_{name}", value)
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == code, result.output
    assert said in result.output and token not in result.output
    if api == "nothing":
        assert url in result.output


def test_invalid_webhook_settings_are_explained_without_echoing_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"DATA_DIR": str(tmp_path), "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_MODE": "webhook",
                        "TELEGRAM_WEBHOOK_URL": "https://twin.example.org/tg",
                        "TELEGRAM_WEBHOOK_SECRET": "not allowed: spaces!"}.items():
        monkeypatch.setenv(f"TWIN_{name}", value)
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 2
    assert "TWIN_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters" in result.output
    assert TOKEN not in result.output and "not allowed: spaces!" not in result.output


# -- twin run -----------------------------------------------------------------------------------------------


def test_twin_run_serves_telegram_and_stops_cleanly_on_sigterm(
    bot_api: BotAPIServer, llm: RecordingLLM, tmp_path: Path
) -> None:
    env = os.environ | {"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": llm.url, "TWIN_OWNER_NAME": "Ada",
                        "TWIN_OWNER_IDS": '["telegram:111111"]', "TWIN_TELEGRAM_TOKEN": TOKEN,
                        "TWIN_TELEGRAM_API_URL": bot_api.url}
    twin = subprocess.Popen([sys.executable, "-m", "twin.cli", "run"], env=env, cwd=Path(__file__).parents[1],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: bool(bot_api.called("getUpdates")) or twin.poll() is not None, 120, "polling")
        update = bot_api.push(private("hello from a real process", EVE))
        wait_until(lambda: bool(bot_api.sent()), 30, "the reply")
        twin.send_signal(signal.SIGTERM)  # SIGINT takes the same path
        _, stderr = twin.communicate(timeout=30)
    finally:
        twin.kill()
    assert twin.returncode == 0, stderr
    assert "hello from a real process" in bot_api.sent()[0]["text"]
    assert bot_api.called("getUpdates")[-1]["offset"] == update["update_id"] + 1  # confirmed before exiting
    assert "Telegram: @ada_twin_bot is up" in stderr and TOKEN not in stderr
