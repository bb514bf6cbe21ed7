"""People on the test homeserver: a matrix-nio client per person (with end-to-end encryption when given a
store), creating rooms, inviting the twin, sending messages and waiting for what the twin does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    Event,
    MatrixRoom,
    RoomMemberEvent,
    RoomMessage,
    RoomMessageNotice,
)
from support import wait_for
from synapse_server import Account, SynapseServer, SynapseUnavailable, start_synapse

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
WAIT = 30.0  # seconds for the twin to do something; it takes well under one on the test server


@pytest.fixture(scope="session")
def synapse() -> Any:
    """A real Synapse for the whole session, with Ada (the owner) and Eve (a stranger) registered."""
    try:
        server = start_synapse()
    except SynapseUnavailable as error:
        pytest.skip(f"Synapse cannot start here: {error}")
    server.register("ada", admin=True)
    server.register("eve")
    yield server
    server.stop()


def account(server: SynapseServer, name: str) -> Account:
    """A user the session fixture registered."""
    return Account(f"@{name}:localhost", f"{name}-password")


class Person:
    """One user's client; every event it syncs is kept, per room, in arrival order."""

    def __init__(self, server: SynapseServer, who: Account, store: Path | None = None, device: str = "PHONE") -> None:
        config = AsyncClientConfig(encryption_enabled=store is not None, store_sync_tokens=False)
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(server.url, who.user_id, device_id=device, store_path=str(store or ""),
                                  config=config)
        self.account = who
        self.events: list[tuple[str, Event]] = []

    async def __aenter__(self) -> Person:
        await ok(self.client.login(self.account.password, device_name="test"))
        await ok(self.client.sync(timeout=0, full_state=True))  # history before the test is not the test's
        self.client.add_event_callback(self._keep, (Event,))
        await self._keys()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    async def _keep(self, room: MatrixRoom, event: Event) -> None:
        self.events.append((room.room_id, event))

    async def _keys(self) -> None:
        client = self.client
        if client.should_upload_keys:
            await ok(client.keys_upload())
        if client.should_query_keys:
            await ok(client.keys_query())
        if client.should_claim_keys:
            await ok(client.keys_claim(client.get_users_for_key_claiming()))

    async def sync(self) -> None:
        """One short sync and the key upkeep after it."""
        await ok(self.client.sync(timeout=300))
        await self._keys()

    async def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Sync until the condition holds; fails the test after `timeout` seconds."""
        await wait_for(condition, timeout, lambda: f"{what} ({self.account.user_id})", between=self.sync)

    async def room(self, invite: list[str], encrypted: bool = False, direct: bool = False) -> str:
        """A new room with these users invited; its id."""
        response = await ok(self.client.room_create(invite=invite, is_direct=direct, name=None if direct else "Crew",
                                                    initial_state=[ENCRYPTION] if encrypted else []))
        return str(response.room_id)

    async def say(self, room_id: str, body: str, **content: Any) -> str:
        """An m.text message (encrypted in an encrypted room); its event id."""
        response = await ok(self.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body,
                                                                              **content},
                                                  ignore_unverified_devices=True))
        return str(response.event_id)

    def membership(self, room_id: str, user_id: str) -> str | None:
        """The user's latest membership in the room, as this person saw it."""
        changes = [event.membership for room, event in self.events
                   if room == room_id and isinstance(event, RoomMemberEvent) and event.state_key == user_id]
        return changes[-1] if changes else None

    async def wait_membership(self, room_id: str, user_id: str, membership: str) -> None:
        """Until the user has joined (or left) the room."""
        await self.wait_for(lambda: self.membership(room_id, user_id) == membership, f"{user_id} {membership}")

    def messages_from(self, room_id: str, sender: str) -> list[RoomMessage]:
        """The messages this sender sent in the room since the person logged in."""
        return [event for room, event in self.events
                if room == room_id and isinstance(event, RoomMessage) and event.sender == sender]

    async def wait_replies(self, room_id: str, sender: str, count: int = 1) -> list[RoomMessageNotice]:
        """Until the sender (the twin) has sent `count` notices in the room; those notices."""
        def notices() -> list[RoomMessageNotice]:
            return [event for event in self.messages_from(room_id, sender) if isinstance(event, RoomMessageNotice)]

        await self.wait_for(lambda: len(notices()) >= count, f"{count} replies from {sender}")
        return notices()


async def ok(request: Any) -> Any:
    """The response; the test fails with the homeserver's error otherwise."""
    response = await request
    if isinstance(response, ErrorResponse):
        raise AssertionError(f"the homeserver refused: {response}")
    return response


async def settle(seconds: float = 1.5) -> None:
    """Time for the twin to (not) react, where the test asserts that nothing happens."""
    await asyncio.sleep(seconds)
