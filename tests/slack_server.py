"""A Slack Web API test server: speaks the Web API over real HTTP on 127.0.0.1 (aiohttp, in its own thread).

It records every call (chat.postMessage, chat.postEphemeral, chat.update, views.open, users.info, auth.test), keeps
the messages posted per channel and answers conversations.history / conversations.replies from them (top-level
messages newest first, `oldest` exclusive, metadata only with include_all_metadata, user ids are not channels), can
hold a method's calls unanswered until released, answer a call with a 429 and Retry-After or an error once, or
slowly, serves response_url posts of slash commands, and a Socket Mode websocket that `apps.connections.open`
points to, through which tests push envelopes and read the acks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from support import free_port, wait_for

BOT_TOKEN = "xoxb-1111-2222-secretbottoken"
APP_TOKEN = "xapp-1-A01TWIN-3333-secretapptoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_USER = "U0TWINBOT"
TEAM = "T01TEAM"
PEOPLE = {"U01ADA": "Ada Lovelace", "U02EVE": "Eve Moneypenny", "U03MAL": "Mallory"}


@dataclass(frozen=True)
class Call:
    """One Web API request as the server received it, and the HTTP status it answered."""

    method: str
    params: dict[str, Any]
    status: int
    token: str



class SlackAPIServer:
    """The Web API for one bot token (and one app token for Socket Mode); other tokens get invalid_auth."""

    def __init__(self, bot_token: str = BOT_TOKEN, app_token: str = APP_TOKEN) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []  # what slash commands answered through their response_url
        self.acks: list[dict[str, Any]] = []  # Socket Mode acknowledgements
        self.channels: dict[str, list[dict[str, Any]]] = {}  # channel id -> messages posted there, oldest first
        self._faults: deque[tuple[str, int, int, str]] = deque()
        self._delays: dict[str, float] = {}
        self._holds: dict[str, asyncio.Event] = {}  # calls of these methods wait until released
        self.held: list[str] = []  # methods of the calls waiting on a hold right now
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The Web API base URL, as TWIN_SLACK_API_URL takes it."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str) -> str:
        """A response_url for a slash command: what is posted there lands in `responses`."""
        return f"http://127.0.0.1:{self.port}/respond/{name}"

    def __enter__(self) -> SlackAPIServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/ws", self._websocket)
        app.router.add_post("/respond/{name}", self._respond)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1, error: str = "ratelimited") -> None:
        """The next call of `method` gets this status (429: with Retry-After) and error instead of an answer."""
        self._faults.append((method, status, retry_after, error))

    def slow(self, method: str, seconds: float) -> None:
        """Every call of `method` is answered only after this many seconds."""
        self._delays[method] = seconds

    def hold(self, method: str) -> None:
        """Calls of `method` get no answer until `release(method)`: a lookup hanging while a process dies."""
        self._holds[method] = asyncio.run_coroutine_threadsafe(_new_event(), self._loop).result(5)

    def release(self, method: str) -> None:
        """Answer the held calls of `method`, and later ones at once."""
        event = self._holds.pop(method, None)
        if event is not None:
            self._loop.call_soon_threadsafe(event.set)

    def lose_last_posts(self, count: int) -> None:
        """The last `count` messages posted vanish from their channels, as if Slack never got them."""
        posts = sorted((m for ms in self.channels.values() for m in ms), key=lambda m: float(m["ts"]))
        for lost in posts[-count:]:
            for messages in self.channels.values():
                if lost in messages:
                    messages.remove(lost)

    def called(self, method: str, ok_only: bool = True) -> list[dict[str, Any]]:
        """The parameters of each call of `method` (by default only those answered 200)."""
        return [call.params for call in self.calls if call.method == method and (call.status == 200 or not ok_only)]

    def posted(self) -> list[dict[str, Any]]:
        """Every message posted with chat.postMessage."""
        return self.called("chat.postMessage")

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait (without blocking the caller's loop) until the predicate holds."""
        await wait_for(predicate, timeout, lambda: f"a condition; calls so far: {[c.method for c in self.calls]}")

    async def wait_posted(self, count: int) -> list[dict[str, Any]]:
        """The first `count` posted messages, once they are there."""
        await self.wait_for(lambda: len(self.posted()) >= count)
        return self.posted()[:count]

    async def push_socket(self, payload: dict[str, Any], kind: str = "events_api") -> str:
        """Send an envelope to the connected Socket Mode client; its envelope id."""
        await self.wait_for(lambda: bool(self._sockets))
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api", "retry_attempt": 0, "retry_reason": ""}
        future = asyncio.run_coroutine_threadsafe(self._sockets[-1].send_json(envelope), self._loop)
        await asyncio.wrap_future(future)
        return envelope_id

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or str(params.get("token", ""))
        if method in self._delays:
            await asyncio.sleep(self._delays[method])
        if method in self._holds:
            self.held.append(method)
            try:
                await self._holds[method].wait()
            finally:
                self.held.remove(method)
        fault = next((f for f in self._faults if f[0] == method), None)
        if fault is not None:
            self._faults.remove(fault)
            self.calls.append(Call(method, params, fault[1], token))
            headers = {"Retry-After": str(fault[2])} if fault[1] == 429 else {}
            return web.json_response({"ok": False, "error": fault[3]}, status=fault[1], headers=headers)
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        self.calls.append(Call(method, params, 200, token))
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        answer = self._answers().get(method)
        if answer is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            return web.json_response({"ok": True, **answer(params)})
        except LookupError as error:
            return web.json_response({"ok": False, "error": str(error.args[0])})

    def _answers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": lambda _: {"url": "https://ada.slack.test/", "team": "Ada's workspace", "user": "ada_twin",
                                    "team_id": TEAM, "user_id": BOT_USER, "bot_id": "B0TWIN"},
            "chat.postMessage": self._post,
            "chat.postEphemeral": lambda p: {"message_ts": self._next_ts()},
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.open": lambda p: {"channel": {"id": _dm_channel(str(p.get("users")))}},
            "chat.update": lambda p: {"channel": p.get("channel"), "ts": p.get("ts")},
            "views.open": lambda p: {"view": {"id": "V01EDIT", **(p.get("view") or {})}},
            "users.info": lambda p: {"user": {"id": p.get("user"), "real_name": PEOPLE.get(str(p.get("user")), "")}},
            "apps.connections.open": lambda _: {"url": f"ws://127.0.0.1:{self.port}/ws"},
        }

    def _next_ts(self) -> str:
        return f"{1767225600 + next(self._ts)}.000100"

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = _dm_channel(str(params.get("channel")))  # posting to a user id opens the bot's DM with them
        message = {"type": "message", "user": BOT_USER, "bot_id": "B0TWIN", "ts": self._next_ts(),
                   "text": params.get("text")}
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        if params.get("metadata"):
            metadata = params["metadata"]
            message["metadata"] = json.loads(metadata) if isinstance(metadata, str) else metadata
        self.channels.setdefault(channel, []).append(message)
        return {"channel": channel, "ts": message["ts"], "message": {"text": params.get("text")}}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages (and thread parents) newest first, after `oldest`."""
        messages = [m for m in self._channel(params) if m.get("thread_ts", m["ts"]) == m["ts"]]
        return self._page(list(reversed(messages)), params)

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """A thread: its replies oldest first (the parent, posted by someone else, is not kept here)."""
        thread = str(params.get("ts"))
        return self._page([m for m in self._channel(params) if m.get("thread_ts") == thread], params)

    def _channel(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        channel = str(params.get("channel"))
        if not channel.startswith(("C", "D", "G")):
            raise LookupError("channel_not_found")
        oldest = float(params.get("oldest") or 0)
        return [m for m in self.channels.get(channel, []) if float(m["ts"]) > oldest]

    @staticmethod
    def _page(messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        start, limit = int(params.get("cursor") or 0), int(params.get("limit") or 100)
        page = messages[start:start + limit]
        if str(params.get("include_all_metadata")).lower() not in ("1", "true"):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(messages)
        return {"messages": page, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append({"name": request.match_info["name"], **await request.json()})
        return web.Response(text="ok")

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A01TWIN"}})
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                with contextlib.suppress(ValueError):
                    self.acks.append(json.loads(message.data))
        self._sockets.remove(ws)
        return ws


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


def _dm_channel(channel: str) -> str:
    """The bot's DM channel with a user, for a user id; any other channel id as it is."""
    return "D" + channel[1:] if channel.startswith(("U", "W")) else channel


async def _params(request: web.Request) -> dict[str, Any]:
    """Query, JSON or form parameters; JSON-valued form fields (blocks, view) decoded."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        params |= await request.json()
    elif request.can_read_body:
        for key, value in (await request.post()).items():
            params[key] = _maybe_json(value) if isinstance(value, str) else value
    return params


def _maybe_json(value: str) -> Any:
    if value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value
