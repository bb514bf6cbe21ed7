"""Alembic environment: runs against the engine the app passes in, or the configured URL."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import storage.deliveries  # noqa: F401
import storage.models  # noqa: F401 - registers the tables on SQLModel.metadata
import storage.tombstones  # noqa: F401
import storage.training  # noqa: F401
from storage.database import migrated

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=migrated,
        )
        context.run_migrations()


run_migrations_online()
