"""Forgetting in L2: the training samples drawn from forgotten L0 items (or facts), and every adapter trained on
them. A layer of the Forgetter: it runs before the L0 rows go.

Samples are deleted. Tainted adapters are withdrawn for good: they stop serving at once (the router reads the
registry on every request; the newest clean adapter of the audience, else the base model, takes over), their
folders are deleted from disk (the weights are derived from the text too), and `on_withdrawn(names)` tells the
composition root to unload them from the model server and to schedule a retrain.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, delete, or_, select
from sqlmodel import Session

from storage.forget import ForgetQuery
from storage.l1_forgetting import matching_facts
from storage.training import TrainingSample, TrainingSampleSource, TrainingStore

log = logging.getLogger(__name__)
WITHDRAWN_REASON = "trained on data the owner forgot"


class TrainingForgetting:
    """Training samples and adapters that must go with what the owner forgets."""

    name = "training samples and adapters"

    def __init__(self, engine: Engine, on_withdrawn: Callable[[list[str]], None] | None = None) -> None:
        self.engine = engine
        self.training = TrainingStore(engine)
        self.on_withdrawn = on_withdrawn

    def find(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> list[str]:
        """Each tainted adapter ('adapter owner-v2 (serving)'), then each sample (by id: no text is quoted)."""
        with Session(self.engine) as session:
            facts = self._facts(session, twin_id, query, l0_ids)
            samples = self._samples(session, twin_id, facts, l0_ids)
            adapters = self.training.tainted(session, twin_id, l0_ids, facts)
        return ([f"adapter {adapter.name} ({adapter.status}): withdrawn, deleted, retrained" for adapter in adapters]
                + [f"training sample {sample}" for sample in samples])

    def remove(self, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> int:
        """Delete the samples, withdraw the adapters and delete their files. Returns the records removed."""
        with Session(self.engine, expire_on_commit=False) as session:
            facts = self._facts(session, twin_id, query, l0_ids)
            samples = self._samples(session, twin_id, facts, l0_ids)
            adapters = self.training.tainted(session, twin_id, l0_ids, facts)
            for start in range(0, len(samples), 500):
                chunk = samples[start:start + 500]
                session.execute(delete(TrainingSampleSource).where(TrainingSampleSource.sample_id.in_(chunk)))
                session.execute(delete(TrainingSample).where(TrainingSample.id.in_(chunk)))
            names = [adapter.name for adapter in adapters]
            now_serving = self.training.withdraw_in(session, twin_id, names, WITHDRAWN_REASON)  # commits
        for adapter in adapters:
            folder = Path(adapter.path)
            shutil.rmtree(folder, ignore_errors=True)
            for partial in folder.parent.glob(f".{folder.name}.*"):  # a run still training: its data and output
                shutil.rmtree(partial, ignore_errors=True)
        if samples and self.engine.dialect.name == "postgresql":  # dead tuples hold the text until vacuumed
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM FULL training_samples")
        for audience, name in now_serving.items():
            log.info("%s now served by %s", audience, name or "the base model")
        if names and self.on_withdrawn is not None:
            try:
                self.on_withdrawn(names)
            except Exception:  # noqa: BLE001 - they no longer serve either way; the unload or schedule can retry
                log.exception("after withdrawing %s", ", ".join(names))
        return len(samples) + len(adapters)

    @staticmethod
    def _facts(session: Session, twin_id: int, query: ForgetQuery, l0_ids: set[int]) -> set[int]:
        """The facts this forget removes (this layer runs before L1's, while they are still there), and those named
        (a fact already gone, whose samples and adapters are still here)."""
        return {fact.id for fact in matching_facts(session, twin_id, query, l0_ids)} | set(query.fact_ids)

    @staticmethod
    def _samples(session: Session, twin_id: int, fact_ids: set[int], l0_ids: set[int]) -> list[int]:
        ids = sorted(l0_ids)
        found: set[int] = set()
        chunks = [ids[start:start + 500] for start in range(0, len(ids), 500)] or [[]]
        for chunk in chunks:
            matches = [TrainingSampleSource.l0_item_id.in_(chunk)]
            if fact_ids:
                matches.append(TrainingSampleSource.fact_id.in_(sorted(fact_ids)))
            found.update(session.scalars(select(TrainingSampleSource.sample_id).where(
                TrainingSampleSource.twin_id == twin_id, or_(*matches))))
        return sorted(found)

