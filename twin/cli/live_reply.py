"""The console shows life while the twin answers: a spinner saying it is thinking, then the answer as the model
writes it, replaced by the finished reply (the stored, guarded text) once it is done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from core.live import streaming_to

if TYPE_CHECKING:
    from core.messages import InboundMessage, Reply

Handler = Callable[["InboundMessage"], Awaitable["Reply | None"]]
REFRESHES_PER_SECOND = 12


class LiveReply:
    """One answer being written, shown on the console until it is finished (then the display goes)."""

    def __init__(self, console: Console) -> None:
        self.text = Text()
        self.live = Live(self._view(), console=console, transient=True, refresh_per_second=REFRESHES_PER_SECOND,
                         vertical_overflow="crop")

    def add(self, piece: str) -> None:
        """A piece of the answer arrived."""
        self.text.append(piece)  # appended as text: brackets in a model's words are never markup
        self.live.update(self._view())

    def _view(self) -> Spinner | Group:
        if not self.text:
            return Spinner("dots", text=Text("thinking…", style="dim"))
        return Group(Text.assemble(("twin> ", "bold"), self.text), Spinner("dots", style="dim"))

    def __enter__(self) -> LiveReply:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()


def answering_live(handle: Handler, console: Console) -> Handler:
    """`handle`, with the answer shown as it is written while it runs."""
    async def live_handle(message: InboundMessage) -> Reply | None:
        with LiveReply(console) as live, streaming_to(live.add):
            return await handle(message)

    return live_handle
