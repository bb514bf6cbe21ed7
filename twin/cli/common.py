"""What every command module shares: the two consoles, `fail`, settings loading and the progress bar.

Both consoles print text as text: Rich markup is off, so brackets in a person's, a model's or memory's
words (`[public]`, `[/b]`) are shown as written and can never crash a command. Styling is given with
`style=` or `rich.text.Text`, never with markup inside a string."""

from __future__ import annotations

from enum import StrEnum

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from twin.settings import Settings

console = Console(stderr=True, markup=False, highlight=False)  # messages, progress and errors
out = Console(markup=False, highlight=False)  # results, the part a script reads


class VisibilityOption(StrEnum):
    private = "private"
    contacts = "contacts"
    public = "public"


selected_twin: str | None = None  # `twin --twin NAME ...` (or TWIN_TWIN), set by the app's callback per command


def load_settings() -> Settings:
    """Settings from the environment (a named twin's own from its file), or a clear message and exit code 2."""
    from storage.errors import StorageError
    from twin.tenants import settings_for_twin

    try:
        settings = Settings()
        name = selected_twin or settings.twin
        return settings_for_twin(settings, name) if name else settings
    except ValidationError as error:
        console.print(f"Invalid settings:\n{error}", style="red", soft_wrap=True)
        raise typer.Exit(2) from error
    except StorageError as error:
        fail(str(error), code=2)
        raise


def fail(message: str, code: int = 1) -> None:
    """Print an error on stderr and exit."""
    console.print(f"error: {message}", style="red", soft_wrap=True)
    raise typer.Exit(code)


def progress_bar() -> Progress:
    """The one progress bar style every long command uses (on stderr)."""
    return Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )
