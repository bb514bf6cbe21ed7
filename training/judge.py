"""The judge: the paper's four metrics (memory Q&A as the owner, memory Q&A for others, context enhancement,
context critique) on its 0 / 0.5 / 1 scale, shown only for a judge that passes calibration: on probes whose right
answer is known, it must rank the gold answer above a wrong one above an empty one. Otherwise the metrics are
"n/a": a tiny model's noise is never shown as a score. A judge only receives probes its visibility allows."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from core.llm import LanguageModel, LLMOutputError, LLMUnavailable
from storage.training import StoredSample
from training.selection import length_controlled
from training.teacher import may_see

log = logging.getLogger(__name__)

JUDGE_SYSTEM = (
    "You grade an assistant's answer against the reference. Score 1 if the answer is correct and complete, 0.5 if "
    "partly correct, 0 if wrong, empty or evasive. Reply with JSON: {\"score\": 0 | 0.5 | 1}."
)
METRICS = {"memory_owner": ("recall_topic", "recall_indirect"), "memory_others": ("recall_others",),
           "enhance": ("enhance",), "critique": ("critique",)}
CALIBRATION_PROBES = 6


class Grade(BaseModel):
    score: Literal[0, 0.5, 1]


class Judge:
    """Scores answers with a model, within its visibility."""

    def __init__(self, llm: LanguageModel, model: str | None, visibility: str) -> None:
        self.llm = llm
        self.model = model
        self.visibility = visibility

    async def grade(self, probe: StoredSample, answer: str) -> float | None:
        """One answer's score, or None when the judge may not see the probe or gave no valid grade."""
        if not may_see(probe.visibility, self.visibility):
            return None
        reference = probe.meta.get("verdict") or probe.meta.get("key", "")
        user = (f"Question: {probe.meta.get('question', '')}\nReference: {reference}\n"
                f"Answer: {answer or '(empty)'}")
        try:
            grade = await self.llm.complete_json([{"role": "system", "content": JUDGE_SYSTEM},
                                                  {"role": "user", "content": user}], Grade, model=self.model,
                                                 max_tokens=20)
        except (LLMOutputError, LLMUnavailable) as error:
            log.info("judge failed: %s", error)
            return None
        return float(grade.score)

    async def calibrate(self, probes: Sequence[StoredSample]) -> tuple[bool, str]:
        """Gold above wrong above empty, on the mean of a few probes with known answers."""
        chosen = [p for p in probes if p.task in ("recall_topic", "recall_others") and may_see(p.visibility,
                                                                                                 self.visibility)]
        chosen = chosen[:CALIBRATION_PROBES]
        if len(chosen) < 3:
            return False, "n/a: too few probes the judge may see to calibrate it"
        gold, wrong, empty = [], [], []
        others = [p.meta["key"] for p in chosen]
        for at, probe in enumerate(chosen):
            key = probe.meta["key"]
            gold.append(await self.grade(probe, f"It is {key}."))
            wrong.append(await self.grade(probe, f"It is {others[(at + 1) % len(others)]}."))
            empty.append(await self.grade(probe, ""))
        if any(v is None for v in gold + wrong + empty):
            return False, "n/a: the judge did not grade every calibration answer"
        means = [statistics.mean(v) for v in (gold, wrong, empty)]  # type: ignore[arg-type]
        ok = means[0] > means[1] > means[2] or (means[0] > means[1] and means[0] > means[2] and means[2] == 0)
        detail = f"gold {means[0]:.2f}, wrong {means[1]:.2f}, empty {means[2]:.2f}"
        return ok, (f"calibrated ({detail})" if ok else f"n/a: failed calibration ({detail})")

    async def metrics(self, probes: Sequence[StoredSample], answers: Sequence[str]) -> dict[str, float | None]:
        """The four metrics for one model's answers, each with the judge's length preference removed."""
        found: dict[str, float | None] = {}
        for metric, kinds in METRICS.items():
            scores, lengths = [], []
            for probe, answer in zip(probes, answers, strict=True):
                if probe.task in kinds and (score := await self.grade(probe, answer)) is not None:
                    scores.append(score)
                    lengths.append(len(answer))
            found[metric] = round(statistics.mean(length_controlled(scores, lengths)), 4) if scores else None
        return found
