"""Stage 2, select: filters in tiers, each counting what it drops and why (a sample is dropped, never cut).

1. schema and length: JSON tasks parse against the schema serving reads; the tokenized sample fits the training
   length;
2. deduplication: the same question and answer (normalized), or a question the embedding model finds nearly the
   same as one already kept for the same fact and task;
3. grounding: the answer holds its source fact's key span (a decline holds no key at all);
4. privacy: nothing from a more private level than the audience may see (any key span of such a fact), nothing
   that matches a forgotten item (tombstones);
5. a judge score with a control for its preference for longer answers, only for a judge that passed calibration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from core.experts import Critique, EnhancedRequest
from storage.training import NewSample
from training.cards import mentions

CountTokens = Callable[[list[dict[str, str]]], int]
Embed = Callable[[list[str]], list[list[float]]]
Forgotten = Callable[[list[str]], list[bool]]
JSON_TASKS = {"enhance": EnhancedRequest, "critique": Critique}
NEAR_DUPLICATE = 0.97  # cosine similarity of two questions above which the second adds nothing


@dataclass
class SelectionReport:
    """Kept and dropped counts, per filter."""

    given: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def _question(sample: NewSample) -> str:
    return sample.prompt[-1]["content"] if sample.prompt else ""


def _answer_text(sample: NewSample) -> str:
    """The part of the completion a user would read (the JSON field, or the text after any reasoning)."""
    text = sample.completion.split("</think>")[-1]
    schema = JSON_TASKS.get(sample.task)
    if schema is None:
        return text
    data = json.loads(text)
    return data.get("request") or data.get("answer") or ""


@dataclass
class Selector:
    """The filters for one audience: `private_keys` are the key spans of facts above what it may see."""

    count_tokens: CountTokens
    max_length: int
    private_keys: Sequence[str] = ()
    forgotten: Forgotten | None = None
    embed: Embed | None = None
    report: SelectionReport = field(default_factory=SelectionReport)

    def select(self, samples: Sequence[NewSample]) -> list[NewSample]:
        """The samples that pass every filter, in their order."""
        self.report.given += len(samples)
        kept = [s for s in samples if self._schema(s) and self._length(s)]
        kept = self._dedupe(kept)
        kept = [s for s in kept if self._grounded(s) and self._private(s)]
        kept = self._not_forgotten(kept)
        self.report.kept += len(kept)
        return kept

    def _schema(self, sample: NewSample) -> bool:
        schema = JSON_TASKS.get(sample.task)
        if schema is None:
            return bool(sample.completion.strip())
        try:
            schema.model_validate_json(sample.completion)
            return True
        except ValidationError:
            self.report.drop("schema")
            return False

    def _length(self, sample: NewSample) -> bool:
        rejected = (sample.meta or {}).get("rejected", "")
        longest = max(sample.completion, rejected, key=len)
        if self.count_tokens([*sample.prompt, {"role": "assistant", "content": longest}]) > self.max_length:
            self.report.drop("too long")
            return False
        return True

    def _dedupe(self, samples: list[NewSample]) -> list[NewSample]:
        seen: set[tuple[str, str, str]] = set()
        exact: list[NewSample] = []
        for sample in samples:
            key = (sample.task, " ".join(_question(sample).casefold().split()), sample.completion.casefold())
            if key in seen:
                self.report.drop("duplicate")
                continue
            seen.add(key)
            exact.append(sample)
        if self.embed is None or not exact:
            return exact
        return self._near_duplicates(exact)

    def _near_duplicates(self, samples: list[NewSample]) -> list[NewSample]:
        import numpy as np

        vectors = np.asarray(self.embed([_question(s) for s in samples]), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
        kept: list[int] = []
        for at, sample in enumerate(samples):
            group = [k for k in kept if samples[k].task == sample.task and samples[k].fact_ids == sample.fact_ids
                     and samples[k].completion == sample.completion]
            if group and float(np.max(vectors[group] @ vectors[at])) > NEAR_DUPLICATE:
                self.report.drop("near duplicate")
                continue
            kept.append(at)
        return [samples[k] for k in kept]

    def _grounded(self, sample: NewSample) -> bool:
        key = (sample.meta or {}).get("key")
        if key is None:
            return True  # voice, declines and introductions quote memory or nothing
        if not mentions(_answer_text(sample), key):
            self.report.drop("not grounded")
            return False
        return True

    def _private(self, sample: NewSample) -> bool:
        text = " ".join(message["content"] for message in sample.prompt) + " " + sample.completion
        rejected = (sample.meta or {}).get("rejected", "")
        if any(mentions(text + " " + rejected, key) for key in self.private_keys):
            self.report.drop("more private than the audience")
            return False
        return True

    def _not_forgotten(self, samples: list[NewSample]) -> list[NewSample]:
        if self.forgotten is None or not samples:
            return samples
        flags = self.forgotten([s.completion for s in samples])
        for flag in flags:
            if flag:
                self.report.drop("forgotten")
        return [s for s, flag in zip(samples, flags, strict=True) if not flag]


def length_controlled(scores: Sequence[float], lengths: Sequence[int]) -> list[float]:
    """Judge scores with the part a linear fit on answer length explains removed (a judge that prefers longer
    answers gains nothing from length): residuals added back to the mean score."""
    import numpy as np

    y, x = np.asarray(scores, dtype=float), np.asarray(lengths, dtype=float)
    if len(y) < 3 or float(np.std(x)) == 0.0:
        return list(y)
    slope = float(np.cov(x, y, bias=True)[0, 1] / np.var(x))
    return list(y - slope * (x - x.mean()))
