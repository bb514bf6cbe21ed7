"""The HTTP side of a vLLM server: health, the model names it serves, LoRA adapters loaded at run time."""

from __future__ import annotations

from typing import Any

import httpx

HTTP_TIMEOUT = 10.0
RUNTIME_LORA_HINT = (
    "this server does not load adapters at run time (it needs --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)"
)


class LLMServerError(RuntimeError):
    """The model server could not be started, reached or told what to do."""


class VLLMEndpoint:
    """A vLLM server's administrative API at an OpenAI-compatible /v1 base URL."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = HTTP_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def healthy(self, served_name: str, *, check_engine: bool = True) -> bool:
        """Whether the server answers and serves `served_name`; `check_engine` also asks vLLM's /health."""
        try:
            if check_engine:
                health = httpx.get(f"{self.url.removesuffix('/v1')}/health", timeout=self.timeout)
                if health.status_code != 200:
                    return False
            return served_name in self.model_names()
        except (httpx.HTTPError, LLMServerError):
            return False

    def models(self) -> list[dict[str, Any]]:
        """The /v1/models entries: the base model and each loaded adapter (its `root` is the adapter's path)."""
        data = self._request("GET", "models", None, "list models").json()
        entries = data.get("data", []) if isinstance(data, dict) else []
        return [entry for entry in entries if isinstance(entry, dict)]

    def model_names(self) -> list[str]:
        """Names the server answers to."""
        return [str(entry.get("id")) for entry in self.models()]

    def load_adapter(self, name: str, location: str, *, replace: bool = False) -> None:
        """Load the PEFT LoRA folder at `location` (a path on the server's machine) under `name`."""
        body = {"lora_name": name, "lora_path": location, "load_inplace": replace}
        self._request("POST", "load_lora_adapter", body, f"load adapter {name!r} from {location}")

    def unload_adapter(self, name: str) -> None:
        """Unload the adapter served under `name`."""
        self._request("POST", "unload_lora_adapter", {"lora_name": name}, f"unload adapter {name!r}")

    def _request(self, method: str, path: str, body: dict[str, Any] | None, action: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = httpx.request(method, f"{self.url}/{path}", json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as error:
            raise LLMServerError(
                f"the model server at {self.url} is unreachable ({action}): {type(error).__name__}: {error}"
            ) from error
        if response.status_code != 200:
            raise LLMServerError(f"the model server at {self.url} refused to {action}: {error_detail(response)}")
        return response


def error_detail(response: httpx.Response) -> str:
    """The status and vLLM's error message (or the body's start), with a hint where the route is missing."""
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(data, dict) and data.get("detail") == "Not Found" and "lora_adapter" in response.url.path:
        message = RUNTIME_LORA_HINT
    return f"{response.status_code} {message or response.text[:300]}"
