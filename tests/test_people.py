"""One person across platforms: the owner links their accounts, a contact seen twice is merged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app


@pytest.fixture
def runner(twin_env: Path) -> CliRunner:
    return CliRunner()


def ask(runner: CliRunner, text: str, as_name: str) -> dict:
    result = runner.invoke(app, ["ask", text, "--as", as_name, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def people(runner: CliRunner) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads(runner.invoke(app, ["people", "list", "--json"]).stdout)}


def test_a_contact_seen_under_two_accounts_is_merged_into_one_trusted_person(runner: CliRunner) -> None:
    ask(runner, "hi, Bob here", "bob")
    ask(runner, "hello, it's Robert", "robert")
    assert runner.invoke(app, ["people", "trust", "console:bob", "contact"]).exit_code == 0
    assert ask(runner, "hello again", "robert")["audience"] == "stranger"
    result = runner.invoke(app, ["people", "merge", "console:bob", "console:robert"])
    assert result.exit_code == 0, result.output
    listed = people(runner)
    assert "robert" not in listed and listed["bob"]["accounts"] == ["console:bob", "console:robert"]
    assert ask(runner, "and now?", "robert")["audience"] == "contact"  # trusted as the person he is


def test_the_owner_links_another_account_of_theirs(runner: CliRunner) -> None:
    assert ask(runner, "what do you know about me?", "ada-laptop")["audience"] == "stranger"
    result = runner.invoke(app, ["people", "link", "owner", "console:ada-laptop"])
    assert result.exit_code == 0, result.output
    assert ask(runner, "what do you know about me?", "ada-laptop")["audience"] == "owner"
    assert runner.invoke(app, ["people", "link", "owner", "no-colon"]).exit_code == 2
    ask(runner, "hi, Bob here", "bob")
    refused = runner.invoke(app, ["people", "merge", "console:bob", "console:ada-laptop"])  # bob would absorb Ada
    assert refused.exit_code == 1 and "the owner is kept" in str(refused.exception)
