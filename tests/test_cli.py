"""The `twin` command end to end, in-process, on a temporary data directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.testing import RecordingLLM

MESSAGES = [
    {"id": 1, "chat": "family", "sender": "Ada", "text": "Our cat Tom knocked over the aquarium again",
     "timestamp": "2024-03-01T09:00:00Z"},
    {"id": 2, "chat": "family", "sender": "Bob", "text": "We should book the ferry to Hydra for June",
     "timestamp": "2024-03-01T09:05:00+02:00", "visibility": "public"},
    {"id": 1, "chat": "work", "sender": "Cleo", "text": "The quarterly report draft is in the shared folder",
     "timestamp": "2024-03-02T14:00:00Z"},
]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def registered_commands() -> list[list[str]]:
    """Every command of the `twin` app, groups expanded, read from what the app registers."""
    import typer.main

    def walk(group, prefix: list[str]) -> list[list[str]]:  # noqa: ANN001 - a click group
        found = []
        for name, command in group.commands.items():
            found += walk(command, [*prefix, name]) if hasattr(command, "commands") else [[*prefix, name]]
        return found
    return walk(typer.main.get_command(app), [])


def test_every_command_has_help(runner: CliRunner) -> None:
    commands = registered_commands()
    assert {"import", "train", "eval"} <= {c[0] for c in commands} and ["bench", "training"] in commands
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_bench_training_asks_the_teacher_only_when_told_and_writes_reports_where_told(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.training

    calls: list[dict] = []
    monkeypatch.setattr(bench.training, "run_training_bench", lambda **kwargs: calls.append(kwargs))
    assert runner.invoke(app, ["bench", "training", "--audience", "owner"]).exit_code == 0
    assert runner.invoke(app, ["bench", "training", "--audience", "owner", "--teacher", "--report", "r"]).exit_code == 0
    assert [(c["teacher"], c["audiences"], c["report_dir"]) for c in calls] == [(False, ("owner",), None),
                                                                               (True, ("owner",), Path("r"))]


def test_import_search_stats_and_reimport(runner: CliRunner, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "history.jsonl", MESSAGES)

    first = runner.invoke(app, ["import", str(source), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"path": str(source), "format": "jsonl", "added": 3, "duplicates": 0,
                                        "forgotten": 0, "rejected": 0}
    again = runner.invoke(app, ["import", str(source), "--json"])
    assert json.loads(again.stdout)["added"] == 0
    assert json.loads(again.stdout)["duplicates"] == 3

    found = runner.invoke(app, ["search", "ferry trip to the island", "--k", "1", "--json"])
    assert found.exit_code == 0, found.output
    [hit] = json.loads(found.stdout)
    assert hit["text"].startswith("We should book the ferry")
    assert hit["chat"] == "family" and hit["sender"] == "Bob" and hit["visibility"] == "public"
    assert hit["time"] == "2024-03-01T07:05:00+00:00"  # stored as UTC

    only_work = runner.invoke(app, ["search", "cat aquarium", "--chat", "work", "--json"])
    assert [r["chat"] for r in json.loads(only_work.stdout)] == ["work"]

    stats = json.loads(runner.invoke(app, ["stats", "--json"]).stdout)
    assert stats["l0"] == {"total": 3, "by_source": {"jsonl": 3}}
    assert stats["vectors"]["points"] == 3


def test_search_batch_answers_one_line_per_query(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(app, ["import", str(write_jsonl(tmp_path / "h.jsonl", MESSAGES))])
    queries = write_jsonl(tmp_path / "q.jsonl", [{"query": "report draft", "k": 1},
                                                 {"query": "cat", "k": 2, "chat": "family"}])
    result = runner.invoke(app, ["search", "--batch", str(queries)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["report draft", "cat"]
    assert lines[0]["results"][0]["chat"] == "work" and len(lines[0]["results"]) == 1
    assert {r["chat"] for r in lines[1]["results"]} == {"family"}


def test_search_reads_a_time_in_the_query_from_when_it_is_asked(runner: CliRunner, tmp_path: Path) -> None:
    notes = [{"id": 1, "chat": "notes", "sender": "Ada", "text": "Baked sourdough bread, a great sourdough loaf",
              "timestamp": "2024-01-10T09:00:00Z"},
             {"id": 2, "chat": "notes", "sender": "Ada", "text": "Baked sourdough bread",
              "timestamp": "2024-03-18T09:00:00Z"}]
    runner.invoke(app, ["import", str(write_jsonl(tmp_path / "n.jsonl", notes))])
    query = "What sourdough bread did I bake two weeks ago?"
    queries = write_jsonl(tmp_path / "q.jsonl", [{"query": query, "k": 1},
                                                 {"query": query, "k": 1, "asked_at": "2024-04-01T12:00:00Z"}])
    result = runner.invoke(app, ["search", "--batch", str(queries)])
    assert result.exit_code == 0, result.output
    first = [json.loads(line)["results"][0]["text"] for line in result.stdout.splitlines()]
    assert first == [notes[0]["text"], notes[1]["text"]]  # asked now, two weeks ago holds neither: words decide
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"query": query, "asked_at": "last Tuesday"}])
    result = runner.invoke(app, ["search", "--batch", str(bad)])
    assert result.exit_code == 2 and "bad.jsonl: line 1: Invalid isoformat string" in result.stderr


def test_malformed_file_names_the_line_and_imports_nothing(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(app, ["import", str(write_jsonl(tmp_path / "good.jsonl", MESSAGES))])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**MESSAGES[0], "id": 7}) + "\n" + '{"id": 8, "chat": "x"\n', encoding="utf-8")

    result = runner.invoke(app, ["import", str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl: line 2: invalid JSON" in result.stderr
    assert json.loads(runner.invoke(app, ["stats", "--json"]).stdout)["l0"]["total"] == 3

    skipped = runner.invoke(app, ["import", str(bad), "--skip-invalid", "--json"])
    assert json.loads(skipped.stdout)["added"] == 1
    assert json.loads(skipped.stdout)["rejected"] == 1


def test_invalid_settings_get_a_clear_message(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "mysql://nope")
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 2
    assert "TWIN_DATABASE_URL must be a sqlite:// or postgresql:// URL" in result.stderr


def test_search_needs_a_query_or_a_batch(runner: CliRunner) -> None:
    result = runner.invoke(app, ["search"])
    assert result.exit_code == 2
    assert "give a QUERY or --batch FILE" in result.stderr


def test_reindex_rebuilds_from_the_database(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(app, ["import", str(write_jsonl(tmp_path / "h.jsonl", MESSAGES))])
    vectors = tmp_path / "data" / "vectors"
    import shutil

    shutil.rmtree(vectors)  # a lost index is rebuilt from SQL, the source of truth
    result = runner.invoke(app, ["reindex"])
    assert result.exit_code == 0, result.output
    assert "reindexed 3 items" in result.stdout
    found = json.loads(runner.invoke(app, ["search", "quarterly report", "--k", "1", "--json"]).stdout)
    assert found[0]["chat"] == "work"


@pytest.fixture
def recording_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingLLM]:
    """A model server that answers with the prompt it got; the twin is pointed at it."""
    with RecordingLLM() as server:
        monkeypatch.setenv("TWIN_LLM_URL", server.url)
        monkeypatch.setenv("TWIN_OWNER_NAME", "Ada")
        yield server


def test_run_answers_piped_lines_through_the_console_channel(
    runner: CliRunner, tmp_path: Path, recording_llm: RecordingLLM
) -> None:
    runner.invoke(app, ["import", str(write_jsonl(tmp_path / "h.jsonl", MESSAGES))])
    result = runner.invoke(app, ["run"], input="what did Tom knock over?\n/help\n")
    assert result.exit_code == 0, result.output
    assert "3 items in memory" in result.output
    assert "Our cat Tom knocked over the aquarium again" in result.stdout  # memory reached the prompt
    assert "/introduce" in result.stdout
    assert len(recording_llm.requests) == 1  # /help needs no model


def test_ask_json_reports_mode_model_and_memory_ids(
    runner: CliRunner, tmp_path: Path, recording_llm: RecordingLLM
) -> None:
    runner.invoke(app, ["import", str(write_jsonl(tmp_path / "h.jsonl", MESSAGES))])
    found = json.loads(runner.invoke(app, ["search", "quarterly report", "--k", "1", "--json"]).stdout)
    owner = json.loads(runner.invoke(app, ["ask", "where is the quarterly report?", "--json"]).stdout)
    assert owner["mode"] == "assistant" and owner["model"] == "base" and owner["audience"] == "owner"
    assert found[0]["id"] in owner["context_ids"]
    other = json.loads(runner.invoke(app, ["ask", "where is the quarterly report?", "--as", "cleo", "--json"]).stdout)
    assert other["mode"] == "on_behalf" and other["audience"] == "stranger"
    assert found[0]["id"] not in other["context_ids"]  # a private item is not retrieved for a stranger
    assert "quarterly report draft" not in other["text"]


def test_people_trust_makes_a_stranger_a_contact(
    runner: CliRunner, tmp_path: Path, recording_llm: RecordingLLM
) -> None:
    runner.invoke(app, ["import", str(write_jsonl(tmp_path / "h.jsonl", MESSAGES)), "--visibility", "contacts"])
    assert json.loads(runner.invoke(app, ["ask", "ferry?", "--as", "bob", "--json"]).stdout)["audience"] == "stranger"
    ambiguous = runner.invoke(app, ["people", "trust", "bob", "contact"])  # Bob of the import, bob of the console
    assert ambiguous.exit_code == 1 and "matches 2 people" in ambiguous.output
    result = runner.invoke(app, ["people", "trust", "console:bob", "contact"])
    assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(app, ["people", "list", "--json"]).stdout)
    bob = next(person for person in listed if person["name"] == "bob")
    assert bob["trust"] == "contact" and bob["accounts"] == ["console:bob"]
    answer = json.loads(runner.invoke(app, ["ask", "when is the ferry?", "--as", "bob", "--json"]).stdout)
    assert answer["audience"] == "contact" and "book the ferry to Hydra" in answer["text"]
    assert runner.invoke(app, ["people", "trust", "nobody-here", "contact"]).exit_code == 1


def test_as_cannot_pose_as_the_owner_console_account(runner: CliRunner, recording_llm: RecordingLLM) -> None:
    result = runner.invoke(app, ["ask", "hi", "--as", "@owner"])
    assert result.exit_code == 2 and "--as needs a plain name" in result.output


def test_me_marks_the_owners_messages_as_outbound(runner: CliRunner, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "h.jsonl", MESSAGES)
    assert runner.invoke(app, ["import", str(source), "--me", "Ada"]).exit_code == 0
    found = json.loads(runner.invoke(app, ["search", "cat aquarium ferry report", "--k", "3", "--json"]).stdout)
    directions = {hit["sender"]: hit["direction"] for hit in found}
    assert directions == {"Ada": "out", "Bob": "in", "Cleo": "in"}


def test_search_finds_a_remembered_fact_in_every_layer_search(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(app, ["import", str(write_jsonl(tmp_path / "h.jsonl", MESSAGES))])
    assert runner.invoke(app, ["remember", "I am allergic to walnuts"]).exit_code == 0

    def search(*args: str) -> list[dict]:
        result = runner.invoke(app, ["search", "walnut allergy", "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    every = search()
    facts = [hit for hit in every if hit["layer"] == "l1"]
    assert [fact["text"] for fact in facts] == ["I am allergic to walnuts"]
    assert facts[0]["valid_to"] is None and facts[0]["sources"] == [] and facts[0]["visibility"] == "private"
    assert {hit["layer"] for hit in every} == {"l0", "l1"}
    assert {hit["layer"] for hit in search("--layer", "l0")} == {"l0"}
    assert [hit["text"] for hit in search("--layer", "l1")] == ["I am allergic to walnuts"]
    assert [hit["layer"] for hit in search("--audience", "stranger")] == ["l0"]  # the public message only

    queries = write_jsonl(tmp_path / "q.jsonl", [{"query": "walnuts", "k": 3}])
    [line] = [json.loads(row) for row in runner.invoke(app, ["search", "--batch", str(queries)]).stdout.splitlines()]
    assert line["results"][0]["layer"] == "l1" and {r["layer"] for r in line["results"][1:]} == {"l0"}


@pytest.mark.slow
def test_eval_missed_lists_what_the_model_got_wrong_as_plain_text(
    runner: CliRunner, bundled_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.facts import FactStore, NewFact
    from storage.models import FactOrigin, Visibility
    from storage.training import TrainingStore
    from training.cards import card_for
    from training.probes import owner_probes, sync
    from twin.app import open_twin
    from twin.settings import Settings

    monkeypatch.setenv("TWIN_LLM_MODEL", str(bundled_model_dir))
    monkeypatch.setenv("TWIN_OWNER_NAME", "Ada")
    with open_twin(Settings()) as twin:  # a probe set as `twin train` stores it, of a fact the base cannot know
        fact = FactStore(twin.store.engine).add(twin.twin.id, NewFact(
            "Ada's [b]ferret[/b] is called Zorblax.", origin=FactOrigin.owner, visibility=Visibility.private))
        card = card_for(fact)
        sync(TrainingStore(twin.store.engine), twin.twin.id, "owner",
             owner_probes("Ada", [card], [], {fact.id: ["Who [i]naps[/i] in my sock drawer?"]}))
    shown = runner.invoke(app, ["eval", "--adapter", "base", "--missed"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    # the base model never says "Zorblax": its three recall probes are listed, the fact's text printed as it is
    assert "What's my [b]ferret[/b], do you remember?" in shown.stdout
    assert "Could you look up my [b]ferret[/b] for me?" in shown.stdout
    assert "Who [i]naps[/i] in my sock drawer?" in shown.stdout and "Zorblax" in shown.stdout
    listed = shown.stdout.split("probes missed")[1]
    assert listed.count("recall_topic") == 2 and listed.count("recall_indirect") == 1
    assert "missed" not in json.loads(runner.invoke(app, ["eval", "--adapter", "base", "--json"]).stdout)
