"""Matrix in the composition root: the adapter `twin run` starts and the check `twin doctor` runs, from settings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from twin.settings import Settings

if TYPE_CHECKING:  # built only when Matrix runs: `twin --help` does not pay for nio
    from bots.matrix import Credentials, MatrixAdapter
    from core.pipeline import Pipeline
    from twin.app import TwinApp

MATRIX_USER_ID = re.compile(r"@[^:\s]+:\S+")  # @localpart:server.name (the server part may hold a port)


def matrix_owner_ids(owner_ids: list[str]) -> frozenset[str]:
    """The owner's Matrix ids among settings' owner ids ('matrix:@ada:example.org', or a bare '@ada:example.org')."""
    found = set()
    for entry in owner_ids:
        account = entry.removeprefix("matrix:")
        if MATRIX_USER_ID.fullmatch(account):
            found.add(account)
    return frozenset(found)


def allowed_inviters(settings: Settings) -> frozenset[str]:
    """Users whose invites are joined: TWIN_MATRIX_ALLOWED_INVITERS, else the owner's Matrix ids."""
    if settings.matrix_allowed_inviters is not None:
        return frozenset(settings.matrix_allowed_inviters)
    return matrix_owner_ids(settings.owner_ids)


def matrix_credentials(settings: Settings) -> Credentials:
    """The twin's account on the homeserver."""
    from bots.matrix import Credentials

    assert settings.matrix_homeserver is not None and settings.matrix_user_id is not None
    password, token = settings.matrix_password, settings.matrix_access_token
    return Credentials(
        homeserver=settings.matrix_homeserver, user_id=settings.matrix_user_id, device_id=settings.matrix_device_id,
        password=password.get_secret_value() if password else None,
        access_token=token.get_secret_value() if token else None,
    )


def build_matrix(settings: Settings, app: TwinApp, pipeline: Pipeline) -> MatrixAdapter:
    """The Matrix adapter for these settings, feeding this pipeline."""
    from bots.matrix import MatrixAdapter, MatrixOptions, SyncTokens, build_client
    from storage.state import StateStore

    credentials = matrix_credentials(settings)
    client = build_client(credentials, settings.matrix_store_path)
    tokens = SyncTokens(StateStore(app.store.engine), app.twin.id)
    options = MatrixOptions(allowed_inviters(settings))
    return MatrixAdapter(client, credentials, pipeline.handle, tokens, options, ledger=pipeline)


async def check_matrix(settings: Settings) -> str:
    """What the homeserver says about the account: its id, or MatrixSetupError."""
    from bots.matrix import check_login

    detail = await check_login(matrix_credentials(settings))
    return f"{detail}, invites accepted from {', '.join(sorted(allowed_inviters(settings))) or 'nobody'}"
