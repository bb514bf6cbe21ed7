"""`twin llm`: the local vLLM that serves L2 (the base model and its LoRA adapters)."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # serving loads when a command runs: `twin --help` starts fast
    from serving.server import ManagedVLLM
    from twin.settings import Settings

T = TypeVar("T")

llm_app = typer.Typer(help="The local vLLM that serves L2: the base model and its LoRA adapters.", no_args_is_help=True)

WATCH_SECONDS = 2.0  # how often `serve` checks that the server it started is still alive


@llm_app.command()
def serve() -> None:
    """Start the local vLLM (or reuse the running one), print its URL, and wait until Ctrl-C or SIGTERM."""
    from serving.server import ManagedVLLM
    from twin.cli.common import console, out

    server = ManagedVLLM(_settings(), console=console)
    with _stop_signals() as stopping:  # caught from before the URL is printed: a quick SIGTERM still exits 0
        try:
            url = _or_fail(server.ensure_running)
            out.print(url, highlight=False)
            if server.started:
                console.print("serving until Ctrl-C (then the server stops)", highlight=False)
            else:
                console.print("reusing the vLLM another twin process started; it keeps running after this command",
                              highlight=False)
            _wait_until_stopped(server, stopping)
        finally:
            server.stop()


@llm_app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Whether the model server answers, where, which base model, and the LoRA adapters it has loaded."""
    from serving.server import ManagedVLLM
    from twin.cli.common import out

    report = ManagedVLLM(_settings()).status()
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(_status_table(report))


@llm_app.command()
def stop() -> None:
    """Stop the local vLLM recorded for this data dir, whichever twin process started it."""
    from serving.server import ManagedVLLM
    from twin.cli.common import out

    server = ManagedVLLM(_settings())
    if server.external:
        _fail("TWIN_LLM_URL names a server this twin did not start: there is nothing to stop here")
    record = _or_fail(server.stop_recorded)
    out.print(f"stopped vLLM (pid {record.pid})" if record else "no local vLLM was running", highlight=False)


# twin.cli imports this module to register `llm`, so its helpers are imported when a command runs.


def _settings() -> Settings:
    from twin.cli.common import load_settings

    return load_settings()


def _fail(message: str) -> None:
    from twin.cli.common import fail

    fail(message)


def _or_fail(action: Callable[[], T]) -> T:
    """Run `action`, turning a model-server or bundled-model error into a clean exit."""
    from serving.bundled import BundledModelError
    from serving.server import LLMServerError

    try:
        return action()
    except (LLMServerError, BundledModelError) as error:
        _fail(str(error))
        raise  # not reached: _fail exits


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event that Ctrl-C or SIGTERM sets, for the duration of the block."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopping
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_until_stopped(server: ManagedVLLM, stopping: threading.Event) -> None:
    """Block until a stop signal, or until the server stops."""
    while not stopping.wait(WATCH_SECONDS):
        if not server.alive():
            _fail(f"vLLM stopped; see {server.log_path}")


def _status_table(report: dict[str, Any]) -> Table:
    table = Table("", "", show_header=False, box=None)
    table.add_row("running", Text("yes", style="green") if report["running"] else Text("no", style="red"))
    for key in ("url", "pid", "model", "served_name", "log"):
        if report.get(key) is not None:
            table.add_row(key.replace("_", " "), str(report[key]))
    adapters = ", ".join(f"{a['name']} ({a['path']})" for a in report["adapters"]) or "none"
    table.add_row("adapters", adapters)
    return table
