"""Stage 5, the deploy gate: a candidate serves only if it is not worse than what serves now.

Hard gates (any one refuses): a leak of a more private fact, a JSON validity below what serves now. Soft gates
(beyond a tolerance): recall and voice, voice only over enough held-out replies. With no adapter serving, the base
model is what serves. Between the two candidates, SFT+DPO is chosen when it is not worse than SFT alone on any gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.evaluation import recall
from training.recipe import TrainingRecipe


@dataclass(frozen=True)
class Verdict:
    """Whether to deploy, and why, in words for the owner."""

    deploy: bool
    reason: str


def compare(candidate: dict[str, Any], current: dict[str, Any], recipe: TrainingRecipe) -> Verdict:
    """The candidate's figures against those of the model serving now."""
    if candidate.get("leaks", 0) > 0:
        return Verdict(False, f"it leaked {candidate['leaks']} private fact(s) to a lower audience")
    if candidate.get("json_valid", 1.0) < current.get("json_valid", 0.0):
        return Verdict(False, f"valid JSON fell from {current['json_valid']:.2f} to {candidate['json_valid']:.2f}")
    new, old = recall(candidate), recall(current)
    if new is not None and old is not None and new < old - recipe.recall_tolerance:
        return Verdict(False, f"recall fell from {old:.2f} to {new:.2f}")
    voice_new, voice_old = candidate.get("voice_nll"), current.get("voice_nll")
    replies = candidate.get("voice_replies", 0)
    weighed = voice_new is not None and voice_old is not None and replies >= recipe.voice_min_replies
    if weighed and voice_new > voice_old + recipe.voice_tolerance:
        return Verdict(False, f"voice got worse (NLL {voice_old:.2f} -> {voice_new:.2f})")
    parts = [f"recall {old:.2f} -> {new:.2f}" if new is not None and old is not None else None,
             f"voice NLL {voice_old:.2f} -> {voice_new:.2f}" if weighed else
             f"voice not weighed: {replies} held-out replies, fewer than {recipe.voice_min_replies}"
             if voice_new is not None and voice_old is not None else None]
    return Verdict(True, "not worse than what serves now (" + ", ".join(p for p in parts if p) + ")"
                   if any(parts) else "not worse than what serves now")


def choose(sft: dict[str, Any], dpo: dict[str, Any] | None, recipe: TrainingRecipe) -> tuple[str, str]:
    """'sft' or 'dpo', and why: DPO only when it is not worse than SFT alone."""
    if dpo is None:
        return "sft", "no DPO stage"
    verdict = compare(dpo, sft, recipe)
    return ("dpo", "SFT+DPO is not worse than SFT") if verdict.deploy else ("sft", f"SFT+DPO: {verdict.reason}")
