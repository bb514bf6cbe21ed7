"""What every command module shares: the two consoles, `fail`, settings loading and the progress bar.

Both consoles print text as text: Rich markup and emoji codes are off, so brackets in a person's, a model's or
memory's words (`[public]`, `[/b]`) and `:fire:` are shown as written and can never crash a command. Styling
is given with `style=` or `rich.text.Text`, never with markup inside a string."""

from __future__ import annotations

import tomllib
from enum import StrEnum
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:  # pydantic and rich.progress load when used: `twin --help` starts fast
    from rich.progress import Progress

    from twin.settings import Settings

console = Console(stderr=True, markup=False, emoji=False, highlight=False)  # messages, progress and errors
out = Console(markup=False, emoji=False, highlight=False)  # results, the part a script reads
_global_options = {"verbose": False}  # set by the `twin` callback before each command runs


class VisibilityOption(StrEnum):
    private = "private"
    contacts = "contacts"
    public = "public"


class AudienceOption(StrEnum):
    owner = "owner"
    contact = "contact"
    stranger = "stranger"


selected_twin: str | None = None  # `twin --twin NAME ...` (or TWIN_TWIN), set by the app's callback per command



def load_settings() -> Settings:
    """Settings from the environment (a named twin's own from its file), or one line per problem (variable,
    what is wrong, an example) and exit 2. With the settings known, logging goes to the data dir's log file (and to
    the terminal with `twin --verbose`)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from storage.errors import StorageError
    from twin.logs import configure_logging
    from twin.settings import Settings
    from twin.settings_errors import settings_problems
    from twin.tenants import settings_for_twin

    try:
        settings = Settings()
        name = selected_twin or settings.twin
        settings = settings_for_twin(settings, name) if name else settings
    except (ValidationError, SettingsError, tomllib.TOMLDecodeError) as error:
        for line in settings_problems(error):
            console.print(f"error: {line}", style="red", soft_wrap=True)
        raise typer.Exit(2) from None
    except StorageError as error:
        fail(str(error), code=2)
        raise
    configure_logging(settings.logs_dir, verbose=verbose_requested())
    return settings


def request_verbose(verbose: bool) -> None:
    """Record `twin --verbose` (the global option) for this command."""
    _global_options["verbose"] = verbose


def verbose_requested() -> bool:
    """Whether this command runs under `twin --verbose`."""
    return _global_options["verbose"]


def fail(message: str, code: int = 1) -> None:
    """Print an error on stderr and exit."""
    console.print(f"error: {message}", style="red", soft_wrap=True)
    raise typer.Exit(code)


def progress_bar() -> Progress:
    """The one progress bar style every long command uses (on stderr)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )
