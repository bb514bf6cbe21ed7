"""A Bot API test server: speaks the Telegram Bot API over real HTTP on 127.0.0.1, in a thread.

Tests push updates into it (served by getUpdates long polls with offset semantics), read what the bot called
(sendMessage, setMyCommands, setWebhook, ...), and script failures (a 429 with retry_after, a 502)."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from support import wait_for

BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Ada's twin", "username": "ada_twin_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False,
            "can_connect_to_business": True}

TEXT_PARAMETERS = {"text", "url", "secret_token", "business_connection_id"}  # sent as they are, never JSON


@dataclass(frozen=True)
class Call:
    """One Bot API request as the server received it, and the HTTP status it answered."""

    method: str
    params: dict[str, Any]
    status: int


class BotAPIServer:
    """The Bot API for one bot token; a wrong token gets 401 like api.telegram.org."""

    def __init__(self, token: str, bot_user: dict[str, Any] | None = None) -> None:
        self.token = token
        self.bot_user = dict(bot_user or BOT_USER)
        self.calls: list[Call] = []
        self.business_connections: dict[str, dict[str, Any]] = {}  # what getBusinessConnection knows
        self.migrated: dict[int, int] = {}  # group chat id -> the supergroup it became (sendMessage there fails)
        self._updates: list[dict[str, Any]] = []
        self._faults: deque[tuple[str, int, dict[str, Any]]] = deque()
        self._next_update_id = itertools.count(1)
        self._next_message_id = itertools.count(10_000)
        self._changed = threading.Condition()
        self._closed = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """The base URL, as TWIN_TELEGRAM_API_URL takes it."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> BotAPIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:  # wake pending long polls, or shutdown waits for them
            self._closed = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # -- what tests do ------------------------------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates (an update_id is given when it has none); the update."""
        update = dict(update)
        update.setdefault("update_id", next(self._next_update_id))
        with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return update

    def fail_next(self, method: str, status: int = 429, retry_after: int | None = 1) -> None:
        """The next call of `method` fails with this status (a 429 carries retry_after, like Telegram's)."""
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": f"scripted failure {status}"}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
            body["description"] = f"Too Many Requests: retry after {retry_after}"
        self._faults.append((method, status, body))

    def called(self, method: str, ok_only: bool = True) -> list[dict[str, Any]]:
        """Parameters of every call of a method (by default only those answered with 200)."""
        return [call.params for call in list(self.calls) if call.method == method and (call.status == 200
                                                                                       or not ok_only)]

    def sent(self) -> list[dict[str, Any]]:
        """Every message the bot sent."""
        return self.called("sendMessage")

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait (without blocking the event loop) until the condition holds; AssertionError after the timeout."""
        await wait_for(condition, timeout, lambda: f"a condition; calls: {[c.method for c in self.calls]}")

    async def wait_sent(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The sent messages, once there are at least `count`."""
        await self.wait_for(lambda: len(self.sent()) >= count, timeout)
        return self.sent()

    # -- the Bot API -----------------------------------------------------------------------------------------

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Status and JSON body for one Bot API call."""
        fault = next((f for f in self._faults if f[0] == method), None)
        if fault is not None:
            self._faults.remove(fault)
            return fault[1], fault[2]
        route = self._routes().get(method)
        if route is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        return route(params)

    def _routes(self) -> dict[str, Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]]:
        def ok(value: Any) -> Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]:
            return lambda _params: (200, {"ok": True, "result": value})

        return {
            "getMe": ok(self.bot_user), "getUpdates": self._get_updates, "sendMessage": self._send_message,
            "setMyCommands": ok(True), "deleteMyCommands": ok(True), "deleteWebhook": ok(True),
            "sendChatAction": ok(True),  # "typing…"
            "setWebhook": ok(True), "getBusinessConnection": self._business_connection, "close": ok(True),
            "getWebhookInfo": ok({"url": "", "has_custom_certificate": False, "pending_update_count": 0}),
        }

    def _get_updates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Confirms updates below `offset`, then long-polls up to `timeout` seconds for the rest."""
        offset, timeout = int(params.get("offset") or 0), float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        with self._changed:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._closed and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return 200, {"ok": True, "result": list(self._updates)}

    def _send_message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not str(params.get("text", "")).strip():
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
        if len(str(params["text"]).encode("utf-16-le")) // 2 > 4096:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        chat_id = int(params["chat_id"])
        if chat_id in self.migrated:  # as Telegram answers for a group upgraded to a supergroup
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: group chat was upgraded to a supergroup chat",
                         "parameters": {"migrate_to_chat_id": self.migrated[chat_id]}}
        message = {"message_id": next(self._next_message_id), "date": int(time.time()), "from": self.bot_user,
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                   "text": params["text"]}
        if params.get("business_connection_id"):
            message["business_connection_id"] = params["business_connection_id"]
        return 200, {"ok": True, "result": message}

    def _business_connection(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        known = self.business_connections.get(str(params.get("business_connection_id")))
        if known is None:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: business connection not found"}
        return 200, {"ok": True, "result": known}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._serve(b"")

            def do_POST(self) -> None:
                self._serve(self.rfile.read(int(self.headers.get("Content-Length", 0))))

            def _serve(self, body: bytes) -> None:
                token, _, method = urlsplit(self.path).path.removeprefix("/bot").partition("/")
                params = _parameters(self.headers.get("Content-Type", ""), body, urlsplit(self.path).query)
                if token != api.token:
                    status, payload = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
                else:
                    status, payload = api.answer(method, params)
                api.calls.append(Call(method, params, status))
                data = json.dumps(payload).encode()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a long poll the bot gave up
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        return Handler


def _parameters(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """Bot API parameters from JSON, a form or the query string; JSON-encoded values are decoded."""
    if content_type.startswith("application/json") and body:
        return json.loads(body)
    pairs = parse_qsl(body.decode() if body else query, keep_blank_values=True)
    return {key: value if key in TEXT_PARAMETERS else _maybe_json(value) for key, value in pairs}


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


# -- updates as Telegram sends them ----------------------------------------------------------------------------

TOKEN = "123456789:AAH-test-token-not-a-real-one_0123456"
ADA = {"id": 111111, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace"}  # the owner
EVE = {"id": 222222, "is_bot": False, "first_name": "Eve"}
MALLORY = {"id": 333333, "is_bot": False, "first_name": "Mallory"}
_message_ids = itertools.count(1)


def private(text: str, user: dict[str, Any]) -> dict[str, Any]:
    """An update with a message from `user` in their private chat with the bot (a /command has its entity)."""
    chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    message = {"message_id": next(_message_ids), "from": user, "chat": chat, "date": 1735732800, "text": text}
    if text.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return {"message": message}


def business(text: str, user: dict[str, Any], connection: str = "BCabc123") -> dict[str, Any]:
    """An update with a message in the owner's private chat with Eve, through a business connection."""
    message = private(text, user)["message"]
    message["chat"] = {"id": EVE["id"], "type": "private", "first_name": EVE["first_name"]}
    return {"business_message": message | {"business_connection_id": connection}}


def connection(user: dict[str, Any], connection_id: str = "BCabc123", enabled: bool = True) -> dict[str, Any]:
    """A BusinessConnection object: `user` connected the bot to their account (or disabled it)."""
    return {"id": connection_id, "user": user, "user_chat_id": user["id"], "date": 1735732800,
            "rights": {"can_reply": True}, "is_enabled": enabled}

