"""One retrain of one audience's adapter: samples from L0 -> train in a child process -> register -> deploy.

Failure never touches the adapter that serves: a failed run is marked failed, a deploy that does not go
through leaves the new adapter ready (`twin adapters` shows it) and the old one serving.
Later stages (teacher synthesis, DPO, evaluation gates) slot in between training and deploying.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.errors import StorageError
from storage.training import FAILED, READY, TRAINING, WITHDRAWN, Adapter, TrainingStore
from training.dataset import rebuild
from training.sft import Progress, Recipe, TrainingFailed, default_steps, train_adapter

log = logging.getLogger(__name__)

MIN_SAMPLES = 8


@dataclass
class RetrainDeps:
    """What a retrain needs, built by the composition root."""

    twin_id: int
    owner_name: str
    training: TrainingStore
    adapters_dir: Path  # <data_dir>/adapters
    base_model: Callable[[], str]  # resolved when needed: preparing the bundled model takes a while once
    deploy: Callable[[Adapter], None] | None = None  # load into the model server; raises when it cannot
    min_samples: int = MIN_SAMPLES


@dataclass(frozen=True)
class RetrainOutcome:
    """What happened, in words for the owner and in fields for scripts."""

    audience: str
    status: str  # too_few, up_to_date, failed, withdrawn, ready, serving
    message: str
    adapter: str | None = None
    samples: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)


def rows_for_trainer(prompt: list[dict[str, str]], completion: str) -> dict[str, Any]:
    """A sample in TRL's conversational prompt/completion format (loss on the completion only)."""
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": completion}]}


def _newest_trained(training: TrainingStore, twin_id: int, audience: str) -> int | None:
    """The newest L0 id the latest usable adapter of the audience was trained on."""
    for adapter in training.adapters(twin_id, audience):
        if adapter.status not in (FAILED, WITHDRAWN, TRAINING):
            return max(training.trained_items(twin_id, adapter.name), default=None)
    return None


def retrain(
    deps: RetrainDeps, audience: str, *, max_steps: int | None = None, deploy: bool = True, only_if_new: bool = False,
    progress: Progress | None = None, max_length: int | None = None,
) -> RetrainOutcome:
    """Rebuild the audience's samples and train, register and (unless told not to) deploy a new adapter."""
    report = rebuild(deps.training, deps.twin_id, audience, deps.owner_name)
    if report.samples < deps.min_samples:
        return RetrainOutcome(audience, "too_few", (
            f"Not enough to train the {audience} adapter: {report.samples} samples from what {audience}s may see "
            f"(at least {deps.min_samples} needed: messages {deps.owner_name} wrote in reply to someone)."
        ), samples=report.samples)
    if only_if_new and report.newest_item is not None:
        trained = _newest_trained(deps.training, deps.twin_id, audience)
        if trained is not None and report.newest_item <= trained:
            return RetrainOutcome(audience, "up_to_date", f"Nothing new for the {audience} adapter since it was "
                                  "trained.", samples=report.samples)
    samples = deps.training.samples(deps.twin_id, audience)
    name = deps.training.next_name(deps.twin_id, audience)
    path = deps.adapters_dir / name
    base = deps.base_model()
    deps.training.register(deps.twin_id, name, audience, str(path), base,
                           {item for sample in samples for item in sample.item_ids}, len(samples))
    recipe = Recipe(max_steps=max_steps or default_steps(len(samples)), **({"max_length": max_length}
                                                                           if max_length else {}))
    try:
        result = train_adapter(base, [rows_for_trainer(s.prompt, s.completion) for s in samples], path, recipe,
                               progress=progress)
    except (TrainingFailed, OSError) as error:
        log.error("training %s failed: %s", name, error)
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        deps.training.set_status(deps.twin_id, name, FAILED, metrics={"error": first_line}, expect=TRAINING)
        shutil.rmtree(path, ignore_errors=True)
        return RetrainOutcome(audience, "failed", f"Training {name} failed ({first_line}); the adapter serving "
                              f"{audience} is unchanged.", name, len(samples))
    metrics = {"losses": result.losses, "steps": result.steps, "seconds": result.seconds,
               "train_seconds": result.train_seconds,
               "seconds_per_step": round(result.seconds_per_step, 3), "recipe": result.recipe,
               "newest_item": report.newest_item}
    if not deps.training.set_status(deps.twin_id, name, READY, metrics=metrics, expect=TRAINING):
        shutil.rmtree(path, ignore_errors=True)  # forgotten data reached it while it trained
        return RetrainOutcome(audience, "withdrawn", f"{name} was withdrawn while it trained (something it "
                              "learned from was forgotten); a new retrain is scheduled.", name, len(samples), metrics)
    if not deploy or deps.deploy is None:
        return RetrainOutcome(audience, "ready", f"Trained {name} on {len(samples)} samples; not deployed "
                              f"(`twin adapters rollback` / a deploy serves it).", name, len(samples), metrics)
    adapter = deps.training.get(deps.twin_id, name)
    try:
        deps.deploy(adapter)
    except Exception as error:  # noqa: BLE001 - any server error: the old adapter keeps serving
        log.warning("deploying %s failed: %s", name, error)
        return RetrainOutcome(audience, "ready", f"Trained {name}, but loading it into the model server failed "
                              f"({error}); the previous adapter keeps serving.", name, len(samples), metrics)
    try:
        previous = deps.training.promote(deps.twin_id, name)
    except StorageError:  # withdrawn between training and now: a forget reached it
        return RetrainOutcome(audience, "withdrawn", f"{name} was withdrawn before it could serve.", name,
                              len(samples), metrics)
    before = f" ({previous} is kept for rollback)" if previous else ""
    return RetrainOutcome(audience, "serving", f"{name} now answers {audience}s{before}: trained on {len(samples)} "
                          f"samples, loss {result.losses[0]:.2f} -> {result.losses[-1]:.2f}." if result.losses
                          else f"{name} now answers {audience}s{before}.", name, len(samples), metrics)
