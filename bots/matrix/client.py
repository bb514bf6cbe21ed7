"""The edge with matrix-nio: a client that retries rate limits and network errors, and nio's error objects (it
returns them instead of raising) turned into our exceptions."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import ClientError
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    LocalProtocolError,
    LoginResponse,
    Response,
    SendRetryError,
)

from bots.logs import redact_in_logs
from bots.text import split_text

RETRIES = 5  # per request, for 429 / M_LIMIT_EXCEEDED (waited out as the server says) and network errors
BACKOFF = 0.5  # seconds, doubled per network error (nio's exponential wait), at most MAX_WAIT
MAX_WAIT = 30.0
MESSAGE_LIMIT = 16_000  # characters per event: Synapse refuses events over 65,536 bytes, JSON and all
R = TypeVar("R", bound=Response)


class MatrixError(Exception):
    """The homeserver refused a request (after the retries); `code` is its errcode, e.g. M_FORBIDDEN."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class MatrixUnreachable(MatrixError):
    """The homeserver did not answer (after the retries)."""

    def __init__(self, detail: str) -> None:
        super().__init__("unreachable", detail)


@dataclass(frozen=True)
class Credentials:
    """Who the twin logs in as: a password (a login per start) or an access token (used as it is)."""

    homeserver: str
    user_id: str
    device_id: str | None
    password: str | None = None
    access_token: str | None = None


def build_client(credentials: Credentials, store_path: Path | None, retries: int = RETRIES,
                 request_timeout: float = 60.0) -> AsyncClient:
    """A nio client for the twin's account; with a store path, end-to-end encryption with keys kept there."""
    if store_path is not None:
        store_path.mkdir(parents=True, exist_ok=True)
    config = AsyncClientConfig(
        max_limit_exceeded=retries, max_timeouts=retries, backoff_factor=BACKOFF, max_timeout_retry_wait_time=MAX_WAIT,
        request_timeout=request_timeout, encryption_enabled=store_path is not None, store_sync_tokens=False,
    )
    return AsyncClient(credentials.homeserver.rstrip("/"), credentials.user_id, device_id=credentials.device_id,
                       store_path=str(store_path) if store_path else "", config=config)


async def checked(request: Awaitable[R | ErrorResponse]) -> R:
    """The response of one nio call; MatrixError for an error response, MatrixUnreachable for a network error."""
    try:
        response = await request
    except (ClientError, TimeoutError, OSError) as error:
        raise MatrixUnreachable(f"{type(error).__name__}: {error}") from error
    except (LocalProtocolError, SendRetryError) as error:  # nio refused before asking (e.g. a room it never synced)
        raise MatrixError("M_CLIENT", f"{type(error).__name__}: {error}") from error
    if isinstance(response, ErrorResponse):
        raise MatrixError(str(response.status_code or "M_UNKNOWN"), str(response.message or ""))
    return response


async def log_in(client: AsyncClient, credentials: Credentials) -> str:
    """Log in (password) or restore the session (access token); the user id; secrets masked in logs from now."""
    for secret in (credentials.password, credentials.access_token):
        if secret:
            redact_in_logs(secret)
    if credentials.access_token:
        client.access_token = credentials.access_token
        whoami = await checked(client.whoami())  # the token's own device: its keys are the ones in the store
        client.restore_login(str(whoami.user_id), str(whoami.device_id or credentials.device_id or ""),
                             credentials.access_token)
        return str(whoami.user_id)
    if not credentials.password:
        raise MatrixError("M_MISSING_TOKEN", "set TWIN_MATRIX_PASSWORD or TWIN_MATRIX_ACCESS_TOKEN")
    response: LoginResponse = await checked(client.login(credentials.password, device_name="Twin"))
    redact_in_logs(response.access_token)
    return str(response.user_id)


def transaction_id(message_id: str, part: int) -> str:
    """The send's transaction id for one part of the reply to a message: the same in every process, so the
    homeserver (which deduplicates sends per device and transaction id) turns a resend after a crash into a no-op."""
    return f"twin-{hashlib.sha256(message_id.encode()).hexdigest()[:32]}-{part}"


async def send_text(client: AsyncClient, room_id: str, text: str, reply_to: str | None = None,
                    answering: str | None = None) -> list[str]:
    """The text as m.notice events (what automated clients send), split to size; the event ids sent. With
    `answering` (the message id it answers) every part has a deterministic transaction id."""
    sent: list[str] = []
    for part, body in enumerate(split_text(text, MESSAGE_LIMIT)):
        content: dict[str, Any] = {"msgtype": "m.notice", "body": body}
        if reply_to and not sent:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        tx_id = transaction_id(answering, part) if answering else None
        # Trust on first use: in an encrypted room the reply goes to every device of the room's members.
        response = await checked(client.room_send(room_id, "m.room.message", content, tx_id=tx_id,
                                                  ignore_unverified_devices=True))
        sent.append(str(response.event_id))
    return sent


async def close(client: AsyncClient) -> None:
    """Close the HTTP session (and nio's store), never raising at shutdown."""
    try:
        await client.close()
    except (ClientError, OSError) as error:
        logging.getLogger(__name__).warning("Matrix: closing the client: %s", error)
