"""Matrix: room events into core messages, replies into room messages (matrix-nio, end-to-end encryption)."""

from bots.matrix.adapter import MatrixAdapter, MatrixOptions, SyncTokens
from bots.matrix.client import (
                                 Credentials,
                                 MatrixError,
                                 MatrixUnreachable,
                                 build_client,
                                 checked,
                                 send_text,
                                 transaction_id,
)
from bots.matrix.health import MatrixSetupError, check_login
from bots.matrix.inbound import PLATFORM, RoomContext, invite_accepted, mentions, to_inbound, without_mention

__all__ = [
    "PLATFORM", "Credentials", "MatrixAdapter", "MatrixError", "MatrixOptions", "MatrixSetupError",
    "MatrixUnreachable", "RoomContext", "SyncTokens", "build_client", "check_login", "checked", "invite_accepted",
    "mentions", "send_text", "to_inbound", "transaction_id", "without_mention",
]
