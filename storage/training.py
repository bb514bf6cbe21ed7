"""L2 bookkeeping: training samples with their provenance, and the registry of LoRA adapters (which one serves
which audience). Every sample names the L0 items it came from; every adapter keeps the L0 ids it was trained on
even after its samples are rebuilt, so a later forget finds each adapter that saw a forgotten item."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Engine, Index, String, Text, UniqueConstraint, delete, func, select, update
from sqlmodel import Field, Session, SQLModel

from storage.errors import StorageError
from storage.models import Audience, UTCDateTime, Visibility, utcnow

SFT, DPO, PROBE = "sft", "dpo", "probe"  # sample kinds: supervised, a preference pair, an evaluation probe
AUDIENCES = tuple(Audience)
# Adapter lifecycle: training -> ready -> serving -> retired (rollback can serve it again); or failed; or
# withdrawn (trained on something forgotten: never serves again, its files are deleted).
TRAINING, READY, SERVING, RETIRED, WITHDRAWN, FAILED = "training", "ready", "serving", "retired", "withdrawn", "failed"
CLEAN = (READY, RETIRED)  # may take over when the serving adapter goes
PRIVACY_ORDER = (Visibility.public, Visibility.contacts, Visibility.private)  # least private first
DEFAULT_TWIN = "owner"  # the handle of the single twin of a deployment (settings' `owner` default)


class TrainingSample(SQLModel, table=True):
    """One training example for one audience's adapter: chat messages in, the owner's words out."""

    __tablename__ = "training_samples"
    __table_args__ = (Index("ix_training_samples_twin_audience", "twin_id", "audience", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id")
    kind: str = Field(default=SFT, sa_type=String(8), description="sft, dpo (a preference pair) or probe")
    task: str = Field(default="reply", sa_type=String(24), description="which of the loop's tasks it serves")
    meta: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True),
                                        description="a pair's rejected answer, a probe's key span, a phrasing")
    audience: str = Field(sa_type=String(16), description="the audience whose adapter it trains")
    visibility: str = Field(sa_type=String(16), description="the most private visibility among its sources")
    prompt: list[dict[str, str]] = Field(sa_column=Column(JSON, nullable=False))
    completion: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TrainingSampleSource(SQLModel, table=True):
    """Provenance: an L0 item (or an L1 fact) a sample was built from."""

    __tablename__ = "training_sample_sources"

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)
    sample_id: int = Field(foreign_key="training_samples.id", index=True, ondelete="CASCADE")
    l0_item_id: int | None = Field(default=None, foreign_key="l0_items.id", index=True, ondelete="CASCADE")
    fact_id: int | None = Field(default=None, foreign_key="facts.id", index=True, ondelete="CASCADE")


class Adapter(SQLModel, table=True):
    """A trained LoRA adapter version and where it stands."""

    __tablename__ = "adapters"
    __table_args__ = (
        UniqueConstraint("twin_id", "name", name="uq_adapter_name"),
        Index("ix_adapters_twin_audience_status", "twin_id", "audience", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    twin_id: int = Field(foreign_key="twins.id")
    name: str = Field(max_length=64, description="the model name vLLM serves it under, e.g. owner-v3")
    audience: str = Field(sa_type=String(16))
    path: str = Field(max_length=1024)
    base_model: str = Field(max_length=512)
    status: str = Field(default=TRAINING, sa_type=String(16))
    samples: int = 0
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    withdrawn_reason: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AdapterFactSource(SQLModel, table=True):
    """An L1 fact an adapter was trained on (no foreign key: it outlives the fact to mark the adapter)."""

    __tablename__ = "adapter_fact_sources"

    adapter_id: int = Field(foreign_key="adapters.id", primary_key=True, ondelete="CASCADE")
    fact_id: int = Field(primary_key=True, index=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)


class AdapterSource(SQLModel, table=True):
    """An L0 item an adapter was trained on (no foreign key: it must outlive the item to mark the adapter)."""

    __tablename__ = "adapter_sources"

    adapter_id: int = Field(foreign_key="adapters.id", primary_key=True, ondelete="CASCADE")
    l0_item_id: int = Field(primary_key=True, index=True)
    twin_id: int = Field(foreign_key="twins.id", index=True)


@dataclass(frozen=True)
class NewSample:
    """A sample before it is stored."""

    prompt: list[dict[str, str]]
    completion: str
    visibility: Visibility
    item_ids: tuple[int, ...]
    fact_ids: tuple[int, ...] = ()
    kind: str = SFT
    task: str = "reply"
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredSample:
    """A stored sample with its sources, as the trainer reads it."""

    id: int
    prompt: list[dict[str, str]]
    completion: str
    visibility: str
    item_ids: tuple[int, ...] = field(default=())
    fact_ids: tuple[int, ...] = field(default=())
    task: str = "reply"
    meta: dict[str, Any] = field(default_factory=dict)


def most_private(visibilities: Iterable[str]) -> Visibility:
    """The most private of these visibilities (public when there are none)."""
    ranks = [PRIVACY_ORDER.index(Visibility(v)) for v in visibilities]
    return PRIVACY_ORDER[max(ranks, default=0)]


class TrainingStore:
    """Samples and the adapter registry of every twin in one database; each call is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- samples --------------------------------------------------------------------------------------------

    def replace_samples(self, twin_id: int, audience: str, samples: Sequence[NewSample], kind: str = SFT) -> int:
        """Store this audience's samples of this kind in place of the previous ones; returns how many."""
        with Session(self.engine) as session:
            old = select(TrainingSample.id).where(TrainingSample.twin_id == twin_id,
                                                  TrainingSample.audience == audience, TrainingSample.kind == kind)
            session.execute(delete(TrainingSampleSource).where(TrainingSampleSource.sample_id.in_(old)))
            session.execute(delete(TrainingSample).where(TrainingSample.id.in_(old)))
            for sample in samples:
                row = TrainingSample(twin_id=twin_id, kind=kind, audience=audience, visibility=sample.visibility,
                                     prompt=sample.prompt, completion=sample.completion, task=sample.task,
                                     meta=sample.meta)
                session.add(row)
                session.flush()
                session.add_all([TrainingSampleSource(twin_id=twin_id, sample_id=row.id, l0_item_id=item)
                                 for item in sample.item_ids])
                session.add_all([TrainingSampleSource(twin_id=twin_id, sample_id=row.id, fact_id=fact)
                                 for fact in sample.fact_ids])
            session.commit()
        return len(samples)

    def samples(self, twin_id: int, audience: str, kind: str = SFT) -> list[StoredSample]:
        """This audience's samples with the L0 items each came from, oldest first."""
        with Session(self.engine) as session:
            rows = list(session.scalars(select(TrainingSample).where(
                TrainingSample.twin_id == twin_id, TrainingSample.audience == audience, TrainingSample.kind == kind,
            ).order_by(TrainingSample.id)))
            items: dict[int, list[int]] = {}
            facts: dict[int, list[int]] = {}
            ids = [row.id for row in rows]
            for start in range(0, len(ids), 500):
                for sample_id, item_id, fact_id in session.execute(select(
                        TrainingSampleSource.sample_id, TrainingSampleSource.l0_item_id, TrainingSampleSource.fact_id,
                ).where(TrainingSampleSource.sample_id.in_(ids[start:start + 500]))):
                    if item_id is not None:
                        items.setdefault(sample_id, []).append(item_id)
                    if fact_id is not None:
                        facts.setdefault(sample_id, []).append(fact_id)
        return [StoredSample(row.id, row.prompt, row.completion, row.visibility, tuple(sorted(items.get(row.id, []))),
                             tuple(sorted(facts.get(row.id, []))), row.task, dict(row.meta or {}))
                for row in rows]

    def count_samples(self, twin_id: int, audience: str | None = None) -> int:
        """How many samples are stored (for one audience, or all)."""
        query = select(func.count()).select_from(TrainingSample).where(TrainingSample.twin_id == twin_id)
        if audience is not None:
            query = query.where(TrainingSample.audience == audience)
        with Session(self.engine) as session:
            return session.scalar(query) or 0

    # -- adapters -------------------------------------------------------------------------------------------

    def next_name(self, twin_id: int, audience: str) -> str:
        """A fresh adapter name for the audience: owner-v1, owner-v2, ...; a named twin's carry its handle
        (bea-owner-v1), so that one vLLM can serve every twin's adapters and their folders never meet."""
        from storage.models import Twin

        with Session(self.engine) as session:
            names = session.scalars(select(Adapter.name).where(Adapter.twin_id == twin_id,
                                                               Adapter.audience == audience))
            versions = [int(name.rsplit("-v", 1)[1]) for name in names if name.rsplit("-v", 1)[-1].isdigit()]
            twin = session.get(Twin, twin_id)
        prefix = "" if twin is None or twin.handle == DEFAULT_TWIN else f"{twin.handle}-"
        return f"{prefix}{audience}-v{max(versions, default=0) + 1}"

    def register(self, twin_id: int, name: str, audience: str, path: str, base_model: str,
                 item_ids: Iterable[int], samples: int, fact_ids: Iterable[int] = ()) -> Adapter:
        """A new adapter in training, with the L0 items and L1 facts it is trained on."""
        if audience not in AUDIENCES:
            raise StorageError(f"unknown audience {audience!r}: one of {', '.join(AUDIENCES)}")
        with Session(self.engine, expire_on_commit=False) as session:
            adapter = Adapter(twin_id=twin_id, name=name, audience=audience, path=path, base_model=base_model,
                              samples=samples)
            session.add(adapter)
            session.flush()
            session.add_all([AdapterSource(adapter_id=adapter.id, l0_item_id=item, twin_id=twin_id)
                             for item in sorted(set(item_ids))])
            session.add_all([AdapterFactSource(adapter_id=adapter.id, fact_id=fact, twin_id=twin_id)
                             for fact in sorted(set(fact_ids))])
            session.commit()
        return adapter

    def get(self, twin_id: int, name: str) -> Adapter | None:
        """The adapter with this name."""
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(select(Adapter).where(Adapter.twin_id == twin_id, Adapter.name == name)).first()

    def adapters(self, twin_id: int, audience: str | None = None) -> list[Adapter]:
        """Every adapter of the twin (or of one audience), newest first."""
        query = select(Adapter).where(Adapter.twin_id == twin_id)
        if audience is not None:
            query = query.where(Adapter.audience == audience)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query.order_by(Adapter.id.desc())))

    def set_status(self, twin_id: int, name: str, status: str, *, metrics: dict[str, Any] | None = None,
                   expect: str | None = None) -> bool:
        """Move an adapter to ready, failed (and so on), with its metrics; with `expect`, only from that status
        (a forget may have withdrawn it meanwhile). Returns whether it moved."""
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if metrics is not None:
            values["metrics"] = metrics
        query = update(Adapter).where(Adapter.twin_id == twin_id, Adapter.name == name)
        if expect is not None:
            query = query.where(Adapter.status == expect)
        with Session(self.engine) as session:
            moved = session.execute(query.values(**values)).rowcount
            session.commit()
        return moved > 0

    def promote(self, twin_id: int, name: str) -> str | None:
        """Serve this (ready or retired) adapter for its audience; the one serving before retires. Returns it."""
        with Session(self.engine) as session:
            adapter = session.scalars(select(Adapter).where(Adapter.twin_id == twin_id, Adapter.name == name)).first()
            if adapter is None or adapter.status not in (*CLEAN, SERVING):
                status = adapter.status if adapter else "unknown"
                raise StorageError(f"adapter {name} cannot serve: it is {status}")
            previous = self._serving(session, twin_id, adapter.audience)
            if previous is not None and previous.id != adapter.id:
                previous.status, previous.updated_at = RETIRED, utcnow()
                session.add(previous)
            adapter.status, adapter.updated_at = SERVING, utcnow()
            session.add(adapter)
            session.commit()
            return previous.name if previous is not None and previous.name != name else None

    def rollback(self, twin_id: int, audience: str) -> tuple[str | None, str | None]:
        """The serving adapter retires and the newest clean one before it serves (none: the base model).
        Returns (the one that stopped, the one serving now)."""
        with Session(self.engine) as session:
            current = self._serving(session, twin_id, audience)
            if current is None:
                raise StorageError(f"no adapter serves {audience}: nothing to roll back")
            earlier = session.scalars(select(Adapter).where(
                Adapter.twin_id == twin_id, Adapter.audience == audience, Adapter.status.in_(CLEAN),
                Adapter.id < current.id).order_by(Adapter.id.desc())).first()
            current.status, current.updated_at = RETIRED, utcnow()
            session.add(current)
            if earlier is not None:
                earlier.status, earlier.updated_at = SERVING, utcnow()
                session.add(earlier)
            session.commit()
            return current.name, earlier.name if earlier else None

    def withdraw(self, twin_id: int, names: Iterable[str], reason: str) -> dict[str, str | None]:
        """Stop these adapters for good; where one was serving, the newest clean adapter of its audience takes
        over. Returns, per affected audience, the adapter serving it now (None: the base model)."""
        with Session(self.engine) as session:
            return self.withdraw_in(session, twin_id, list(names), reason)

    def withdraw_in(self, session: Session, twin_id: int, names: list[str], reason: str) -> dict[str, str | None]:
        """`withdraw` inside the caller's transaction (committed here)."""
        rows = list(session.scalars(select(Adapter).where(Adapter.twin_id == twin_id, Adapter.name.in_(names))))
        audiences = {row.audience for row in rows if row.status == SERVING}
        for row in rows:
            row.status, row.withdrawn_reason, row.updated_at = WITHDRAWN, reason[:255], utcnow()
            session.add(row)
        session.flush()
        now_serving: dict[str, str | None] = {}
        for audience in sorted(audiences):
            if self._serving(session, twin_id, audience) is None:
                clean = session.scalars(select(Adapter).where(
                    Adapter.twin_id == twin_id, Adapter.audience == audience, Adapter.status.in_(CLEAN),
                ).order_by(Adapter.id.desc())).first()
                if clean is not None:
                    clean.status, clean.updated_at = SERVING, utcnow()
                    session.add(clean)
                now_serving[audience] = clean.name if clean else None
        session.commit()
        return now_serving

    def tainted(self, session: Session, twin_id: int, l0_ids: Iterable[int],
                fact_ids: Iterable[int] = ()) -> list[Adapter]:
        """Adapters, not yet withdrawn, trained on any of these L0 items or L1 facts."""
        found: dict[int, Adapter] = {}
        for table, column, ids in ((AdapterSource, AdapterSource.l0_item_id, sorted(set(l0_ids))),
                                   (AdapterFactSource, AdapterFactSource.fact_id, sorted(set(fact_ids)))):
            for start in range(0, len(ids), 500):
                used = select(table.adapter_id).where(table.twin_id == twin_id, column.in_(ids[start:start + 500]))
                for row in session.scalars(select(Adapter).where(Adapter.twin_id == twin_id, Adapter.id.in_(used),
                                                                 Adapter.status != WITHDRAWN)):
                    found[row.id] = row
        return [found[key] for key in sorted(found)]

    def trained_facts(self, twin_id: int, name: str) -> set[int]:
        """The L1 fact ids an adapter was trained on."""
        with Session(self.engine) as session:
            adapter = select(Adapter.id).where(Adapter.twin_id == twin_id, Adapter.name == name).scalar_subquery()
            return set(session.scalars(select(AdapterFactSource.fact_id).where(
                AdapterFactSource.adapter_id == adapter)))

    def trained_items(self, twin_id: int, name: str) -> set[int]:
        """The L0 ids an adapter was trained on."""
        with Session(self.engine) as session:
            adapter = select(Adapter.id).where(Adapter.twin_id == twin_id, Adapter.name == name).scalar_subquery()
            return set(session.scalars(select(AdapterSource.l0_item_id).where(AdapterSource.adapter_id == adapter)))

    # -- the router's view (core.respond.AdapterRegistry) --------------------------------------------------

    def serving(self, twin_id: int, audience: str) -> str | None:
        """The name of the adapter serving this audience now, or None (the base model)."""
        with Session(self.engine) as session:
            return session.scalars(select(Adapter.name).where(
                Adapter.twin_id == twin_id, Adapter.audience == audience, Adapter.status == SERVING,
            ).order_by(Adapter.id.desc())).first()

    def withdrawn(self, twin_id: int, name: str) -> bool:
        """Whether this adapter name was withdrawn (a settings override must not bring it back)."""
        with Session(self.engine) as session:
            return session.scalars(select(Adapter.id).where(
                Adapter.twin_id == twin_id, Adapter.name == name, Adapter.status == WITHDRAWN)).first() is not None

    @staticmethod
    def _serving(session: Session, twin_id: int, audience: str) -> Adapter | None:
        return session.scalars(select(Adapter).where(
            Adapter.twin_id == twin_id, Adapter.audience == audience, Adapter.status == SERVING,
        ).order_by(Adapter.id.desc())).first()
