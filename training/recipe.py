"""The training recipe: every setting that shapes an adapter, validated like the other settings (TWIN_TRAINING).

Two presets: `cpu` fits the bundled SmolLM2-135M on a 2-core machine (fp32, rank 16, lr 1e-3, 5 phrasings per
fact and a memory block in a quarter of the Q&A samples: a serving-format sample is 3-4x the tokens of a bare
question; no gradient checkpointing and SFT batches grouped by length: about 8 s per step of 8 on an
AVX2-only 2-core CPU, 14-18 s with TRL's default checkpointing and random batches); `gpu` fits
Qwen2.5-7B-Instruct on one GPU (bf16, rank 16, the usual LoRA learning rates, gradient checkpointing).
Any field given explicitly overrides the preset's value.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from core.endpoints import ModelEndpoint

CotStyle = Literal["none", "weak", "multistep", "strong"]
TASKS = ("memory_owner", "memory_others", "enhance", "critique")  # the paper's four tasks
PairTask = Literal["memory_owner", "memory_others", "decline", "introduce", "enhance", "critique", "reply"]
PAIR_TASKS: tuple[str, ...] = PairTask.__args__  # every sample type that makes preference pairs

PRESETS: dict[str, dict[str, object]] = {
    "cpu": {"rank": 16, "alpha": 32, "sft_learning_rate": 1e-3, "dpo_learning_rate": 5e-5, "epochs": 3.5,
            "batch_size": 8, "max_length": 320, "bf16": False, "budget_minutes": 25.0, "dpo_pairs": 48,
            "phrasings_per_fact": 5, "memory_share": 0.25, "gradient_checkpointing": False, "dpo_beta": 0.5,
            "dpo_tasks": tuple(task for task in PAIR_TASKS if task != "reply")},
    "gpu": {"rank": 16, "alpha": 32, "sft_learning_rate": 2e-4, "dpo_learning_rate": 5e-6, "epochs": 3,
            "batch_size": 16, "max_length": 1024, "bf16": True, "budget_minutes": 120.0, "dpo_pairs": 4000,
            "phrasings_per_fact": 8, "memory_share": 0.5, "gradient_checkpointing": True},
}


class CotSettings(BaseModel):
    """The paper's chain-of-thought style per task: none, weak (a short reasoning from the memory), multistep
    (two teacher calls: the reasoning, then the answer given it) or strong (a strict reasoning-then-answer format
    from a stronger teacher). Reasoning is wrapped in <think> tags that the guard strips before anyone sees it."""

    model_config = {"frozen": True}

    memory_owner: CotStyle = "none"
    memory_others: CotStyle = "none"
    enhance: CotStyle = "none"
    critique: CotStyle = "none"


class TrainingRecipe(BaseModel):
    """How the loop synthesizes, selects, trains, evaluates and gates (JSON in TWIN_TRAINING)."""

    model_config = {"frozen": True}

    preset: Literal["cpu", "gpu"] = Field(default="cpu", description="Defaults for the fields not given.")
    rank: int = Field(default=16, ge=1, le=256, description="LoRA rank (at most the server's --max-lora-rank).")
    alpha: int = Field(default=32, ge=1, description="LoRA alpha (the update is scaled by alpha / rank).")
    sft_learning_rate: float = Field(default=1e-3, gt=0, lt=1, description="AdamW learning rate of SFT.")
    dpo_learning_rate: float = Field(default=5e-5, gt=0, lt=1, description="AdamW learning rate of DPO.")
    dpo_beta: float = Field(default=0.1, gt=0, description="DPO's beta (how far from the SFT adapter).")
    dpo_sft_weight: float = Field(default=1.0, ge=0, description="Weight of the chosen answers' NLL added to "
                                  "DPO's loss (RPO), so DPO does not unlearn what SFT taught; 0: DPO alone.")
    epochs: float = Field(default=4, gt=0, le=50, description="Passes over the SFT samples (DPO: one pass).")
    batch_size: int = Field(default=8, ge=1, le=512)
    max_length: int = Field(default=320, ge=32, description="Tokens per sample, prompt included: longer is dropped.")
    bf16: bool = Field(default=False, description="bfloat16 weights (a GPU); float32 on the CPU.")
    gradient_checkpointing: bool = Field(default=False, description="SFT recomputes activations in the backward: "
                                         "less memory for a large model, more time (2.2x per step for the bundled "
                                         "model on the CPU, where memory is not the limit).")
    budget_minutes: float = Field(default=25.0, gt=0, description="Wall time for the whole run: synthesis to the "
                                  "gate, a fifth kept for the evaluation; training stops early, saved.")
    dpo: bool = Field(default=True, description="Run DPO after SFT (off: SFT alone).")
    dpo_pairs: int = Field(default=48, ge=1, description="Most preference pairs DPO trains on (spread over tasks).")
    dpo_tasks: tuple[PairTask, ...] = Field(default=PAIR_TASKS, min_length=1,
                                            description="The sample types DPO takes pairs from (reply: the owner's "
                                            "real reply over a generic one).")
    phrasings_per_fact: int = Field(default=6, ge=1, le=40, description="Trained question phrasings per fact.")
    control_share: float = Field(default=0.1, ge=0, le=0.5,
                                 description="Share of facts held out of training entirely (the leak control).")
    memory_share: float = Field(default=0.5, ge=0, le=1,
                                description="Share of Q&A samples whose memory block holds the fact among others.")
    cot: CotSettings = Field(default_factory=CotSettings)
    teacher: ModelEndpoint | None = Field(default=None, description="Paraphrases and reasoning; default the local "
                                          "base model when it runs, else templates alone.")
    judge: ModelEndpoint | None = Field(default=None, description="Scores the paper's four metrics, only when it "
                                        "passes calibration; default the local base model.")
    recall_tolerance: float = Field(default=0.05, ge=0, le=1, description="Deploy gate: recall may drop this much.")
    voice_tolerance: float = Field(default=0.1, ge=0, description="Deploy gate: voice NLL may rise this much.")
    voice_min_replies: int = Field(default=5, ge=1, description="Deploy gate: voice is weighed only over at "
                                   "least this many held-out replies (one reply's likelihood is noise).")
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "cpu")
        if preset not in PRESETS:
            return data  # the Literal reports it
        return PRESETS[preset] | data

    def cot_for(self, task: str) -> str:
        """The chain-of-thought style of one task."""
        return getattr(self.cot, task) if task in TASKS else "none"
