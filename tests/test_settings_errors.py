"""Settings mistakes through the `twin` command: one line per problem, the variable, an example, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def test_a_comma_separated_owner_list_is_accepted(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_OWNER_IDS", "user111")
    result = runner.invoke(app, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["l0"]["total"] == 0

    from twin.settings import Settings

    monkeypatch.setenv("TWIN_OWNER_IDS", "telegram:1, slack:U2,")
    assert Settings().owner_ids == ["telegram:1", "slack:U2"]
    monkeypatch.setenv("TWIN_OWNER_IDS", '["telegram:1", "slack:U2"]')  # JSON still works
    assert Settings().owner_ids == ["telegram:1", "slack:U2"]


def test_every_settings_mistake_is_one_line_naming_the_variable(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_OWNER_IDS", '["user111"')  # broken JSON: a SettingsError traceback before
    monkeypatch.setenv("TWIN_JOBS", "{extract_every: 30}")
    monkeypatch.setenv("TWIN_LLM_PORT", "eighty")
    monkeypatch.setenv("TWIN_EXPERTS", '{"gpt": {"url": "http://x/v1", "model": "m", "api_key": 42}}')
    result = runner.invoke(app, ["stats"])

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, lines
    by_variable = {line.split(":")[1].strip(): line for line in lines}
    assert set(by_variable) == {"TWIN_OWNER_IDS", "TWIN_JOBS", "TWIN_LLM_PORT", "TWIN_EXPERTS"}
    assert "not valid JSON" in by_variable["TWIN_OWNER_IDS"]
    assert "for example TWIN_OWNER_IDS=telegram:12345,slack:U01ADA" in by_variable["TWIN_OWNER_IDS"]
    assert 'for example TWIN_JOBS={"extract_every": 30' in by_variable["TWIN_JOBS"]
    assert "'eighty'" in by_variable["TWIN_LLM_PORT"] and "TWIN_LLM_PORT=8311" in by_variable["TWIN_LLM_PORT"]
    assert "gpt.api_key" in by_variable["TWIN_EXPERTS"] and "42" not in by_variable["TWIN_EXPERTS"]  # a secret
    assert "Traceback" not in result.output


def test_a_database_url_mistake_never_prints_the_password(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "mysql://twin:hunter2@db/twin")
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert "TWIN_DATABASE_URL must be a sqlite:// or postgresql:// URL, not mysql:" in line
    assert "hunter2" not in result.output


def test_a_broken_settings_file_is_one_line(runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    config = tmp_path / "twin.toml"
    config.write_text('owner_name = "Ada\n', encoding="utf-8")
    monkeypatch.setenv("TWIN_CONFIG_FILE", str(config))
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: TWIN_CONFIG_FILE:") and "not valid TOML" in line
