"""A small HTTP proxy in front of the test Synapse that answers chosen requests with a real-protocol 429
(M_LIMIT_EXCEEDED with retry_after_ms, as Synapse's rate limiter does) and passes everything else through."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from aiohttp import ClientSession, ClientTimeout, web
from support import free_port

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


@dataclass
class Seen:
    """One request the proxy received: method, path (no query: it holds the access token), when, what it got."""

    method: str
    path: str
    at: float
    status: int


@dataclass
class LimitingProxy:
    """Forwards to `upstream`; the next `limit` requests whose path matches `pattern` get a 429 instead."""

    upstream: str
    pattern: re.Pattern[str]
    limit: int = 1
    retry_after_ms: int = 1500
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None

    @property
    def url(self) -> str:
        """The homeserver URL to give the twin."""
        return f"http://127.0.0.1:{self.port}"

    def matching(self) -> list[Seen]:
        """The requests the pattern matched, in order."""
        return [seen for seen in self.seen if self.pattern.search(seen.path)]

    async def __aenter__(self) -> LimitingProxy:
        self._session = ClientSession(timeout=ClientTimeout(total=120))  # bodies decompressed: sent on plain
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.limit > 0 and self.pattern.search(request.path):
            self.limit -= 1
            self.seen.append(Seen(request.method, request.path, time.monotonic(), 429))
            return web.json_response({"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests",
                                      "retry_after_ms": self.retry_after_ms}, status=429)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=await request.read()) as upstream:
            body = await upstream.read()
            self.seen.append(Seen(request.method, request.path, time.monotonic(), upstream.status))
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream.status, body=body, headers=out)
