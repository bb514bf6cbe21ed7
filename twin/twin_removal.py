"""`twin twins delete`: everything of one twin goes, bytes included, the way `/forget` removes what it matches.

First the forgetting machinery runs over all of the twin's memory (training samples and adapters withdrawn, their
files deleted and unloaded from the model server; facts and bios; L0 rows, vectors and the neighbours' context),
then every remaining row that carries the twin (owner-stated facts, people, ledgers, state, tombstones, its
background jobs) and the twin itself, then the bytes: vector segments vacuumed, SQLite's WAL folded and truncated
(secure_delete is on), PostgreSQL's tables rewritten; last the twin's settings file and its own folder."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, MetaData

from core.forgetting import Forgetter
from storage.errors import StorageError
from storage.forget import ForgetQuery, L0Forgetting, purge_deleted
from storage.l1_forgetting import L1Forgetting
from storage.training import TrainingStore
from storage.training_forgetting import TrainingForgetting
from twin.app import TwinApp
from twin.tenants import twin_file, twins_dir

EVERYTHING = ForgetQuery(before=datetime(9999, 12, 31, tzinfo=UTC))  # every L0 item of the twin
JOBS_TABLE = "apscheduler_jobs"  # job ids end with ":<twin id>" (twin.scheduler)


@dataclass(frozen=True)
class RemovalReport:
    """What a delete removed: L0 items, rows per table, adapters (their files), files of the twin's own."""

    items: int
    rows: dict[str, int]
    adapters: list[str]
    files: list[str]

    def summary(self, handle: str) -> str:
        rows = sum(self.rows.values())
        return (f"Deleted twin {handle}: {self.items} messages or notes, {rows} other rows, "
                f"{len(self.adapters)} adapters, {len(self.files)} files or folders of its own.")


def delete_twin(app: TwinApp) -> RemovalReport:
    """Remove every trace of the app's twin from the database, the vector index, the adapters and the data dir."""
    from twin.l2 import unload

    twin_id, engine = app.twin.id, app.store.engine
    adapters = TrainingStore(engine).adapters(twin_id)
    training = TrainingForgetting(engine, lambda names: unload(app.settings, names))
    forgetter = Forgetter(L0Forgetting(app.store), [training, L1Forgetting(engine)])
    forgotten = forgetter.forget(twin_id, EVERYTHING)
    for adapter in adapters:  # those no forgotten item reached (failed, or trained on nothing left) go too
        _remove_adapter_files(Path(adapter.path))
    unload(app.settings, [adapter.name for adapter in adapters])
    rows = _delete_rows(engine, twin_id)
    purge_deleted(app.store, rows)
    return RemovalReport(forgotten.items, rows, [adapter.name for adapter in adapters], _remove_files(app))


def _remove_adapter_files(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    for partial in folder.parent.glob(f".{folder.name}.*"):  # a run still training: its data and output
        shutil.rmtree(partial, ignore_errors=True)


def _delete_rows(engine: Engine, twin_id: int) -> dict[str, int]:
    """Every row carrying the twin, dependents first, then its jobs and the twin; rows removed per table."""
    tables = MetaData()
    tables.reflect(engine)
    removed: dict[str, int] = {}
    with engine.begin() as connection:
        for table in reversed(tables.sorted_tables):
            if "twin_id" in table.c:
                count = connection.execute(table.delete().where(table.c.twin_id == twin_id)).rowcount
                if count:
                    removed[table.name] = count
        if JOBS_TABLE in tables.tables:
            jobs = tables.tables[JOBS_TABLE]
            removed[JOBS_TABLE] = connection.execute(jobs.delete().where(jobs.c.id.like(f"%:{twin_id}"))).rowcount
        twins = tables.tables["twins"]
        removed["twins"] = connection.execute(twins.delete().where(twins.c.id == twin_id)).rowcount
    return removed


def _remove_files(app: TwinApp) -> list[str]:
    """The twin's settings file and its own folder (the Matrix keys), where it has them."""
    settings, removed = app.settings, []
    try:
        own = (twin_file(settings, app.twin.handle), twins_dir(settings) / app.twin.handle)
    except StorageError:  # a handle that is no twin name (TWIN_OWNER="Ada L."): it has no file of its own
        return removed
    for path in own:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(str(path))
    return removed
