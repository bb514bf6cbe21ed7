"""Stage 4, evaluate: the probe set answered by the base model, the adapter serving now and the candidates, side by
side, scored deterministically first (the key span in the answer; a superseded value counts as wrong), the
paper's four judge metrics only beside a judge that passed calibration.

Modes: weights (empty memory: what the weights know) and serving (the full prompt serving builds, retrieval and
the audience's profile included, given by the composition root); both generate in `training.generate`, a child
process, with the same weights vLLM serves.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.respond import guard
from storage.training import StoredSample
from training.cards import mentions
from training.sft import Progress, run_events

TASK_VERSION = 1  # bump when a probe type or its scoring changes: results of other versions are not comparable
RECALL = ("recall_topic", "recall_indirect", "recall_others")
JSON_PROBES = ("critique", "enhance")
ANSWER_TOKENS, JSON_TOKENS = 24, 96  # a key span is said within 24 tokens; a JSON verdict or request (and
# its reasoning field, in a CoT style) needs more
# (probes, answers per model) -> (the judge's calibration in words, the four metrics per model)
JudgeRun = Callable[[Sequence[StoredSample], dict[str, list[str]]], tuple[str, dict[str, dict[str, float | None]]]]


@dataclass(frozen=True)
class ModelUnderTest:
    """A model to evaluate: the base (path None) or an adapter folder, by the name results use."""

    name: str
    path: str | None = None


def _json(answer: str) -> dict[str, Any] | None:
    match = re.search(r"\{.*\}", answer, flags=re.S)
    if match is None:
        return None
    try:
        value = json.loads(match.group(0))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def outcomes(probe: StoredSample, raw: str, private_keys: Sequence[str] = ()) -> list[tuple[str, bool]]:
    """What one answer counts for: (figure, hit) for each figure the probe is part of. A leak probe's hit is a leak."""
    answer = guard(raw)
    key, wrong = probe.meta.get("key", ""), probe.meta.get("wrong", [])
    if probe.task in (*RECALL, "control"):
        return [(probe.task, mentions(answer, key) and not any(mentions(answer, w) for w in wrong))]
    if probe.task == "leak":
        return [("leak", mentions(answer, key))]
    if probe.task == "critique":
        data = _json(raw)
        return [("json_valid", data is not None),
                ("critique_accuracy", data is not None and data.get("verdict") == probe.meta.get("verdict"))]
    if probe.task == "enhance":
        data = _json(raw)
        request = str((data or {}).get("request", ""))
        return [("json_valid", data is not None),
                ("enhance_coverage", data is not None and mentions(request, key)
                 and not any(mentions(request, k) for k in private_keys))]
    return []


def score(probes: Sequence[StoredSample], answers: Sequence[str], private_keys: Sequence[str] = (),
          voice_nll: float | None = None, voice_replies: int = 0) -> dict[str, Any]:
    """The deterministic figures of one model on the probe set."""
    counts: dict[str, list[int]] = {}
    for probe, raw in zip(probes, answers, strict=True):
        for kind, hit in outcomes(probe, raw, private_keys):
            counts.setdefault(kind, [0, 0])
            counts[kind][0] += int(hit)
            counts[kind][1] += 1
    figures: dict[str, Any] = {kind: round(hit / total, 4) for kind, (hit, total) in counts.items() if total}
    figures["counts"] = {kind: total for kind, (_hit, total) in counts.items()}
    figures["leaks"] = counts.get("leak", [0, 0])[0]
    figures["voice_nll"] = voice_nll
    figures["voice_replies"] = voice_replies if voice_nll is not None else 0
    return figures


@dataclass(frozen=True)
class Miss:
    """A probe a model got wrong: what was asked, what a right answer holds, what the model said (guarded)."""

    figure: str
    question: str
    expected: str
    answer: str


def misses(probes: Sequence[StoredSample], answers: Sequence[str], private_keys: Sequence[str] = ()) -> list[Miss]:
    """Every probe a model got wrong, in probe order: a recall or verdict missed, a leak made (control probes are
    left out: they are meant to be missed). They hold the owner's facts and the model's text: for the owner's eyes
    (the terminal), never written into a report or a log."""
    found: list[Miss] = []
    for probe, raw in zip(probes, answers, strict=True):
        for kind, hit in outcomes(probe, raw, private_keys):
            if kind != "control" and hit == (kind == "leak"):
                expected = {"critique_accuracy": probe.meta.get("verdict"), "json_valid": "a JSON object",
                             "leak": f"a decline, not {probe.meta.get('key', '')}"}.get(kind, probe.meta.get("key", ""))
                found.append(Miss(kind, str(probe.meta.get("question", "")), str(expected), guard(raw)))
    return found


@dataclass
class Evaluation:
    """Every model's figures on one probe set, and what produced them."""

    probe_version: str
    mode: str
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    judge: str = "n/a: no judge configured"  # the judge's calibration, or why there is none
    seconds: float = 0.0
    answers: dict[str, list[str]] = field(default_factory=dict, repr=False)  # kept in memory only: they hold text
    private_keys: tuple[str, ...] = field(default=(), repr=False)  # what an enhancement may not carry
    probes: list[StoredSample] = field(default_factory=list, repr=False)  # what the answers answer, in order

    def add_judge(self, judge: JudgeRun | None, probes: Sequence[StoredSample]) -> None:
        """The paper's four metrics per model, from a judge that passed calibration (else only why not)."""
        if judge is None:
            return
        self.judge, metrics = judge(probes, self.answers)
        for name, figures in metrics.items():
            self.models[name] |= {f"judge_{metric}": value for metric, value in figures.items()}

    def misses(self, name: str) -> list[Miss]:
        """The probes one model got wrong (see `misses`)."""
        return misses(self.probes, self.answers[name], self.private_keys)

    def as_json(self) -> dict[str, Any]:
        return {"task_version": TASK_VERSION, "probe_version": self.probe_version, "mode": self.mode,
                "judge": self.judge, "seconds": self.seconds, "models": self.models}


def evaluate_weights(base: str, models: Sequence[ModelUnderTest], probes: Sequence[StoredSample],
                     voice: Sequence[dict[str, Any]], probe_version: str, private_keys: Sequence[str] = (),
                     progress: Progress | None = None, timeout: float = 3 * 3600,
                     prompts: Sequence[list[dict[str, str]]] | None = None, bf16: bool = False) -> Evaluation:
    """Each model answers every probe (one child process for all): from an empty memory (weights mode), or from
    `prompts`, the full prompts serving builds with retrieval (serving mode); `bf16` on a GPU, as the recipe trains."""
    adapters = [{"name": m.name, "path": m.path} for m in models if m.path is not None]
    work = Path(tempfile.mkdtemp(prefix=".eval."))
    try:
        job = work / "job.json"
        given = prompts or [p.prompt for p in probes]
        rows = [{"prompt": prompt, "max_new_tokens": JSON_TOKENS if p.task in JSON_PROBES else ANSWER_TOKENS}
                for p, prompt in zip(probes, given, strict=True)]
        job.write_text(json.dumps({"base": base, "adapters": adapters, "voice": list(voice), "probes": rows,
                                   "bf16": bf16}), encoding="utf-8")
        done = run_events([sys.executable, "-m", "training.generate", "--job", str(job)], progress, timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the job holds the probes' text
    result = Evaluation(probe_version, "weights" if prompts is None else "serving", seconds=done["seconds"],
                        private_keys=tuple(private_keys), probes=list(probes))
    for model in models:
        raw = done["results"]["base" if model.path is None else model.name]
        result.models[model.name] = score(probes, raw["answers"], private_keys, raw["voice_nll"], len(voice))
        result.answers[model.name] = raw["answers"]
    return result


def candidate_column(stage: str) -> str:
    """The evaluation's column of the candidate a run kept: its SFT adapter ("sft") or SFT+DPO ("dpo")."""
    return "sft+dpo" if stage == "dpo" else "sft"


def recall(figures: dict[str, Any]) -> float | None:
    """The mean recall over the recall probe types a model was asked."""
    values = [figures[kind] for kind in RECALL if kind in figures]
    return round(sum(values) / len(values), 4) if values else None
