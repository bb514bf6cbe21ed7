"""Ports and waits, written once for every test server and fixture."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.02


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Block until the condition holds; AssertionError naming what was awaited after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(POLL_S)


async def wait_for(condition: Callable[[], bool], timeout: float, what: Callable[[], str],
                   between: Callable[[], Awaitable[None]] | None = None) -> None:
    """Wait without blocking the event loop (running `between` each round, else a short sleep) until the condition
    holds; AssertionError with `what()` (evaluated then: the calls so far, say) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what()}")
        await (between() if between is not None else asyncio.sleep(POLL_S))
