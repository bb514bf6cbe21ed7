"""Migrations on an empty SQLite file and an empty PostgreSQL database: at head, idempotent, = models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

import storage.deliveries  # noqa: F401
import storage.models  # noqa: F401 - registers the tables on SQLModel.metadata
import storage.tombstones  # noqa: F401
import storage.training  # noqa: F401
from storage.database import (
    alembic_config,
    create_database_engine,
    current_revision,
    head_revision,
    migrate,
    migrated,
)

HEAD = "0007"
TABLES = {
    "twins", "people", "identities", "l0_items",  # 0001
    "facts", "fact_sources", "profile_versions", "memory_cursors",  # 0002: L1 memory
    "platform_state",  # 0003
    "tombstones", "twin_salts",  # 0004: forgetting
    "deliveries",  # 0005: received -> answered -> delivered
    "training_samples", "training_sample_sources", "adapters", "adapter_sources",  # 0006: L2 training
    "adapter_fact_sources",  # 0007: the training loop
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
    else:
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = create_database_engine(url)
    yield engine
    engine.dispose()


def _schema_differences(engine: Engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": migrated})
        return compare_metadata(context, SQLModel.metadata)


def test_head_is_the_only_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config(create_database_engine("sqlite://"))).get_heads()
    assert heads == [HEAD]
    assert head_revision() == HEAD  # what migrate reads without Alembic to see a database at head


def test_a_database_behind_the_head_is_still_migrated(empty_engine: Engine) -> None:
    """The start-up shortcut (a database at head needs no Alembic) must not skip a real upgrade."""
    migrate(empty_engine, "0006")
    migrate(empty_engine)
    assert current_revision(empty_engine) == HEAD
    assert "adapter_fact_sources" in inspect(empty_engine).get_table_names()


def test_migrate_creates_the_schema_at_head(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) == set()
    migrate(empty_engine)
    assert current_revision(empty_engine) == HEAD
    assert set(inspect(empty_engine).get_table_names()) == TABLES | {"alembic_version"}


def test_second_migrate_is_a_no_op(empty_engine: Engine) -> None:
    migrate(empty_engine)
    before = _snapshot(empty_engine)
    migrate(empty_engine)
    assert current_revision(empty_engine) == HEAD
    assert _snapshot(empty_engine) == before


def _snapshot(engine: Engine) -> dict:
    """Tables with their columns and indexes, and the stored revision rows."""
    inspector = inspect(engine)
    with engine.connect() as connection:
        versions = [row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")]
    return {
        "versions": versions,
        "tables": {
            name: (
                [column["name"] for column in inspector.get_columns(name)],
                sorted(index["name"] for index in inspector.get_indexes(name)),
            )
            for name in inspector.get_table_names()
        },
    }


def test_models_match_the_migrated_schema(empty_engine: Engine) -> None:
    assert _schema_differences(empty_engine)  # an empty database differs: the comparison can fail
    migrate(empty_engine)
    assert _schema_differences(empty_engine) == []


def test_the_scheduler_table_is_not_ours_to_drop(empty_engine: Engine) -> None:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from twin.scheduler import JOBS_TABLE

    migrate(empty_engine)
    SQLAlchemyJobStore(engine=empty_engine, tablename=JOBS_TABLE).start(None, "default")  # creates its table
    assert JOBS_TABLE in inspect(empty_engine).get_table_names()
    assert _schema_differences(empty_engine) == []  # autogenerate would not propose dropping it
    with empty_engine.connect() as connection:
        bare = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert ("remove_table", JOBS_TABLE) in [(diff[0], diff[1].name) for diff in bare if diff[0] == "remove_table"]
