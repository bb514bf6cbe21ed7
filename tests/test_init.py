"""`twin init` writes the first settings after checking each answer; the settings read the file it writes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from support import free_port
from telegram_server import TOKEN, BotAPIServer
from typer.testing import CliRunner

from twin.cli import app
from twin.settings import Settings
from twin.testing import RecordingLLM


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with no settings at all."""
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_init_checks_the_endpoint_and_the_token_then_the_settings_read_the_file(
    fresh: Path, llm: RecordingLLM, bot_api: BotAPIServer
) -> None:
    result = CliRunner().invoke(app, [
        "init", "--owner-name", "Ada", "--owner-id", "telegram:111111", "--model", "local", "--llm-url", llm.url,
        "--telegram-token", TOKEN, "--telegram-api-url", bot_api.url])
    assert result.exit_code == 0, result.output
    assert "serves base" in result.output and "@" in result.output  # the model's name, the bot's @username
    path = fresh / "twin.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the bot token
    settings = Settings()
    assert (settings.owner_name, settings.owner_ids, settings.llm_url) == ("Ada", ["telegram:111111"], llm.url)
    assert settings.llm_served_name == "base" and settings.telegram_token.get_secret_value() == TOKEN
    again = CliRunner().invoke(app, ["init", "--owner-name", "Bob"])
    assert again.exit_code == 2 and "--force" in again.output  # an existing file is not replaced by accident


def test_an_endpoint_that_does_not_answer_writes_nothing(fresh: Path) -> None:
    result = CliRunner().invoke(app, ["init", "--owner-name", "Ada", "--model", "local",
                                      "--llm-url", f"http://127.0.0.1:{free_port()}/v1"])
    assert result.exit_code == 2
    assert "--llm-url" in result.output and "nothing was written" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (fresh / "twin.toml").exists()


def test_a_model_the_endpoint_does_not_serve_is_named_with_those_it_does(fresh: Path, llm: RecordingLLM) -> None:
    result = CliRunner().invoke(app, ["init", "--model", "hosted", "--llm-url", llm.url, "--llm-api-key", "sk-x",
                                      "--llm-model-name", "gpt-9"])
    assert result.exit_code == 2 and "serves base, not 'gpt-9'" in result.output


def test_a_rejected_telegram_token_writes_nothing(fresh: Path, bot_api: BotAPIServer) -> None:
    result = CliRunner().invoke(app, ["init", "--model", "bundled", "--telegram-token", "123:wrong",
                                      "--telegram-api-url", bot_api.url])
    assert result.exit_code == 2 and "rejected the token" in result.output
    assert "123:wrong" not in result.output and not (fresh / "twin.toml").exists()
