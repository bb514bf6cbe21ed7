"""`twin backup` / `twin restore`: an empty deployment restored from a backup gives back the same search results
and the same serving adapters, and the backup holds no secret. On SQLite, and into a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.importers import import_path
from storage.search import SearchScope
from storage.training import READY, TrainingStore
from twin.app import open_twin
from twin.backup import BackupError, backup, model_tables
from twin.restore import restore
from twin.settings import Settings

ROOT = Path(__file__).parents[1]
MESSAGES = Path(__file__).parent / "fixtures" / "jsonl" / "messages.jsonl"
QUERIES = ("apple crumble", "Sunday lunch", "custard")
SECRET = "123456:TOKEN-NEVER-IN-A-BACKUP"


def searches(settings: Settings) -> list[list[tuple[int, str, float]]]:
    with open_twin(settings) as app:
        scope = SearchScope(app.twin.id)
        return [[(r.item.id, r.item.text, round(r.score, 5)) for r in app.searcher.search(q, scope, k=5)]
                for q in QUERIES]


def serving(settings: Settings) -> tuple[str | None, Path, bytes]:
    with open_twin(settings) as app:
        training = TrainingStore(app.store.engine)
        name = training.serving(app.twin.id, "owner")
        adapter = training.get(app.twin.id, name or "")
        assert adapter is not None
        return name, Path(adapter.path), (Path(adapter.path) / "adapter_model.safetensors").read_bytes()


def populate(settings: Settings) -> None:
    with open_twin(settings) as app:
        import_path(app.store, app.twin.id, MESSAGES, owner_ids=("me",))
        training = TrainingStore(app.store.engine)
        for version in (1, 2):
            name = f"owner-v{version}"
            folder = settings.data_dir / "adapters" / name
            folder.mkdir(parents=True)
            (folder / "adapter_config.json").write_text('{"r": 8}')
            (folder / "adapter_model.safetensors").write_bytes(bytes([version]) * 64)
            training.register(app.twin.id, name, "owner", str(folder), "base-model", [], samples=8)
            training.set_status(app.twin.id, name, READY)
            training.promote(app.twin.id, name)


def cli(command: str, path: Path, settings: Settings) -> subprocess.CompletedProcess:
    env = os.environ | {"TWIN_DATA_DIR": str(settings.data_dir), "TWIN_TELEGRAM_TOKEN": SECRET}
    if settings.database_url:
        env["TWIN_DATABASE_URL"] = settings.database_url
    return subprocess.run([sys.executable, "-m", "twin.cli", command, str(path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target_database(request: pytest.FixtureRequest) -> str | None:
    """Where the restore goes: a new SQLite file (None) or a new PostgreSQL database."""
    return request.getfixturevalue("postgres_database") if request.param == "postgresql" else None


def test_a_restore_gives_back_the_same_search_results_and_serving_adapters(
    tmp_path: Path, target_database: str | None
) -> None:
    source = Settings(_env_file=None, data_dir=tmp_path / "source", telegram_token=SECRET)
    populate(source)
    before, (name, _, weights) = searches(source), serving(source)
    assert any(before) and name == "owner-v2"

    made = cli("backup", tmp_path / "backup", source)
    assert made.returncode == 0, made.stderr
    written = [p for p in (tmp_path / "backup").rglob("*") if p.is_file()]
    assert not [p for p in written if SECRET.encode() in p.read_bytes()]
    assert {p.name for p in (tmp_path / "backup" / "database").iterdir()} == {f"{t.name}.jsonl" for t in model_tables()}

    target = Settings(_env_file=None, data_dir=tmp_path / "target", database_url=target_database)
    restored = cli("restore", tmp_path / "backup", target)
    assert restored.returncode == 0, restored.stderr
    assert searches(target) == before
    restored_name, restored_path, restored_weights = serving(target)
    assert (restored_name, restored_weights) == (name, weights)
    assert restored_path == target.data_dir / "adapters" / "owner-v2"  # moved with the data dir

    again = cli("restore", tmp_path / "backup", target)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_without_a_saved_index_the_restore_rebuilds_it_from_the_database(tmp_path: Path) -> None:
    source = Settings(_env_file=None, data_dir=tmp_path / "source")
    populate(source)
    before = searches(source)
    backup(source, tmp_path / "backup")
    import shutil

    shutil.rmtree(tmp_path / "backup" / "vectors")  # as from a deployment on a Qdrant server
    target = Settings(_env_file=None, data_dir=tmp_path / "target")
    report = restore(target, tmp_path / "backup")
    assert not report.vectors
    assert searches(target) == before


def test_a_backup_goes_into_a_new_folder_and_a_restore_needs_a_backup(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="is not empty"):
        backup(settings, tmp_path / "full")
    with pytest.raises(BackupError, match="is not a twin backup"):
        restore(settings, tmp_path / "full")
