"""`twin twins create|list|delete`: several twins in one deployment, each with its own owner and platforms."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from twin.cli.common import console, fail, out

twins_app = typer.Typer(help="Several twins in one deployment (one database, vector store and model server).",
                        no_args_is_help=True)


def _shared_settings():  # noqa: ANN202 - twin.settings.Settings
    """The deployment's settings without any named twin's file (what every twin shares)."""
    from pydantic import ValidationError

    from twin.settings import Settings

    try:
        return Settings(twin=None)
    except ValidationError as error:
        fail(f"invalid settings: {error}", code=2)


@twins_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The name: 1-32 of a-z 0-9 _ - (it names its files and adapters).")],
    owner_name: Annotated[str | None, typer.Option(help="How the owner is called (default: the name).")] = None,
    owner_id: Annotated[list[str] | None, typer.Option(
        "--owner-id", help="The owner's account, platform:id (repeatable), e.g. telegram:12345.")] = None,
    from_env: Annotated[bool, typer.Option(
        "--from-env", help="Also copy the per-twin TWIN_* settings set in the environment (tokens, ids) into its file.",
    )] = False,
) -> None:
    """Create a named twin: its settings file under <data dir>/twins/ (mode 600) and its rows in the database."""
    from storage.errors import StorageError
    from twin.app import open_twin
    from twin.tenants import PER_TWIN, check_name, settings_for_twin, twin_file, write_twin_file

    shared = _shared_settings()
    try:
        path = twin_file(shared, check_name(name))
    except StorageError as error:
        fail(str(error), code=2)
    if path.exists():
        fail(f"twin {name} exists already ({path})")
    values = shared.model_dump(include=set(PER_TWIN), exclude_unset=True) if from_env else {}
    values["owner_name"] = owner_name or values.get("owner_name") or name
    if owner_id:
        values["owner_ids"] = list(owner_id)
    write_twin_file(path, values)
    try:
        with open_twin(settings_for_twin(shared, name)) as app:
            created = app.twin
    except BaseException:
        path.unlink(missing_ok=True)  # a twin that could not be opened leaves nothing behind
        raise
    out.print(f"Created twin {created.handle} (owner {created.display_name}); its settings: {path}")


@twins_app.command("list")
def list_twins(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every twin in the database: name, owner, L0 items, and its settings file (none: the single-twin settings)."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    from storage.database import create_database_engine, migrate
    from storage.models import L0Item, Twin
    from twin.tenants import NAME, twin_file

    shared = _shared_settings()
    shared.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_database_engine(shared.resolved_database_url)
    try:
        migrate(engine)
        with Session(engine) as session:
            counts = dict(session.execute(select(L0Item.twin_id, func.count()).group_by(L0Item.twin_id)).all())
            twins = list(session.scalars(select(Twin).order_by(Twin.id)))
    finally:
        engine.dispose()
    rows = [{"name": t.handle, "owner": t.display_name, "items": counts.get(t.id, 0),
             "settings": str(twin_file(shared, t.handle)) if NAME.fullmatch(t.handle)
             and twin_file(shared, t.handle).exists() else None} for t in twins]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for row in rows:
        out.print(f"{row['name']}\t{row['owner']}\t{row['items']} items\t{row['settings'] or '(environment)'}")


@twins_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The twin to delete, as `twin twins list` names it.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm without asking (for scripts).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was removed as JSON.")] = False,
) -> None:
    """Delete a twin and everything of it, bytes included, as /forget removes what it matches: memory, facts, bios,
    people, training data, adapters (files too, unloaded from the model server), its settings file. No undo."""
    from twin.app import open_twin
    from twin.tenants import NAME, settings_for_twin, twin_file
    from twin.twin_removal import delete_twin

    shared = _shared_settings()
    named = NAME.fullmatch(name) and twin_file(shared, name).exists()
    settings = settings_for_twin(shared, name) if named else shared.model_copy(update={"owner": name})
    if not yes:
        if not sys.stdin.isatty():
            fail("nothing was deleted: add --yes to confirm without a terminal")
        typer.confirm(f"Delete twin {name} and everything it knows, for good?", abort=True, err=True)
    with open_twin(settings, create=False, rebuilding_index=True) as app:
        report = delete_twin(app)
    if as_json:
        out.print_json(json.dumps({"items": report.items, "rows": report.rows, "adapters": report.adapters,
                                   "files": report.files}))
    else:
        console.print(report.summary(name))
