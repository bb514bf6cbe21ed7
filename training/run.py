"""What one run of the loop is given (RetrainDeps, from the composition root), what it tells (RetrainOutcome),
and its state as it goes through the stages (Run: the report and the timings every stage adds to)."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from storage.facts import FactStore
from storage.training import Adapter, TrainingStore
from training.cards import FactCard
from training.evaluation import Evaluation, JudgeRun
from training.recipe import TrainingRecipe
from training.selection import CountTokens, Embed, Forgotten
from training.sft import Progress

MIN_SAMPLES = 8
Teach = Callable[[list[FactCard], str], tuple[dict[int, list[str]], dict[int, list[str]], dict[int, str]]]


class Stage(Protocol):
    """A short status line as the run starts a stage (the terminal's bar, the owner's chat); `long` marks the
    stages that take minutes (SFT, DPO, the evaluation): those the owner hears of in chat."""

    def __call__(self, text: str, *, long: bool = False) -> None: ...


def no_stage(text: str, *, long: bool = False) -> None:
    """A run nobody watches."""


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
    evaluation: Evaluation | None = field(default=None, repr=False)  # in memory only: its answers hold text


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
