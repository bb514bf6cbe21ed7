"""The `twin` command: the commands of the modules beside this one, assembled."""

from __future__ import annotations

from typing import Annotated

import typer

from storage.errors import StorageError
from twin.cli import common
from twin.cli.backup import register_backup_commands
from twin.cli.bench import bench_app
from twin.cli.common import fail, request_verbose
from twin.cli.forget import forget
from twin.cli.init import init
from twin.cli.llm import llm_app
from twin.cli.memory import register_memory_commands
from twin.cli.platforms import doctor
from twin.cli.store import register_store_commands
from twin.cli.talk import ask, chat, people_app
from twin.cli.train import register_train_commands
from twin.cli.twins import twins_app

app = typer.Typer(help="Twin: a personal digital twin for Telegram, Slack and Matrix.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)  # a crash must not print messages or settings held in locals


app.add_typer(bench_app, name="bench")
app.add_typer(twins_app, name="twins")
app.add_typer(llm_app, name="llm")
app.add_typer(people_app, name="people")
app.command()(init)
app.command()(chat)
app.command()(ask)
register_store_commands(app)
register_memory_commands(app)
app.command()(forget)
app.command()(doctor)
register_train_commands(app)
register_backup_commands(app)


@app.callback()
def options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log to the terminal too (always to "
                                          "<data dir>/logs/twin.log).")] = False,
    twin: Annotated[str | None, typer.Option(
        "--twin", envvar="TWIN_TWIN", help="The named twin to work on (`twin twins list`); default the single twin.",
    )] = None,
) -> None:
    """Twin: a personal digital twin for Telegram, Slack and Matrix."""
    common.selected_twin = twin
    request_verbose(verbose)


def main() -> None:
    """Entry point that turns our storage errors into clean exits."""
    try:
        app()
    except StorageError as error:
        try:
            fail(str(error))
        except typer.Exit as exit_:  # outside click's own handling here: exit with its code, no traceback
            raise SystemExit(exit_.exit_code) from None

