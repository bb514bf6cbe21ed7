"""The console's line editing in a terminal: arrows and the usual keys edit the line, Up and Down walk the history
(kept in a file under the data dir, which a forget scrubs too), and Tab completes `/` commands. prompt_toolkit
does it; without a terminal, or without prompt_toolkit, lines are read plainly."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prompt_toolkit.completion import CompleteEvent, Completion
    from prompt_toolkit.document import Document

from twin.conversation import CONSOLE_HISTORY as HISTORY_FILE  # in the data dir; a forget scrubs it


def history_path(data_dir: Path) -> Path:
    """The console's history file."""
    return data_dir / HISTORY_FILE


def command_words(names: Iterable[str]) -> list[str]:
    """The `/name` words Tab completes."""
    return sorted(f"/{name}" for name in names)


def completions_for(text_before_cursor: str, words: Sequence[str]) -> list[str]:
    """The commands the line typed so far can become: only while the first word, a `/` word, is being typed."""
    if not text_before_cursor.startswith("/") or " " in text_before_cursor:
        return []
    return [word for word in words if word.startswith(text_before_cursor)]


def line_reader(history_file: Path, commands: Iterable[str]) -> Callable[[str], str] | None:
    """A reader with editing, history and completion; None when prompt_toolkit is not installed."""
    try:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import Completer, Completion
        from prompt_toolkit.history import FileHistory
    except ImportError:
        return None
    words = command_words(commands)

    class SlashCommands(Completer):
        def get_completions(self, document: Document, _event: CompleteEvent) -> Iterator[Completion]:
            typed = document.text_before_cursor
            for word in completions_for(typed, words):
                yield Completion(word, start_position=-len(typed))

    history_file.parent.mkdir(parents=True, exist_ok=True)
    session: PromptSession[str] = PromptSession(history=FileHistory(str(history_file)), completer=SlashCommands())

    def read(prompt: str) -> str:
        return session.prompt(prompt)  # raises EOFError on Ctrl-D, KeyboardInterrupt on Ctrl-C

    return read
