"""Small durable key-value state per twin and platform: switches like autoreply, platform connections."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from storage.models import PlatformState, utcnow

TWIN_WIDE = "twin"  # the platform name of switches that hold on every platform


class StateStore:
    """Reads and writes `platform_state` rows: one JSON object per (twin, platform, key)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, twin_id: int, platform: str, key: str) -> dict[str, Any] | None:
        """The stored value, or None when nothing was stored under the key."""
        with Session(self.engine) as session:
            row = session.scalars(self._query(twin_id, platform, key)).first()
            return dict(row.value) if row else None

    def all(self, twin_id: int, platform: str) -> dict[str, dict[str, Any]]:
        """Every key stored for this twin under the platform, with its value."""
        query = select(PlatformState).where(PlatformState.twin_id == twin_id, PlatformState.platform == platform)
        with Session(self.engine) as session:
            return {row.key: dict(row.value) for row in session.scalars(query.order_by(PlatformState.key))}

    def put(self, twin_id: int, platform: str, key: str, value: dict[str, Any]) -> None:
        """Store the value under the key, replacing what was there."""
        try:
            self._upsert(twin_id, platform, key, value)
        except IntegrityError:  # another writer inserted the key between our read and insert: update it
            self._upsert(twin_id, platform, key, value)

    def _upsert(self, twin_id: int, platform: str, key: str, value: dict[str, Any]) -> None:
        with Session(self.engine) as session:
            row = session.scalars(self._query(twin_id, platform, key)).first()
            if row is None:
                row = PlatformState(twin_id=twin_id, platform=platform, key=key, value=value)
            else:
                row.value, row.updated_at = dict(value), utcnow()
            session.add(row)
            session.commit()

    def with_prefix(self, twin_id: int, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(platform, key, value) of every row whose key starts with the prefix, on any platform."""
        query = select(PlatformState).where(PlatformState.twin_id == twin_id, PlatformState.key.startswith(prefix))
        with Session(self.engine) as session:
            rows = session.scalars(query.order_by(PlatformState.id))
            return [(row.platform, row.key, dict(row.value)) for row in rows]

    def delete(self, twin_id: int, platform: str, key: str) -> bool:
        """Remove the key; whether it was there."""
        with Session(self.engine) as session:
            row = session.scalars(self._query(twin_id, platform, key)).first()
            if row is not None:
                session.delete(row)
                session.commit()
            return row is not None

    @staticmethod
    def _query(twin_id: int, platform: str, key: str):  # noqa: ANN205 - a SQLAlchemy Select
        return select(PlatformState).where(
            PlatformState.twin_id == twin_id, PlatformState.platform == platform, PlatformState.key == key
        )
