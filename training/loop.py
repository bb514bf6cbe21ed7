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
import math
import os
import random
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from storage.errors import StorageError
from storage.facts import FactStore
from storage.models import Fact
from storage.training import DPO, FAILED, READY, SFT, TRAINING, WITHDRAWN, Adapter, NewSample, TrainingStore
from training.cards import FactCard, card_for
from training.dataset import build_samples
from training.dpo import pair_row, train_dpo
from training.evaluation import Evaluation, JudgeRun, ModelUnderTest, evaluate_weights
from training.gate import choose, compare
from training.probes import others_probes, owner_probes, sync
from training.recipe import TrainingRecipe
from training.selection import CountTokens, Embed, Forgotten, Selector
from training.sft import Progress, Recipe, TrainingFailed, train_adapter
from training.synthesis import Synthesis, Synthesizer

log = logging.getLogger(__name__)

MIN_SAMPLES = 8
VOICE_HELD_OUT = 0.1  # the owner's newest replies kept for the voice figure, never trained on
Teach = Callable[[list[FactCard], str], tuple[dict[int, list[str]], dict[int, list[str]], dict[int, str]]]
Stage = Callable[[str], None]  # a short status line per stage (the terminal's bar, the owner's chat)


@dataclass
class RetrainDeps:
    """What a retrain needs, built by the composition root."""

    twin_id: int
    owner_name: str
    training: TrainingStore
    facts: FactStore
    adapters_dir: Path  # <data_dir>/adapters
    base_model: Callable[[], str]  # resolved when needed: preparing the bundled model takes a while once
    count_tokens: Callable[[str], CountTokens]  # base model -> a counter of a chat's tokens
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    deploy: Callable[[Adapter], None] | None = None  # load into the model server; raises when it cannot
    teach: Teach | None = None  # teacher paraphrases and reasoning (None: templates alone)
    judge: JudgeRun | None = None  # the paper's four metrics, shown only beside a calibrated judge
    embed: Embed | None = None  # near-duplicate questions
    forgotten: Forgotten | None = None  # texts that match a tombstone
    expert_audience: str = "stranger"  # what an expert may see: the enhancement samples use only that
    min_samples: int = MIN_SAMPLES
    extra_indirect: dict[int, list[str]] = field(default_factory=dict)  # more held-out questions per fact id


@dataclass(frozen=True)
class RetrainOutcome:
    """What happened, in words for the owner and in fields for scripts."""

    audience: str
    status: str  # too_few, up_to_date, failed, withdrawn, ready, kept, serving
    message: str
    adapter: str | None = None
    samples: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """One run's state as it goes through the stages."""

    deps: RetrainDeps
    audience: str
    recipe: TrainingRecipe
    stage: Stage
    progress: Progress | None
    report: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def timed(self, name: str, began: float) -> None:
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
        own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.timings[name] = {"seconds": round(time.perf_counter() - began, 2), "peak_child_mb": round(peak_mb),
                              "peak_self_mb": round(own_mb)}


def _control(fact_id: int, share: float) -> bool:
    """Whether a fact is held out of training entirely (a stable choice: the same facts every run)."""
    digest = int(hashlib.sha256(f"control:{fact_id}".encode()).hexdigest()[:8], 16)
    return (digest % 1000) < share * 1000


def cards_of(facts: FactStore, twin_id: int, audience: str) -> tuple[list[Fact], list[FactCard], list[Fact]]:
    """The audience's current facts, their cards (with the values they superseded) and those without one."""
    every = facts.all(twin_id, "owner")
    superseded: dict[int, list[str]] = {}
    for fact in every:
        if fact.superseded_by is not None and (old := card_for(fact)) is not None:
            superseded.setdefault(fact.superseded_by, []).append(old.key)
    current = facts.current(twin_id, audience)
    cards, without = [], []
    for fact in current:
        card = card_for(fact, tuple(superseded.get(fact.id, ())))
        (cards.append(card) if card is not None else without.append(fact))
    return current, cards, without


def synthesize(run: Run) -> tuple[Synthesis, list[NewSample], dict[str, Any]]:
    """Stage 1: samples, pairs, held-out voice rows and the probe inputs."""
    deps, audience, recipe = run.deps, run.audience, run.recipe
    current, cards, without = cards_of(deps.facts, deps.twin_id, audience)
    trained = [c for c in cards if not _control(c.fact_id, recipe.control_share)] if audience == "owner" else cards
    control = [c for c in cards if c not in trained]
    style = recipe.cot_for("memory_owner" if audience == "owner" else "memory_others")
    train_q, held_q, reasons = deps.teach(trained, style) if deps.teach else ({}, {}, {})
    synth = Synthesizer(deps.owner_name, recipe, train_q, reasons)
    out = Synthesis(audience)
    visible_facts = [f for f in current if f.id not in {c.fact_id for c in control}]
    synth.memory_qa(out, trained, visible_facts)
    if audience == "owner":
        shareable = {f.id for f in deps.facts.current(deps.twin_id, deps.expert_audience)}
        synth.enhancement(out, trained, shareable, visible_facts)
        synth.critique(out, trained)
    else:
        synth.declines(out, 8)
        synth.introductions(out, visible_facts)
    replies = sorted(build_samples(deps.training.engine, deps.twin_id, audience, deps.owner_name),
                     key=lambda s: max(s.item_ids))
    held = math.floor(len(replies) * VOICE_HELD_OUT) if len(replies) >= 10 else 0
    voice_rows = [{"prompt": s.prompt, "completion": s.completion} for s in replies[len(replies) - held:]] if held \
        else []
    synth.voice(out, replies[:len(replies) - held])
    hidden: list[FactCard] = []
    if audience != "owner":
        visible_ids = {c.fact_id for c in cards}
        _, owner_cards, _ = cards_of(deps.facts, deps.twin_id, "owner")
        hidden = [c for c in owner_cards if c.fact_id not in visible_ids]
    indirect = {k: held_q.get(k, []) + deps.extra_indirect.get(k, []) for k in {*held_q, *deps.extra_indirect}}
    probes = (owner_probes(deps.owner_name, trained, control, indirect) if audience == "owner"
              else others_probes(deps.owner_name, cards, hidden))
    run.report["synthesis"] = {"facts": len(current), "facts_without_card": len(without), "control_facts":
                               len(control), "samples": dict(out.counts), "pairs": len(out.pairs),
                               "voice_held_out": len(voice_rows), "teacher_paraphrases": sum(map(len,
                                                                                                 train_q.values()))}
    return out, probes, {"hidden": hidden, "voice": voice_rows}


def select(run: Run, out: Synthesis, hidden: list[FactCard], count_tokens: CountTokens) -> tuple[list[NewSample],
                                                                                                  list[NewSample]]:
    """Stage 2: the filters over the SFT samples and the pairs, with their counts."""
    deps = run.deps
    private_keys = [c.key for c in hidden]
    sft = Selector(count_tokens, run.recipe.max_length, private_keys, deps.forgotten, deps.embed)
    pairs = Selector(count_tokens, run.recipe.max_length, private_keys, deps.forgotten, None)
    kept_sft, kept_pairs = sft.select(out.sft), pairs.select(out.pairs) if run.recipe.dpo else []
    run.report["selection"] = {"sft": vars(sft.report), "dpo": vars(pairs.report)}
    return kept_sft, spread(kept_pairs, run.recipe.dpo_pairs)


def spread(pairs: list[NewSample], limit: int) -> list[NewSample]:
    """At most `limit` pairs, taken from every task in turn (DPO costs three forward passes per pair)."""
    by_task: dict[str, list[NewSample]] = {}
    for pair in pairs:
        by_task.setdefault(pair.task, []).append(pair)
    for task_pairs in by_task.values():
        random.Random(0).shuffle(task_pairs)  # every fact, not the first few
    chosen: list[NewSample] = []
    while len(chosen) < limit and any(by_task.values()):
        for task in list(by_task):
            if by_task[task] and len(chosen) < limit:
                chosen.append(by_task[task].pop(0))
    return chosen


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
    current = {f.id for f in deps.facts.current(deps.twin_id, "owner")}
    if trained - current:
        return None, f"fresh: {len(trained - current)} fact(s) {name} learned were superseded or removed since"
    return serving, f"continued from {name}"


def _steps(samples: int, epochs: float, batch: int) -> int:
    return max(1, math.ceil(epochs * samples / batch))


def train(run: Run, base: str, name: str, sft_rows: list[NewSample], pair_rows: list[NewSample],
          init: Adapter | None) -> tuple[Path, Path | None, dict[str, Any]]:
    """Stage 3: SFT (continuing `init` when given), then DPO continuing the SFT adapter, within the budget."""
    recipe, folder = run.recipe, run.deps.adapters_dir
    budget = recipe.budget_minutes * 60
    sft_budget = budget * (0.75 if pair_rows else 1.0)
    sft_recipe = Recipe(max_steps=_steps(len(sft_rows), recipe.epochs, recipe.batch_size),
                        max_length=recipe.max_length, r=recipe.rank, lora_alpha=recipe.alpha,
                        learning_rate=recipe.sft_learning_rate, batch_size=recipe.batch_size, seed=recipe.seed,
                        budget_seconds=sft_budget, init_adapter=init.path if init else None, bf16=recipe.bf16)
    sft_path = folder / f".{name}.sft"
    began = time.perf_counter()
    run.stage(f"SFT on {len(sft_rows)} samples ({sft_recipe.max_steps} steps at most)")
    sft = train_adapter(base, [{"prompt": s.prompt, "completion": [{"role": "assistant", "content": s.completion}]}
                               for s in sft_rows], sft_path, sft_recipe, progress=run.progress)
    run.timed("sft", began)
    losses: dict[str, Any] = {"sft": sft.losses, "sft_steps": sft.steps, "recipe": sft.recipe}
    if not pair_rows:
        return sft_path, None, losses
    began = time.perf_counter()
    left = max(60.0, budget - (time.perf_counter() - run.started))
    dpo_recipe = replace(sft_recipe, max_steps=_steps(len(pair_rows), 1, recipe.batch_size),
                         learning_rate=recipe.dpo_learning_rate, budget_seconds=left, beta=recipe.dpo_beta)
    dpo_path = folder / f".{name}.dpo"
    run.stage(f"DPO on {len(pair_rows)} pairs ({dpo_recipe.max_steps} steps at most)")
    dpo = train_dpo(base, sft_path, [pair_row(p.prompt, p.completion, p.meta["rejected"]) for p in pair_rows],
                    dpo_path, dpo_recipe, progress=run.progress)
    run.timed("dpo", began)
    losses |= {"dpo": dpo.losses, "dpo_steps": dpo.steps}
    return sft_path, dpo_path, losses


def evaluate(run: Run, base: str, name: str, sft_path: Path, dpo_path: Path | None, probes: list,
             version: str, inputs: dict[str, Any]) -> Evaluation:
    """Stage 4: base, serving, SFT and SFT+DPO side by side in weights mode."""
    deps = run.deps
    models = [ModelUnderTest("base")]
    serving = deps.training.serving(deps.twin_id, run.audience)
    adapter = deps.training.get(deps.twin_id, serving) if serving else None
    if adapter is not None and adapter.base_model == base and Path(adapter.path).is_dir():
        models.append(ModelUnderTest(f"serving ({adapter.name})", adapter.path))
    models.append(ModelUnderTest("sft", str(sft_path)))
    if dpo_path is not None:
        models.append(ModelUnderTest("sft+dpo", str(dpo_path)))
    began = time.perf_counter()
    run.stage(f"evaluating {len(models)} models on {len(probes)} probes")
    result = evaluate_weights(base, models, probes, inputs["voice"], version, [c.key for c in inputs["hidden"]],
                              progress=run.progress)
    if deps.judge is not None:
        run.stage("judging")
        result.add_judge(deps.judge, probes)
    run.timed("evaluation", began)
    return result


def retrain(deps: RetrainDeps, audience: str, *, deploy: bool = True, only_if_new: bool = False,
            progress: Progress | None = None, stage: Stage | None = None,
            recipe: TrainingRecipe | None = None) -> RetrainOutcome:
    """Run the whole loop for one audience; deploy the result only if it is not worse than what serves now."""
    run = Run(deps, audience, recipe or deps.recipe, stage or (lambda _text: None), progress)
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
    pick, why = choose(figures["sft"], figures.get("sft+dpo"), run.recipe)
    chosen = figures["sft+dpo" if pick == "dpo" else "sft"]
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
                              f"{verdict.reason}.", name, len(sft_rows), metrics)
    return _deploy(deps, audience, name, len(sft_rows), metrics, deploy, verdict.reason)


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
