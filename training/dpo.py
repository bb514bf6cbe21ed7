"""DPO continuing the SFT adapter, in a child process: `python -m training.dpo --base DIR --data FILE --output DIR`.

Rows are TRL's conversational preference format: prompt (chat messages), chosen and rejected (one assistant
message each). The SFT adapter is loaded trainable and is its own reference (TRL keeps a frozen copy of it, no
second model in memory). Events and the atomic folder are those of training.sft.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.sft import (
    TARGET_MODULES,
    Progress,
    Recipe,
    TrainResult,
    _emit,
    load_model,
    reporting_callback,
    save_atomically,
    train_adapter,
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
    """Train and write the adapter folder atomically (the child's body)."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    building = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    started = time.perf_counter()
    losses: list[float] = []
    try:
        _emit(event="start", step=0, total=recipe.max_steps)
        trainer = DPOTrainer(
            model=load_model(base, recipe),
            args=DPOConfig(**trainer_args(recipe, building), beta=recipe.beta),
            train_dataset=Dataset.from_list(rows),
            processing_class=AutoTokenizer.from_pretrained(base),
            callbacks=[reporting_callback(losses, recipe.budget_seconds)],
        )
        training_started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - training_started
        steps = trainer.state.global_step
        save_atomically(trainer, building, output)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    _emit(event="done", losses=losses, steps=steps, seconds=round(time.perf_counter() - started, 2),
          train_seconds=round(train_seconds, 2),
          recipe=asdict(recipe) | {"target_modules": TARGET_MODULES, "base": str(base)})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DPO of one adapter (run by the twin in a child process).")
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="JSONL rows with prompt, chosen and rejected")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--recipe", type=json.loads, required=True)
    args = parser.parse_args(argv)
    run(args.base, args.data, args.output, Recipe(**args.recipe))


if __name__ == "__main__":
    main()
