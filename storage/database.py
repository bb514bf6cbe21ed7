"""The relational database: engine creation (SQLite by default, PostgreSQL when configured) and migrations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Engine, String, cast, create_engine, event, func
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

from storage.text import encodable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Tables that live in the database but not in the migrations: APScheduler creates and owns its job table.
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # Deleted rows must not linger in free pages: forgetting has to reach the bytes.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
    # SQLite's lower() and LIKE fold ASCII only: "MÜLLER" must match "müller" when the owner forgets it.
    dbapi_connection.create_function(CASEFOLD, 1, _casefold, deterministic=True)


CASEFOLD = "twin_casefold"


def _casefold(text: object) -> str | None:
    return None if text is None else str(text).casefold()


def _json(value: object) -> str:
    """JSON as stored: UTF-8 text, not \\u escapes, so what is searched (and forgotten) is what was said."""
    return json.dumps(encodable(value), ensure_ascii=False)  # a lone surrogate cannot be written: replaced


def contains_text(engine: Engine, column: ColumnElement, text: str) -> ColumnElement[bool]:
    """A case-insensitive substring test in every script: SQLite through Python's casefold, PostgreSQL through
    ILIKE (which folds by the database's LC_CTYPE: ASCII only under the C locale)."""
    if engine.dialect.name == "sqlite":
        return func.twin_casefold(cast(column, String)).contains(text.strip().casefold(), autoescape=True)
    escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return cast(column, String).ilike(f"%{escaped}%", escape="\\")


def create_database_engine(url: str) -> Engine:
    """An engine for the URL; for SQLite, the file's folder is created and WAL + secure_delete are on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, json_serializer=_json)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=_json)


def alembic_config(engine: Engine) -> Config:
    """An Alembic config bound to this engine (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    config.attributes["engine"] = engine
    return config


def migrated(object_: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:  # noqa: ARG001
    """Alembic's include_object: compare only what the migrations own (never propose dropping APScheduler's table)."""
    return not (type_ == "table" and name in FOREIGN_TABLES)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to the revision (idempotent). A database already at the head is seen without Alembic,
    whose import and run cost a second at every command's start."""
    if revision == "head" and _at_head(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


# `revision = '0007'` / `down_revision = None` as the migration files (Alembic's template) write them
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:'([^'\n]*)'|\"([^\"\n]*)\"|(None))\s*$",
                            re.MULTILINE)


def head_revision() -> str | None:
    """The one head of the migrations, read from their files; None when a file does not say it plainly (then
    Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str | None] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = {name: quoted or double or None for name, quoted, double, _ in
                 _REVISION_LINE.findall(path.read_text(encoding="utf-8"))}
        if not found.get("revision") or "down_revision" not in found:
            return None
        revisions.add(found["revision"])
        parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    except SQLAlchemyError:  # no version table yet: a new database
        return False
    return list(rows) == [head]


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def checkpoint(engine: Engine) -> None:
    """Fold SQLite's WAL back into the main file and truncate it (no-op elsewhere)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
