"""`twin backup PATH` and `twin restore PATH`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli.common import load_settings, out


def register_backup_commands(app: typer.Typer) -> None:
    """Add backup and restore to the `twin` app."""
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)


def backup_command(
    path: Annotated[Path, typer.Argument(help="A new (or empty) folder for the backup.")],
) -> None:
    """Back up the database, the vector index, the adapters and the settings (no secrets). Stop `twin run` first."""
    from twin.backup import backup

    report = backup(load_settings(), path)
    out.print(f"backed up {sum(report.rows.values())} rows in {len(report.rows)} tables, {report.adapters} "
              f"adapters{', the vector index' if report.vectors else ''} to {report.path}")


def restore_command(
    path: Annotated[Path, typer.Argument(help="A folder written by `twin backup`.")],
) -> None:
    """Restore a backup into an empty deployment (database, data dir); the index is rebuilt if it was not saved."""
    from twin.restore import restore

    report = restore(load_settings(), path)
    index = "the vector index copied" if report.vectors else "the vector index rebuilt from the database"
    out.print(f"restored {sum(report.rows.values())} rows in {len(report.rows)} tables, {report.adapters} adapters, "
              f"{index}")
