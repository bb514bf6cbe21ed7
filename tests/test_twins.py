"""Many twins in one deployment: `twin twins create|list|delete`, `--twin NAME` / TWIN_TWIN on every command, a
settings file per twin, `twin run --twin NAME` serving that twin alone, and a delete that leaves no byte behind."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select
from typer.testing import CliRunner

from storage.database import create_database_engine
from storage.training import TrainingStore
from twin.cli import app
from twin.testing import RecordingLLM

ADA_SECRET, BEA_SECRET = "Zephyrine", "Quillimond"  # words that exist nowhere else, searched for byte by byte


def messages(chat: str, sender: str, secret: str) -> list[dict]:
    return [
        {"id": 1, "chat": chat, "sender": sender, "text": f"The {secret} lantern hangs in the hallway",
         "timestamp": "2024-03-01T09:00:00Z"},
        {"id": 2, "chat": chat, "sender": "Friend", "text": "Bring the lantern to the garden party",
         "timestamp": "2024-03-01T09:01:00Z"},
        {"id": 3, "chat": chat, "sender": sender, "text": f"Ask {secret} about the shed key",
         "timestamp": "2024-03-01T09:02:00Z"},
    ]


@pytest.fixture
def runner(twin_env: Path) -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str, code: int = 0, **kwargs: object):  # noqa: ANN201 - click's Result
    result = runner.invoke(app, list(args), **kwargs)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def two_twins(runner: CliRunner, twin_env: Path, tmp_path: Path) -> Path:
    """Ada's and Bea's twins in one data dir (one SQLite database, one vector index), each with its history."""
    invoke(runner, "twins", "create", "ada", "--owner-name", "Ada", "--owner-id", "telegram:111")
    invoke(runner, "twins", "create", "bea", "--owner-name", "Bea", "--owner-id", "telegram:222")
    for name, sender, secret in (("ada", "Ada", ADA_SECRET), ("bea", "Bea", BEA_SECRET)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(m) + "\n" for m in messages(f"{name}-home", sender, secret)), "utf-8")
        invoke(runner, "--twin", name, "import", str(path))
    return twin_env


def search(runner: CliRunner, twin: str, query: str, *extra: str) -> list[dict]:
    return json.loads(invoke(runner, "--twin", twin, "search", query, "--json", *extra).stdout)


def test_each_twin_has_its_own_settings_file_memory_and_figures(runner: CliRunner, two_twins: Path) -> None:
    path = two_twins / "twins" / "bea.json"
    assert json.loads(path.read_text()) == {"owner_ids": ["telegram:222"], "owner_name": "Bea"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it will hold platform secrets
    listed = json.loads(invoke(runner, "twins", "list", "--json").stdout)
    assert [(t["name"], t["owner"], t["items"]) for t in listed] == [("ada", "Ada", 3), ("bea", "Bea", 3)]
    assert [hit["text"] for hit in search(runner, "bea", BEA_SECRET)][:1] == [f"Ask {BEA_SECRET} about the shed key"]
    assert search(runner, "ada", BEA_SECRET, "--mode", "lexical") == []
    assert search(runner, "ada", "lantern", "--chat", "bea-home") == []
    stats = json.loads(invoke(runner, "--twin", "ada", "stats", "--json").stdout)
    assert stats["twin"] == "ada" and stats["l0"]["total"] == 3 and stats["vectors"]["points"] == 3
    invoke(runner, "twins", "create", "bea", code=1)  # exists already


def test_twin_env_and_the_files_own_values_beat_a_shared_environment(
    runner: CliRunner, two_twins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.cli import common
    from twin.settings import Settings
    from twin.tenants import settings_for_twin

    monkeypatch.setenv("TWIN_TELEGRAM_TOKEN", "123:shared-token")  # set for the single-twin setup
    monkeypatch.setenv("TWIN_OWNER_IDS", '["telegram:999"]')
    bea = settings_for_twin(Settings(), "bea")
    assert bea.telegram_token is None and bea.owner_ids == ["telegram:222"] and bea.owner == "bea"
    assert bea.matrix_store_path == two_twins / "twins" / "bea" / "matrix"  # its own encryption keys
    monkeypatch.setenv("TWIN_TWIN", "ada")
    stats = json.loads(invoke(runner, "stats", "--json").stdout)
    assert stats["twin"] == "ada" and common.selected_twin == "ada"
    assert "no twin named 'nobody'" in invoke(runner, "--twin", "nobody", "stats", code=2).output
    (two_twins / "twins" / "bea.json").write_text('{"owner_name": "Bea", "database_url": "sqlite:///x.db"}')
    said = invoke(runner, "--twin", "bea", "stats", code=2).output
    assert "bea.json: database_url cannot be set per twin" in said


def test_twin_run_serves_the_named_twin_alone(runner: CliRunner, two_twins: Path, llm: RecordingLLM) -> None:
    result = invoke(runner, "run", "--twin", "bea", input="where is the lantern?\n")
    assert "3 items in memory" in result.output
    [prompt] = llm.prompts()
    assert BEA_SECRET in prompt and "Bea" in prompt
    assert ADA_SECRET not in prompt and "Ada" not in prompt


def files_containing(folder: Path, needle: bytes) -> list[str]:
    return [str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file() and needle in f.read_bytes()]


def test_delete_removes_every_trace_of_one_twin_and_nothing_of_the_other(
    runner: CliRunner, two_twins: Path, tmp_path: Path
) -> None:
    invoke(runner, "--twin", "bea", "remember", f"{BEA_SECRET} keeps bees")
    invoke(runner, "--twin", "bea", "people", "trust", "Friend", "contact")
    database = create_database_engine(f"sqlite:///{two_twins / 'twin.db'}")
    training = TrainingStore(database)
    folder = two_twins / "adapters" / "bea-owner-v1"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(BEA_SECRET.encode())
    [bea] = [t for t in json.loads(invoke(runner, "twins", "list", "--json").stdout) if t["name"] == "bea"]
    twin_ids = {row.handle: row.id for row in _twins(database)}
    training.register(twin_ids["bea"], "owner-v1", "owner", str(folder), "base", [], 0)  # trained on nothing
    assert bea["items"] == 3 and files_containing(two_twins, BEA_SECRET.encode())

    report = json.loads(invoke(runner, "twins", "delete", "bea", "--yes", "--json").stdout)
    assert report["items"] == 3 and report["adapters"] == ["owner-v1"] and report["rows"]["twins"] == 1
    assert [t["name"] for t in json.loads(invoke(runner, "twins", "list", "--json").stdout)] == ["ada"]
    assert _rows_of(database, twin_ids["bea"]) == {}
    assert not folder.exists() and not (two_twins / "twins" / "bea.json").exists()
    assert files_containing(two_twins, BEA_SECRET.encode()) == []  # database, WAL, vectors, adapters
    database.dispose()
    assert [hit["text"] for hit in search(runner, "ada", ADA_SECRET)][:1] == [f"Ask {ADA_SECRET} about the shed key"]
    assert json.loads(invoke(runner, "--twin", "ada", "stats", "--json").stdout)["vectors"]["points"] == 3
    invoke(runner, "twins", "delete", "bea", "--yes", code=1)  # nothing left to delete


def _twins(engine):  # noqa: ANN001, ANN202
    from sqlmodel import Session

    from storage.models import Twin

    with Session(engine) as session:
        return list(session.scalars(select(Twin)))


def _rows_of(engine, twin_id: int) -> dict[str, int]:  # noqa: ANN001
    """Rows per table that still carry the twin."""
    tables = MetaData()
    tables.reflect(engine)
    left = {}
    with engine.connect() as connection:
        for table in tables.sorted_tables:
            if "twin_id" in table.c:
                count = connection.scalar(select(func.count()).select_from(table).where(table.c.twin_id == twin_id))
                if count:
                    left[table.name] = count
    return left


def test_the_compose_file_shows_two_twins_on_one_set_of_servers() -> None:
    import yaml

    services = yaml.safe_load((Path(__file__).parents[1] / "docker" / "compose.yaml").read_text())["services"]
    first, second = services["twin"], services["twin-bea"]
    shared = ("TWIN_DATABASE_URL", "TWIN_QDRANT_URL", "TWIN_LLM_URL", "TWIN_LLM_MODEL", "TWIN_DATA_DIR")
    for name in shared:
        assert second["environment"][name] == first["environment"][name], name
    assert "TWIN_TWIN" not in first["environment"] and second["environment"]["TWIN_TWIN"] == "${SECOND_TWIN:-bea}"
    host_ports = [port.split(":")[0] for port in first["ports"] + second["ports"]]
    assert len(set(host_ports)) == 4  # each twin's Slack and Telegram endpoints published on their own host ports
    assert second["volumes"] == first["volumes"] and second["healthcheck"] == first["healthcheck"]


def test_reused_vectors_give_the_lone_store_the_same_vectors_without_embedding_again(embedder) -> None:  # noqa: ANN001
    from bench.tenants import ReusedVectors

    class Counting:
        dim, calls = embedder.dim, 0

        def embed(self, texts: list[str]):  # noqa: ANN202
            Counting.calls += 1
            return embedder.embed(texts)

    vectors = ReusedVectors(Counting())
    vectors.remember = True
    first = vectors.embed(["a lantern", "a shed"])
    vectors.remember = False
    assert (vectors.embed(["a shed", "a lantern"]) == first[::-1]).all() and Counting.calls == 1
    vectors.embed(["a kite"])
    assert Counting.calls == 2
