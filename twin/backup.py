"""`twin backup PATH` / `twin restore PATH`: the database (every table the migrations own, as JSON lines, so a
SQLite backup restores into PostgreSQL and back), the embedded vector index, the adapters and the settings
without secrets. A restore goes into an empty deployment only; it gives back the same search results and the
same serving adapters (their paths rewritten to the new data dir).

Layout of PATH: manifest.json, settings.json, database/<table>.jsonl, adapters/<name>/..., vectors/ (embedded
index only; with a Qdrant server the restore rebuilds the index from the database)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, Table, inspect, select
from sqlmodel import SQLModel

from storage.database import FOREIGN_TABLES, create_database_engine, current_revision
from storage.errors import StorageError
from twin.settings import Settings

FORMAT = 1
NOT_BACKED_UP = FOREIGN_TABLES | {"alembic_version"}  # APScheduler's jobs are recreated by `twin run`
BATCH = 1000


class BackupError(StorageError):
    """A backup or restore that cannot be done; the message says why."""


@dataclass(frozen=True)
class BackupReport:
    """What a backup or restore wrote: rows per table, adapters, and whether the vectors came along."""

    path: Path
    rows: dict[str, int]
    adapters: int
    vectors: bool


def model_tables() -> list[Table]:
    """Every table the migrations own, parents before children."""
    import storage.deliveries
    import storage.models
    import storage.tombstones
    import storage.training  # noqa: F401 - each import registers its tables

    return list(SQLModel.metadata.sorted_tables)


def public_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON, with every secret left out (tokens, keys, passwords, the database password)."""
    from pydantic import SecretStr

    values = settings.model_dump(mode="json")
    for name, value in settings:
        if isinstance(value, SecretStr):
            values.pop(name)
    for expert in values.get("experts", {}).values():
        expert.pop("api_key", None)
    if settings.database_url:
        from twin.startup import redacted

        values["database_url"] = redacted(settings.database_url)
    return values


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def decode_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    for column in table.columns:
        kind = getattr(column.type, "impl", column.type)
        value = row.get(column.name)
        if isinstance(value, str) and isinstance(kind, DateTime):
            row[column.name] = datetime.fromisoformat(value)
    return row


def checked_tables(engine: Engine) -> list[Table]:
    present = set(inspect(engine).get_table_names())
    tables = model_tables()
    unknown = present - {t.name for t in tables} - NOT_BACKED_UP
    if unknown:
        raise BackupError(f"the database has tables this version does not know ({', '.join(sorted(unknown))}): "
                          "back up with the version that made them")
    return [t for t in tables if t.name in present]


def _dump_database(engine: Engine, target: Path) -> dict[str, int]:
    target.mkdir(parents=True)
    rows = {}
    with engine.connect() as connection:
        for table in checked_tables(engine):
            count = 0
            with (target / f"{table.name}.jsonl").open("w", encoding="utf-8") as out:
                ordered = select(table).order_by(*table.primary_key.columns)
                for row in connection.execute(ordered).mappings():
                    out.write(json.dumps(_encode(dict(row)), ensure_ascii=False) + "\n")
                    count += 1
            rows[table.name] = count
    return rows


def backup(settings: Settings, path: Path) -> BackupReport:
    """Write a backup of this deployment to `path` (a new or empty folder). Stop `twin run` first: the embedded
    index is copied as it is on disk."""
    from twin.l2 import adapters_dir

    if path.exists() and any(path.iterdir()):
        raise BackupError(f"{path} is not empty: back up into a new folder")
    engine = create_database_engine(settings.resolved_database_url)
    try:
        revision = current_revision(engine)
        if revision is None:
            raise BackupError(f"the database at {settings.resolved_database_url} is empty: nothing to back up")
        path.mkdir(parents=True, exist_ok=True)
        rows = _dump_database(engine, path / "database")
    finally:
        engine.dispose()
    adapters = _copy_folder(adapters_dir(settings), path / "adapters")
    vectors = not settings.qdrant_url and _copy_folder(settings.vectors_path, path / "vectors") >= 0
    (path / "settings.json").write_text(json.dumps(public_settings(settings), indent=2) + "\n")
    manifest = {"format": FORMAT, "created_at": datetime.now(UTC).isoformat(), "revision": revision,
                "adapters_dir": str(adapters_dir(settings)), "rows": rows, "vectors": vectors}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return BackupReport(path, rows, adapters, vectors)


def _copy_folder(source: Path, target: Path) -> int:
    """Copy a folder (none: nothing); the number of top-level entries copied, -1 when there was none."""
    if not source.is_dir():
        return -1
    shutil.copytree(source, target)
    return sum(1 for _ in target.iterdir())


def read_manifest(path: Path) -> dict[str, Any]:
    """The backup's manifest; BackupError when `path` is not a backup this version can restore."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        raise BackupError(f"{path} is not a twin backup (manifest.json: {error})") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r}, this version reads {FORMAT}")
    return manifest
