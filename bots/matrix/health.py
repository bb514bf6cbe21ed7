"""Whether the Matrix account and the homeserver work: one login (or whoami), explained in plain words."""

from __future__ import annotations

from dataclasses import replace

from bots.base import PlatformSetupError
from bots.matrix.client import Credentials, MatrixError, MatrixUnreachable, build_client, close, log_in

HINTS = {
    "M_FORBIDDEN": "Matrix rejected the login (M_FORBIDDEN): check TWIN_MATRIX_USER_ID and TWIN_MATRIX_PASSWORD",
    "M_UNKNOWN_TOKEN": "Matrix rejected the access token (M_UNKNOWN_TOKEN): log in again and copy the new token",
    "M_USER_DEACTIVATED": "the twin's Matrix account is deactivated (M_USER_DEACTIVATED)",
}


class MatrixSetupError(PlatformSetupError):
    """The account or the homeserver does not work; the message says what to fix."""


async def check_login(credentials: Credentials) -> str:
    """'@twin:example.org at https://...' after a login or whoami; MatrixSetupError when it fails."""
    homeserver = credentials.homeserver.rstrip("/")
    if credentials.password:  # a throwaway device: logging it out must not delete the twin's own (and its keys)
        credentials = replace(credentials, device_id=None)
    client = build_client(credentials, store_path=None, retries=0, request_timeout=15)
    try:
        user_id = await log_in(client, credentials)
        if credentials.password:  # a check must not leave a session behind
            await client.logout()
    except MatrixUnreachable as error:
        raise MatrixSetupError(f"the Matrix homeserver at {homeserver} is unreachable: {error}") from error
    except MatrixError as error:
        raise MatrixSetupError(HINTS.get(error.code, f"Matrix refused the login at {homeserver}: {error}")) from error
    finally:
        await close(client)
    return f"{user_id} at {homeserver}"
