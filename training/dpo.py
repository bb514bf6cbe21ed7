"""DPO continuing the SFT adapter, in a child process: `python -m training.dpo --base DIR --data FILE --output DIR`.

Rows are TRL's conversational preference format: prompt (chat messages), chosen and rejected (one assistant
message each). The SFT adapter is loaded trainable and is its own reference (TRL keeps a frozen copy of it, no
second model in memory). The loss adds the chosen answers' NLL to DPO's (recipe.sft_weight; RPO, Pang et al. 2024):
DPO alone lowers the chosen answer's likelihood too when chosen and rejected differ in a few tokens, and on the
bundled model that cost the recall and the JSON that SFT had taught. DPO always recomputes activations
(gradient checkpointing), whatever the recipe says for SFT: without it the owner's DPO child on the bundled model
peaked at 9.9 GB (5.9 GB with) and its steps were no faster (session 21). Events and the atomic folder are those of
training.sft.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.sft import (
    Progress,
    Recipe,
    TrainResult,
    child_main,
    load_model,
    reporting_callback,
    train_adapter,
    train_in_child,
    trainer_args,
)


def pair_row(prompt: list[dict[str, str]], chosen: str, rejected: str) -> dict[str, Any]:
    """A preference pair in TRL's conversational format."""
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def train_dpo(base_model: str | Path, sft_adapter: Path, rows: Sequence[dict[str, Any]], output: Path,
              recipe: Recipe, progress: Progress | None = None) -> TrainResult:
    """DPO on preference rows, starting from (and referenced to) the SFT adapter; `output` appears when done."""
    from dataclasses import replace

    return train_adapter(base_model, rows, output, replace(recipe, init_adapter=str(sft_adapter)), progress,
                         module="training.dpo")


def run(base: Path, data: Path, output: Path, recipe: Recipe) -> None:
    """DPO on preference rows, the SFT adapter (recipe.init_adapter) trainable and its own reference."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    def make_trainer(rows: list[dict[str, Any]], building: Path, losses: list[float]) -> DPOTrainer:
        return DPOTrainer(
            model=load_model(base, recipe),
            args=DPOConfig(**trainer_args(recipe, building) | {"gradient_checkpointing": True}, beta=recipe.beta,
                           **_loss(recipe.sft_weight)),
            train_dataset=Dataset.from_list(rows), processing_class=AutoTokenizer.from_pretrained(base),
            callbacks=[reporting_callback(losses, recipe.budget_seconds)],
        )

    train_in_child(base, data, output, recipe, make_trainer)


def _loss(sft_weight: float) -> dict[str, Any]:
    """DPO's sigmoid loss, plus the chosen answers' NLL at `sft_weight` when it is above zero."""
    if sft_weight <= 0:
        return {"loss_type": ["sigmoid"]}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, sft_weight]}


def main(argv: Sequence[str] | None = None) -> None:
    child_main("DPO of one adapter (run by the twin in a child process).",
               "JSONL rows with prompt, chosen and rejected", run, argv)


if __name__ == "__main__":
    main()
