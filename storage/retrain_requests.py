"""Retrain requests and the retrain job's progress, kept durable in platform_state (twin-wide), under two keys so
that neither writer can overwrite the other's news: requests are written only by those asking (/retrain, a
forget, a superseded fact), progress only by the retrain job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from storage.state import TWIN_WIDE, StateStore

REQUEST_KEY = "retrain-request"  # {"requested_at", "reason", "audiences", "reply_to": [[platform, chat id]]}
# {"handled": the requested_at it took up, "last_run", "outcomes", "reply_to": the chats of the request it took}
RUN_KEY = "retrain-run"


class RetrainRequests:
    """Who asked for a retrain, and what the job did last."""

    def __init__(self, engine: Engine) -> None:
        self.state = StateStore(engine)

    def request(self, twin_id: int, reason: str, audiences: list[str],
                reply_to: tuple[str, str] | None = None) -> None:
        """Record that a retrain is wanted for these audiences (joined with any request still pending); `reply_to`,
        the (platform, chat id) it was asked in, hears the outcome."""
        still_pending = self.pending(twin_id) or {}
        wanted = sorted(set(still_pending.get("audiences") or []) | set(audiences))
        chats = [list(chat) for chat in still_pending.get("reply_to") or []]
        if reply_to is not None and list(reply_to) not in chats:
            chats.append(list(reply_to))
        self.state.put(twin_id, TWIN_WIDE, REQUEST_KEY, {
            "requested_at": datetime.now(UTC).isoformat(), "reason": reason, "audiences": wanted, "reply_to": chats,
        })

    def pending(self, twin_id: int) -> dict | None:
        """The request the job has not taken up yet, if any: {'requested_at', 'reason', 'audiences'}."""
        request = self.state.get(twin_id, TWIN_WIDE, REQUEST_KEY) or {}
        handled = self.run(twin_id).get("handled")
        return request if request.get("requested_at") and request["requested_at"] != handled else None

    def run(self, twin_id: int) -> dict[str, Any]:
        """The job's own record: what it handled, when it last ran, its last outcomes."""
        return self.state.get(twin_id, TWIN_WIDE, RUN_KEY) or {}

    def take(self, twin_id: int, routine_every: timedelta) -> tuple[list[str] | None, bool]:
        """What the job should do now: (audiences, only_if_new). A pending request is taken up (a request made
        after this read stays pending); without one, a routine run of every audience is due once a period."""
        run = self.run(twin_id)
        now = datetime.now(UTC).isoformat()
        request = self.pending(twin_id)
        if request is not None:
            self.state.put(twin_id, TWIN_WIDE, RUN_KEY, run | {"handled": request["requested_at"], "last_run": now,
                                                               "reply_to": request.get("reply_to") or []})
            return list(request.get("audiences") or []), False
        last = run.get("last_run")
        if last is not None and datetime.now(UTC) - datetime.fromisoformat(last) < routine_every:
            return [], True
        self.state.put(twin_id, TWIN_WIDE, RUN_KEY, run | {"last_run": now, "reply_to": []})  # nobody asked
        return (None, True) if last is not None else ([], True)  # the first start: the first routine run waits

    def asked_from(self, twin_id: int) -> list[tuple[str, str]]:
        """The chats (platform, chat id) that asked for the run the job took up last: they hear its outcome."""
        return [(platform, chat) for platform, chat in self.run(twin_id).get("reply_to") or []]

    def record_outcomes(self, twin_id: int, outcomes: list[dict[str, Any]]) -> None:
        """Keep the last run's outcomes (audience, status, message) for /status and `twin jobs`."""
        self.state.put(twin_id, TWIN_WIDE, RUN_KEY, self.run(twin_id) | {
            "outcomes": outcomes, "finished_at": datetime.now(UTC).isoformat()})
