"""The language model, always reached through an OpenAI-compatible chat API (vLLM serves L2 this way)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

Messages = list[dict[str, str]]
Schema = TypeVar("Schema", bound=BaseModel)


class LLMUnavailable(RuntimeError):
    """The model could not be reached or kept failing; the caller's message is already safe in L0."""


class LLMOutputError(RuntimeError):
    """The model answered, but not in the shape that was asked for."""


@dataclass(frozen=True)
class Completion:
    """One generated answer and which model (base or adapter) produced it."""

    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LanguageModel(Protocol):
    """What the core needs from a model server."""

    async def complete(
        self, messages: Messages, *, model: str | None = None, max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> Completion: ...

    async def complete_json(
        self, messages: Messages, schema: type[Schema], *, model: str | None = None, max_tokens: int | None = None,
    ) -> Schema: ...


def _retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.TransportError):  # connection refused, reset, timeouts
        return True
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code == 429 or error.response.status_code >= 500
    return False


def json_response_format(schema: type[BaseModel]) -> dict:
    """OpenAI's structured-output request; vLLM enforces it with guided decoding."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": True},
    }


def parse_json(text: str, schema: type[Schema]) -> Schema:
    """Validate a model's JSON answer against the schema it was asked for."""
    try:
        return schema.model_validate_json(text)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in error.errors()[:3])
        raise LLMOutputError(f"the model's answer does not match {schema.__name__}: {problems}") from error


class OpenAIChatClient:
    """Chat completions over HTTP with timeouts and retries with exponential backoff."""

    def __init__(
        self, http: httpx.AsyncClient, *, default_model: str, max_tokens: int = 256, attempts: int = 3,
        backoff_seconds: float = 0.5, text_sampling: dict | None = None,
    ) -> None:
        self.http = http
        self.default_model = default_model
        self.text_sampling = dict(text_sampling or {})  # extra fields for free text only, never for JSON
        self.max_tokens = max_tokens
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds

    async def complete(
        self, messages: Messages, *, model: str | None = None, max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        """One chat completion."""
        body = self._body(messages, model, max_tokens, temperature) | self.text_sampling
        data = await self._post("chat/completions", body)
        return self._completion(data, body["model"])

    async def complete_json(
        self, messages: Messages, schema: type[Schema], *, model: str | None = None, max_tokens: int | None = None,
    ) -> Schema:
        """A completion constrained to a JSON schema, validated before it is returned."""
        body = self._body(messages, model, max_tokens, 0.0)
        body["response_format"] = json_response_format(schema)
        data = await self._post("chat/completions", body)
        return parse_json(self._completion(data, body["model"]).text, schema)

    async def stream(
        self, messages: Messages, *, model: str | None = None, max_tokens: int | None = None,
        temperature: float = 0.0,
    ) -> AsyncIterator[tuple[float, str]]:
        """Yield (seconds since the request, text delta) as tokens arrive: a reply shown as it is written, and
        latency measurements."""
        body = self._body(messages, model, max_tokens, temperature) | self.text_sampling | {"stream": True}
        start = time.perf_counter()
        try:
            async with self.http.stream("POST", "chat/completions", json=body) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    try:
                        delta = json.loads(line[6:])["choices"][0].get("delta", {}).get("content") or ""
                    except (ValueError, KeyError, IndexError, AttributeError) as error:
                        raise LLMOutputError(f"the model server streamed an unreadable event: {line[:80]}") from error
                    if delta:
                        yield time.perf_counter() - start, delta
        except httpx.HTTPError as error:
            raise LLMUnavailable(f"the model server at {self.http.base_url} failed: {error}") from error

    async def models(self) -> list[str]:
        """Names the server answers to: the base model and every loaded adapter."""
        data = await self._get("models")
        return [entry["id"] for entry in data.get("data", [])]

    def _body(self, messages: Messages, model: str | None, max_tokens: int | None, temperature: float) -> dict:
        return {
            "model": model or self.default_model,
            "messages": messages,
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": temperature,
        }

    @staticmethod
    def _completion(data: dict, model: str) -> Completion:
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as error:
            raise LLMOutputError(f"the model server returned no choice: {str(data)[:200]}") from error
        usage = data.get("usage") or {}
        return Completion(
            text=text, model=data.get("model", model),
            prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=usage.get("completion_tokens", 0),
        )

    async def _post(self, path: str, body: dict) -> dict:
        return await self._request("POST", path, body)

    async def _get(self, path: str) -> dict:
        return await self._request("GET", path, None)

    async def _request(self, method: str, path: str, body: dict | None) -> dict:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=10),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self.http.request(method, path, json=body)
                    response.raise_for_status()
                    return response.json()
        except httpx.HTTPStatusError as error:
            detail = error.response.text[:300]
            raise LLMUnavailable(
                f"the model server answered {error.response.status_code} to {path}: {detail}"
            ) from error
        except httpx.HTTPError as error:
            raise LLMUnavailable(
                f"the model server at {self.http.base_url} is unreachable after {self.attempts} attempts: "
                f"{type(error).__name__}: {error}"
            ) from error
        except ValueError as error:  # the body was not JSON
            raise LLMOutputError(f"the model server sent a body that is not JSON: {error}") from error
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying either returns or raises
