"""The training loop for one audience's adapter: synthesize -> select -> SFT -> DPO -> evaluate -> gate -> deploy.

Every stage reports what it made and what it dropped; the report is stored with the adapter. Failure never
touches the adapter that serves: a failed run is marked failed and its folders deleted, a refused candidate stays
`ready` with the gate's reason, and a forget that reaches a run while it trains withdraws it (it cannot become
ready after). Training and evaluation run in child processes: this module never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from storage.errors import StorageError
from storage.models import Audience
from storage.training import DPO, FAILED, READY, SFT, TRAINING, WITHDRAWN, Adapter, NewSample
from training.evaluation import candidate_column
from training.gate import choose, compare
from training.probes import sync
from training.recipe import TrainingRecipe
from training.run import MIN_SAMPLES, RetrainDeps, RetrainOutcome, Run, Stage, Teach, no_stage
from training.sft import Progress, TrainingFailed
from training.stages import cards_of, evaluate, select, synthesize, train

__all__ = ["MIN_SAMPLES", "RetrainDeps", "RetrainOutcome", "Run", "Teach", "cards_of", "continue_from", "retrain",
           "synthesize"]

log = logging.getLogger(__name__)


def _digest(samples: list[NewSample]) -> str:
    blob = json.dumps([[s.prompt, s.completion] for s in samples], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def continue_from(deps: RetrainDeps, audience: str, base: str, rank: int) -> tuple[Adapter | None, str]:
    """The serving adapter to continue from, or None and why a fresh one is trained."""
    name = deps.training.serving(deps.twin_id, audience)
    if name is None:
        return None, "fresh: no adapter serves this audience yet"
    serving = deps.training.get(deps.twin_id, name)
    if serving is None or not Path(serving.path).is_dir():
        return None, f"fresh: {name}'s files are missing"
    if serving.base_model != base or (serving.metrics.get("recipe") or {}).get("r") != rank:
        return None, f"fresh: {name} has another base model or rank"
    trained = deps.training.trained_facts(deps.twin_id, name)
    current = {f.id for f in deps.facts.current(deps.twin_id, Audience.owner)}
    if trained - current:
        return None, f"fresh: {len(trained - current)} fact(s) {name} learned were superseded or removed since"
    return serving, f"continued from {name}"


def retrain(deps: RetrainDeps, audience: str, *, deploy: bool = True, only_if_new: bool = False,
            progress: Progress | None = None, stage: Stage | None = None,
            recipe: TrainingRecipe | None = None) -> RetrainOutcome:
    """Run the whole loop for one audience; deploy the result only if it is not worse than what serves now."""
    run = Run(deps, audience, recipe or deps.recipe, stage or no_stage, progress)
    began = time.perf_counter()
    run.stage("synthesizing samples")
    out, probes, inputs = synthesize(run)
    run.timed("synthesis", began)
    if _grounded(out.sft) < deps.min_samples:  # declines alone teach nothing about the owner
        return _too_few(run, _grounded(out.sft))
    base = deps.base_model()
    began = time.perf_counter()
    run.stage("selecting samples")
    sft_rows, pair_rows = select(run, out, inputs["hidden"], deps.count_tokens(base))
    deps.training.replace_samples(deps.twin_id, audience, sft_rows, kind=SFT)
    deps.training.replace_samples(deps.twin_id, audience, pair_rows, kind=DPO)
    stored_probes, version = sync(deps.training, deps.twin_id, audience, probes)
    run.timed("selection", began)
    if _grounded(sft_rows) < deps.min_samples:
        return _too_few(run, _grounded(sft_rows))
    digest = _digest(sft_rows + pair_rows)
    if only_if_new and _already_trained(deps, audience, digest):
        return RetrainOutcome(audience, "up_to_date", f"Nothing new for the {audience} adapter since it was "
                              "trained.", samples=len(sft_rows))
    return _train_and_gate(run, base, sft_rows, pair_rows, stored_probes, version, inputs, digest, deploy)


def _grounded(samples: list[NewSample]) -> int:
    """Samples drawn from the owner's memory (facts or messages), not from templates alone."""
    return sum(1 for s in samples if s.fact_ids or s.item_ids)


def _too_few(run: Run, count: int) -> RetrainOutcome:
    deps, audience = run.deps, run.audience
    return RetrainOutcome(audience, "too_few", (
        f"Not enough to train the {audience} adapter: {count} samples from what {audience}s may see "
        f"(at least {deps.min_samples} needed: facts the twin knows, or messages {deps.owner_name} wrote in "
        "reply to someone)."), samples=count, metrics={"report": run.report})


def _already_trained(deps: RetrainDeps, audience: str, digest: str) -> bool:
    for adapter in deps.training.adapters(deps.twin_id, audience):
        if adapter.status not in (FAILED, WITHDRAWN, TRAINING):
            return adapter.metrics.get("data_digest") == digest
    return False


def _train_and_gate(run: Run, base: str, sft_rows: list[NewSample], pair_rows: list[NewSample], probes: list,
                    version: str, inputs: dict[str, Any], digest: str, deploy: bool) -> RetrainOutcome:
    deps, audience = run.deps, run.audience
    name = deps.training.next_name(deps.twin_id, audience)
    path = deps.adapters_dir / name
    every = sft_rows + pair_rows
    init, how = continue_from(deps, audience, base, run.recipe.rank)
    deps.training.register(deps.twin_id, name, audience, str(path), base, {i for s in every for i in s.item_ids},
                           len(sft_rows), fact_ids={f for s in every for f in s.fact_ids})
    run.report["start"] = how
    try:
        sft_path, dpo_path, losses = train(run, base, name, sft_rows, pair_rows, init)
        evaluation = evaluate(run, base, name, sft_path, dpo_path, probes, version, inputs)
    except (TrainingFailed, OSError) as error:
        log.error("training %s failed: %s", name, error)
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        deps.training.set_status(deps.twin_id, name, FAILED, metrics={"error": first_line, "report": run.report},
                                 expect=TRAINING)
        _clean(deps.adapters_dir, name)
        return RetrainOutcome(audience, "failed", f"Training {name} failed ({first_line}); the adapter serving "
                              f"{audience} is unchanged.", name, len(sft_rows))
    figures = evaluation.models
    pick, why = choose(figures["sft"], figures.get(candidate_column("dpo")), run.recipe)
    chosen = figures[candidate_column(pick)]
    current_name = next((key for key in figures if key.startswith("serving")), "base")
    verdict = compare(chosen, figures[current_name], run.recipe)
    try:
        os.rename(dpo_path if pick == "dpo" else sft_path, path)
    except FileNotFoundError:  # a forget deleted the run's folders while it was evaluated
        deps.training.set_status(deps.twin_id, name, FAILED, metrics={"error": "folders removed"}, expect=TRAINING)
        return RetrainOutcome(audience, "withdrawn", f"{name} was withdrawn while it trained.", name, len(sft_rows))
    _clean(deps.adapters_dir, name)
    metrics = {"losses": losses.get("dpo" if pick == "dpo" else "sft", []), "training": losses,
               "recipe": losses["recipe"], "stage": pick, "choice": why, "evaluation": evaluation.as_json(),
               "gate": {"deploy": verdict.deploy, "reason": verdict.reason, "against": current_name},
               "report": run.report, "timings": run.timings, "data_digest": digest,
               "wall_seconds": round(time.perf_counter() - run.started, 1)}
    if not deps.training.set_status(deps.twin_id, name, READY, metrics=metrics, expect=TRAINING):
        shutil.rmtree(path, ignore_errors=True)  # forgotten data reached it while it trained
        return RetrainOutcome(audience, "withdrawn", f"{name} was withdrawn while it trained (something it "
                              "learned from was forgotten); a new retrain is scheduled.", name, len(sft_rows), metrics)
    if not verdict.deploy:
        return RetrainOutcome(audience, "kept", f"Trained {name}, but kept what serves {audience}s now: "
                              f"{verdict.reason}.", name, len(sft_rows), metrics, evaluation)
    return replace(_deploy(deps, audience, name, len(sft_rows), metrics, deploy, verdict.reason), evaluation=evaluation)


def _clean(folder: Path, name: str) -> None:
    for partial in (folder / f".{name}.sft", folder / f".{name}.dpo"):
        shutil.rmtree(partial, ignore_errors=True)


def _deploy(deps: RetrainDeps, audience: str, name: str, samples: int, metrics: dict[str, Any], deploy: bool,
            reason: str) -> RetrainOutcome:
    if not deploy or deps.deploy is None:
        return RetrainOutcome(audience, "ready", f"Trained {name} on {samples} samples ({reason}); not deployed "
                              f"(`twin adapters rollback` / a deploy serves it).", name, samples, metrics)
    adapter = deps.training.get(deps.twin_id, name)
    try:
        deps.deploy(adapter)
    except Exception as error:  # noqa: BLE001 - any server error: the old adapter keeps serving
        log.warning("deploying %s failed: %s", name, error)
        return RetrainOutcome(audience, "ready", f"Trained {name}, but loading it into the model server failed "
                              f"({error}); the previous adapter keeps serving.", name, samples, metrics)
    try:
        previous = deps.training.promote(deps.twin_id, name)
    except StorageError:  # withdrawn between training and now: a forget reached it
        return RetrainOutcome(audience, "withdrawn", f"{name} was withdrawn before it could serve.", name, samples,
                              metrics)
    before = f" ({previous} is kept for rollback)" if previous else ""
    return RetrainOutcome(audience, "serving", f"{name} now answers {audience}s{before}: {reason}.", name, samples,
                          metrics)
