"""An OpenAI-compatible chat server for tests and benchmarks: it returns the prompt it received (or scripted
answers and faults), over real HTTP, so the twin's real client and pipeline are exercised end to end."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Fault:
    """A scripted failure: an HTTP status, a delay longer than the client waits, or a body that is not JSON."""

    status: int = 200
    delay: float = 0.0
    body: str | None = None


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The whole prompt as one text: what the recording model answers with."""
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)


def instance_of(schema: dict[str, Any], text: str, defs: dict[str, Any] | None = None) -> Any:
    """A value that satisfies a JSON schema, with `text` in every string (so it records the prompt too)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return instance_of(defs[schema["$ref"].rsplit("/", 1)[-1]], text, defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        return instance_of(schema["anyOf"][0], text, defs)
    kind = schema.get("type", "string")
    if kind == "object":
        return {name: instance_of(sub, text, defs) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [instance_of(schema["items"], text, defs)] if schema.get("minItems") else []
    return {"integer": 0, "number": 0.0, "boolean": False, "null": None}.get(kind, text)


class RecordingLLM:
    """Serves /v1/chat/completions and /v1/models on 127.0.0.1; records every request body."""

    def __init__(self, served: tuple[str, ...] = ("base",), cut_to_max_tokens: bool = False,
                 root: str | None = None) -> None:
        self.served = served
        self.root = root  # the base model's path or id in /v1/models, as vLLM reports it (None: left out)
        self.cut_to_max_tokens = cut_to_max_tokens  # like a real model: at most max_tokens (here: words) back
        self.delay = 0.0  # seconds every answer takes, like generation (tests that kill a twin mid-answer)
        self.word_delay = 0.0  # seconds between the words of a streamed answer, like tokens being generated
        self.stream_ended: list[float] = []  # time.monotonic() when each streamed answer's last event went out
        self.requests: list[dict[str, Any]] = []
        self.script: deque[str | dict | Fault] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The /v1 base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> RecordingLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def prompts(self) -> list[str]:
        """Every prompt received, as text."""
        return [prompt_text(body.get("messages", [])) for body in self.requests]

    def answer(self, body: dict[str, Any]) -> tuple[int, str, float]:
        """Status, body and delay for one chat request."""
        self.requests.append(body)
        scripted = self.script.popleft() if self.script else None
        if isinstance(scripted, Fault):
            return scripted.status, scripted.body if scripted.body is not None else "{}", scripted.delay
        text = prompt_text(body.get("messages", []))
        if isinstance(scripted, dict):
            content = json.dumps(scripted)
        elif isinstance(scripted, str):
            content = scripted
        elif (body.get("response_format") or {}).get("type") == "json_schema":
            content = json.dumps(instance_of(body["response_format"]["json_schema"]["schema"], text))
        else:
            content = text
        if self.cut_to_max_tokens and body.get("max_tokens"):
            content = " ".join(content.split(" ")[: body["max_tokens"]])
        return 200, json.dumps(self._completion(body, content)), self.delay

    @staticmethod
    def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-recording", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "base"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(content.split()), "completion_tokens": len(content.split())},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real model server: no new connection per request

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    models = [{"id": name, "object": "model"} for name in llm.served]
                    if llm.root is not None:
                        models[0]["root"] = llm.root
                    self._send(200, json.dumps({"object": "list", "data": models}))
                elif self.path == "/health":
                    self._send(200, "{}")
                else:
                    self._send(404, json.dumps({"error": f"no route {self.path}"}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, json.dumps({"error": f"no route {self.path}"}))
                    return
                status, payload, delay = llm.answer(body)
                if delay:
                    time.sleep(delay)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    if body.get("stream") and status == 200:
                        self._stream(json.loads(payload)["choices"][0]["message"]["content"])
                    else:
                        self._send(status, payload)

            def _stream(self, content: str) -> None:
                """Server-sent events as vLLM sends them: a delta per word, then [DONE]."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                words = content.split(" ")
                for index, word in enumerate(words):
                    delta = {"choices": [{"index": 0, "delta": {"content": word if index == 0 else " " + word}}]}
                    self._chunk(f"data: {json.dumps(delta)}\n\n")
                    if llm.word_delay:
                        time.sleep(llm.word_delay)
                self._chunk("data: [DONE]\n\n")
                llm.stream_ended.append(time.monotonic())
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler
