"""The forget fence: a job that read memory before a forget must not write what it drew from it afterwards.

Two guards. In this process a forget and a job's write step hold the same lock (one per database), so a write
happens wholly before a forget (which then removes what it wrote) or wholly after it. And right before it
writes, a job checks what it read against the database: an item that is gone or buried under a tombstone, or a
fact that is gone, means the forget came in between, and the job drops its results (and reads again) instead of
writing text drawn from forgotten memory. The check also catches a forget run by another process."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy import Engine, select
from sqlmodel import Session

from storage.errors import StorageError
from storage.models import Fact, L0Item
from storage.tombstones import Tombstones

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


class ForgottenMeanwhile(StorageError):
    """What a job read was forgotten while it ran: its results are not written."""


def forget_fence(engine: Engine) -> threading.RLock:
    """The lock a forget holds from start to end, and a job's write step holds while it checks and writes."""
    key = engine.url.render_as_string(hide_password=False)
    with _locks_guard:
        return _locks.setdefault(key, threading.RLock())


def forgotten_items(session: Session, twin_id: int, items: Sequence[L0Item]) -> list[int]:
    """The ids of the items (as a job read them) that are no longer in memory or were forgotten."""
    if not items:
        return []
    ids = [item.id for item in items]
    present = set(session.scalars(select(L0Item.id).where(L0Item.twin_id == twin_id, L0Item.id.in_(ids))))
    # by source id only: the owner may say a forgotten sentence again, and that new message is memory
    buried = Tombstones().buried(session, twin_id, [(i.source, i.source_id, i.text) for i in items], match_text=False)
    return [item.id for item, gone in zip(items, buried, strict=True) if gone or item.id not in present]


def forgotten_facts(session: Session, twin_id: int, fact_ids: Sequence[int]) -> list[int]:
    """The ids of the facts (as a job read them) that are no longer stored."""
    if not fact_ids:
        return []
    present = set(session.scalars(select(Fact.id).where(Fact.twin_id == twin_id, Fact.id.in_(list(fact_ids)))))
    return [fact_id for fact_id in fact_ids if fact_id not in present]


def check_unforgotten(session: Session, twin_id: int, items: Sequence[L0Item] = (),
                      fact_ids: Sequence[int] = ()) -> None:
    """Raise ForgottenMeanwhile if any of what a job read was forgotten since it read it."""
    lost_items, lost_facts = forgotten_items(session, twin_id, items), forgotten_facts(session, twin_id, fact_ids)
    if lost_items or lost_facts:
        raise ForgottenMeanwhile(f"forgotten while the job ran: items {lost_items}, facts {lost_facts}")
