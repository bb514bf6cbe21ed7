"""`twin restore PATH`: a backup (twin/backup.py) into an empty deployment: the database at the backup's schema
revision then migrated to this version's, the adapters (their registered paths moved to this data dir), the
embedded index as it was, or rebuilt from the database when there is none (a Qdrant server)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Integer, Table, func, select, text

from storage.database import create_database_engine, current_revision, migrate
from twin.backup import BATCH, BackupError, BackupReport, checked_tables, decode_row, read_manifest
from twin.settings import Settings


def _refuse_unless_empty(engine: Engine, settings: Settings, manifest: dict[str, Any]) -> None:
    from twin.l2 import adapters_dir

    revision = current_revision(engine)
    if revision is not None:
        with engine.connect() as connection:
            twins = connection.execute(text("SELECT COUNT(*) FROM twins")).scalar_one()
        if twins or revision != manifest["revision"]:
            raise BackupError(f"the database at {settings.resolved_database_url} is not empty: restore into a new one")
    for folder, what in ((adapters_dir(settings), "adapters"), (settings.vectors_path, "vector index")):
        if folder.is_dir() and any(folder.iterdir()) and (what == "adapters" or not settings.qdrant_url):
            raise BackupError(f"{folder} already holds a {what}: restore into an empty data dir")


def _moved(row: dict[str, Any], old_dir: str, new_dir: str) -> dict[str, Any]:
    path = row.get("path")
    if isinstance(path, str) and (path == old_dir or path.startswith(old_dir.rstrip("/") + "/")):
        row["path"] = new_dir + path[len(old_dir.rstrip("/")):]
    return row


def _load_table(engine: Engine, table: Table, source: Path, old_dir: str, new_dir: str) -> int:
    count = 0
    with source.open(encoding="utf-8") as lines, engine.begin() as connection:
        batch: list[dict[str, Any]] = []
        for line in lines:
            row = decode_row(table, json.loads(line))
            batch.append(_moved(row, old_dir, new_dir) if table.name == "adapters" else row)
            if len(batch) >= BATCH:
                connection.execute(table.insert(), batch)
                count, batch = count + len(batch), []
        if batch:
            connection.execute(table.insert(), batch)
            count += len(batch)
    return count


def _reset_sequences(engine: Engine, tables: list[Table]) -> None:
    """PostgreSQL: each serial id continues after the restored rows (SQLite needs nothing)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        for table in tables:
            keys = list(table.primary_key.columns)
            if len(keys) != 1 or not isinstance(keys[0].type, Integer):
                continue
            highest = connection.execute(select(func.max(keys[0]))).scalar()
            sequence = connection.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                          {"t": table.name, "c": keys[0].name}).scalar()
            if sequence is not None:
                connection.execute(text("SELECT setval(:s, :v, :called)"),
                                   {"s": sequence, "v": highest or 1, "called": highest is not None})


def _restore_database(settings: Settings, path: Path, manifest: dict[str, Any]) -> dict[str, int]:
    from twin.l2 import adapters_dir

    engine = create_database_engine(settings.resolved_database_url)
    try:
        _refuse_unless_empty(engine, settings, manifest)
        migrate(engine, manifest["revision"])
        tables = checked_tables(engine)
        rows = {}
        for table in tables:
            source = path / "database" / f"{table.name}.jsonl"
            if source.exists():
                rows[table.name] = _load_table(engine, table, source, manifest["adapters_dir"],
                                               str(adapters_dir(settings)))
        _reset_sequences(engine, tables)
        migrate(engine)
        return rows
    finally:
        engine.dispose()


def restore(settings: Settings, path: Path) -> BackupReport:
    """Restore the backup at `path` into this (empty) deployment."""
    from twin.app import open_twin
    from twin.l2 import adapters_dir
    from twin.startup import record_index_embedding

    manifest = read_manifest(path)
    rows = _restore_database(settings, path, manifest)
    adapters = 0
    if (path / "adapters").is_dir():
        shutil.copytree(path / "adapters", adapters_dir(settings), dirs_exist_ok=True)
        adapters = sum(1 for _ in adapters_dir(settings).iterdir())
    vectors = bool(manifest.get("vectors")) and not settings.qdrant_url and (path / "vectors").is_dir()
    if vectors:
        shutil.copytree(path / "vectors", settings.vectors_path, dirs_exist_ok=True)
        with open_twin(settings):
            pass  # the index checked against the recorded embedding model, anything missing indexed
    else:
        with open_twin(settings, rebuilding_index=True) as app:
            app.store.reindex()
            record_index_embedding(app, app.store.embedder.dim)
    return BackupReport(path, rows, adapters, vectors)
