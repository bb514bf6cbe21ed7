"""`GET /healthz` of `twin run`: the database, the vector store, the model server and each platform, each `up` or
what is wrong; 200 when all are up, 503 otherwise. Served by aiohttp on the twin's own event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from serving.endpoint import LLMServerError, VLLMEndpoint

if TYPE_CHECKING:
    from twin.app import TwinApp

log = logging.getLogger(__name__)
UP = "up"
PROBE_TIMEOUT = 5.0  # seconds one part may take to answer before it counts as down
Probe = Callable[[], Awaitable[str | None]]  # None: up; else what is wrong, in one line


class Watched(Protocol):
    """A platform adapter that can say whether it still receives messages."""

    async def health(self) -> str | None: ...


def database_probe(app: TwinApp) -> Probe:
    """The database answers a query."""
    def query() -> None:
        with app.store.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    return _blocking(query, "the database")


def vector_probe(app: TwinApp) -> Probe:
    """The vector index answers a count."""
    return _blocking(app.store.index.count, "the vector store")


def model_probe(url: str, served_name: str, api_key: str | None) -> Probe:
    """The model server answers and serves the base model."""
    endpoint = VLLMEndpoint(url, api_key=api_key, timeout=PROBE_TIMEOUT)

    def models() -> str | None:
        names = endpoint.model_names()
        return None if served_name in names else f"{url} does not serve {served_name!r}"
    return _blocking(models, "the model server")


def platform_probe(adapter: Watched) -> Probe:
    """The platform adapter still receives messages."""
    return adapter.health


def _blocking(check: Callable[[], object], what: str) -> Probe:
    async def probe() -> str | None:
        try:
            result = await asyncio.to_thread(check)
        except LLMServerError as error:
            return str(error)
        except Exception as error:  # noqa: BLE001 - any failure of the part is the answer, in one line
            return f"{what} fails: {type(error).__name__}: {_one_line(error)}"
        return result if isinstance(result, str) else None
    return probe


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


async def report(probes: dict[str, Probe]) -> dict[str, str]:
    """Every part's state, asked at once: `up` or what is wrong."""
    async def ask(probe: Probe) -> str:
        try:
            problem = await asyncio.wait_for(probe(), PROBE_TIMEOUT)
        except TimeoutError:
            return f"no answer within {PROBE_TIMEOUT:.0f} s"
        except Exception as error:  # noqa: BLE001
            return f"{type(error).__name__}: {_one_line(error)}"
        return problem or UP
    names = list(probes)
    states = await asyncio.gather(*(ask(probes[name]) for name in names))
    return dict(zip(names, states, strict=True))


def health_app(probes: dict[str, Probe]) -> web.Application:
    """The aiohttp application answering GET /healthz."""
    async def healthz(_request: web.Request) -> web.Response:
        parts = await report(probes)
        healthy = all(state == UP for state in parts.values())
        return web.json_response({"healthy": healthy, **parts}, status=200 if healthy else 503)
    application = web.Application()
    application.router.add_get("/healthz", healthz)
    return application


@asynccontextmanager
async def health_server(host: str, port: int, probes: dict[str, Probe]) -> AsyncIterator[str | None]:
    """Serve /healthz on host:port until the block ends; yields its URL, or None when port is 0 (off)."""
    if port == 0:
        yield None
        return
    runner = web.AppRunner(health_app(probes), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            from twin.startup import StartupRefused

            raise StartupRefused(f"the health endpoint cannot listen on {host}:{port} ({error.strerror}): set "
                                 "TWIN_HEALTH_PORT to a free port, or 0 to turn it off") from error
        url = f"http://{host}:{port}/healthz"
        log.info("health at %s", url)
        yield url
    finally:
        await runner.cleanup()


def twin_probes(app: TwinApp, model_url: str, platforms: dict[str, Watched]) -> dict[str, Probe]:
    """The parts of one running twin: its stores, its model server, its platforms."""
    settings = app.settings
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    probes = {"database": database_probe(app), "vector_store": vector_probe(app),
              "model_server": model_probe(model_url, settings.llm_served_name, key)}
    return probes | {name: platform_probe(adapter) for name, adapter in platforms.items()}


def serve_health(app: TwinApp, model_url: str, platforms: dict[str, Watched]):  # noqa: ANN201 - a context manager
    """`health_server` for a running twin at its settings' host and port."""
    settings = app.settings
    return health_server(settings.health_host, settings.health_port, twin_probes(app, model_url, platforms))
