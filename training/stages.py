"""The loop's stages over one Run, each reading from the stores and adding what it made and dropped to the
run's report: synthesize (samples, pairs, probes), select (the filters), train (SFT then DPO in child processes,
within the budget) and evaluate (base, serving, SFT, SFT+DPO side by side)."""

from __future__ import annotations

import hashlib
import math
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from storage.facts import FactStore
from storage.models import Audience, Fact
from storage.training import Adapter, NewSample
from training.cards import FactCard, card_for
from training.dataset import build_samples
from training.dpo import pair_row, train_dpo
from training.evaluation import Evaluation, ModelUnderTest, candidate_column, evaluate_weights
from training.probes import others_probes, owner_probes
from training.run import Run
from training.selection import CountTokens, Selector
from training.sft import Recipe, train_adapter
from training.synthesis import Synthesis, Synthesizer

VOICE_HELD_OUT = 0.1  # the owner's newest replies kept for the voice figure, never trained on


def cards_of(facts: FactStore, twin_id: int, audience: str) -> tuple[list[Fact], list[FactCard], list[Fact]]:
    """The audience's current facts, their cards (with the values they superseded) and those without one."""
    every = facts.all(twin_id, Audience.owner)
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


def _control(fact_id: int, share: float) -> bool:
    """Whether a fact is held out of training entirely (a stable choice: the same facts every run)."""
    digest = int(hashlib.sha256(f"control:{fact_id}".encode()).hexdigest()[:8], 16)
    return (digest % 1000) < share * 1000


def synthesize(run: Run) -> tuple[Synthesis, list[NewSample], dict[str, Any]]:
    """Stage 1: samples, pairs, held-out voice rows and the probe inputs."""
    deps, audience, recipe = run.deps, run.audience, run.recipe
    current, cards, without = cards_of(deps.facts, deps.twin_id, audience)
    owner_side = audience == Audience.owner
    trained = [c for c in cards if not _control(c.fact_id, recipe.control_share)] if owner_side else cards
    control = [c for c in cards if c not in trained]
    style = recipe.cot_for("memory_owner" if audience == Audience.owner else "memory_others")
    train_q, held_q, reasons = deps.teach(trained, style) if deps.teach else ({}, {}, {})
    synth = Synthesizer(deps.owner_name, recipe, train_q, reasons)
    out = Synthesis(audience)
    visible_facts = [f for f in current if f.id not in {c.fact_id for c in control}]
    synth.memory_qa(out, trained, visible_facts)
    if audience == Audience.owner:
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
    if audience != Audience.owner:
        visible_ids = {c.fact_id for c in cards}
        _, owner_cards, _ = cards_of(deps.facts, deps.twin_id, Audience.owner)
        hidden = [c for c in owner_cards if c.fact_id not in visible_ids]
    indirect = {k: held_q.get(k, []) + deps.extra_indirect.get(k, []) for k in {*held_q, *deps.extra_indirect}}
    probes = (owner_probes(deps.owner_name, trained, control, indirect) if audience == Audience.owner
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
    wanted = [pair for pair in out.pairs if pair.task in run.recipe.dpo_tasks]  # the recipe's DPO tasks
    kept_sft, kept_pairs = sft.select(out.sft), pairs.select(wanted) if run.recipe.dpo else []
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


def _steps(samples: int, epochs: float, batch: int) -> int:
    return max(1, math.ceil(epochs * samples / batch))


EVALUATION_SHARE = 0.2  # of the budget kept for the evaluation (the owner's on the CPU: 2.7-5.9 of 30 minutes)
SFT_SHARE = 0.75  # of the training time given to SFT when DPO follows
MIN_STAGE_SECONDS = 60.0  # a stage always gets this long, whatever is left: a few steps rather than none


def training_seconds(budget_minutes: float, spent: float) -> float:
    """Seconds SFT and DPO may take so that the whole run, evaluation included, fits the budget."""
    return max(MIN_STAGE_SECONDS, budget_minutes * 60 * (1 - EVALUATION_SHARE) - spent)


def train(run: Run, base: str, name: str, sft_rows: list[NewSample], pair_rows: list[NewSample],
          init: Adapter | None) -> tuple[Path, Path | None, dict[str, Any]]:
    """Stage 3: SFT (continuing `init` when given), then DPO continuing the SFT adapter, within the budget."""
    recipe, folder = run.recipe, run.deps.adapters_dir
    budget = training_seconds(recipe.budget_minutes, time.perf_counter() - run.started)
    sft_budget = budget * (SFT_SHARE if pair_rows else 1.0)
    sft_recipe = Recipe(max_steps=_steps(len(sft_rows), recipe.epochs, recipe.batch_size),
                        max_length=recipe.max_length, r=recipe.rank, lora_alpha=recipe.alpha,
                        learning_rate=recipe.sft_learning_rate, batch_size=recipe.batch_size, seed=recipe.seed,
                        budget_seconds=sft_budget, init_adapter=init.path if init else None, bf16=recipe.bf16,
                        gradient_checkpointing=recipe.gradient_checkpointing)
    sft_path = folder / f".{name}.sft"
    began = began_training = time.perf_counter()
    run.stage(f"SFT on {len(sft_rows)} samples ({sft_recipe.max_steps} steps at most)", long=True)
    sft = train_adapter(base, [{"prompt": s.prompt, "completion": [{"role": "assistant", "content": s.completion}]}
                               for s in sft_rows], sft_path, sft_recipe, progress=run.progress)
    run.timed("sft", began)
    losses: dict[str, Any] = {"sft": sft.losses, "sft_steps": sft.steps, "recipe": sft.recipe}
    if not pair_rows:
        return sft_path, None, losses
    began = time.perf_counter()
    left = max(MIN_STAGE_SECONDS, budget - (time.perf_counter() - began_training))
    dpo_recipe = replace(sft_recipe, max_steps=_steps(len(pair_rows), 1, recipe.batch_size),
                         learning_rate=recipe.dpo_learning_rate, budget_seconds=left, beta=recipe.dpo_beta,
                         sft_weight=recipe.dpo_sft_weight)
    dpo_path = folder / f".{name}.dpo"
    run.stage(f"DPO on {len(pair_rows)} pairs ({dpo_recipe.max_steps} steps at most)", long=True)
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
        models.append(ModelUnderTest(candidate_column("dpo"), str(dpo_path)))
    began = time.perf_counter()
    run.stage(f"evaluating {len(models)} models on {len(probes)} probes", long=True)
    result = evaluate_weights(base, models, probes, inputs["voice"], version, [c.key for c in inputs["hidden"]],
                              progress=run.progress, bf16=run.recipe.bf16)
    if deps.judge is not None:
        run.stage("judging")
        result.add_judge(deps.judge, probes)
    run.timed("evaluation", began)
    return result
