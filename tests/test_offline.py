"""The suite is offline: a connection outside loopback fails the test that makes it (conftest's guard)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from conftest import NetworkUsed


def test_a_connection_outside_loopback_fails_the_test() -> None:
    with socket.socket() as probe, pytest.raises(NetworkUsed, match="192.0.2.1"):
        probe.settimeout(0.5)
        probe.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
    with pytest.raises(NetworkUsed):  # the event loop's connections too (what aiohttp, httpx and nio use)
        asyncio.run(asyncio.open_connection("192.0.2.1", 80))


def test_loopback_stays_open() -> None:
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())
