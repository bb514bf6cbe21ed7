"""LoRA SFT with TRL and PEFT, in a child process: `python -m training.sft --base DIR --data FILE --output DIR`.

The child prints one JSON object per line on stdout ({"event": "start"|"step"|"done", ...}) for the parent to show
as a progress bar, and writes the adapter folder atomically (a hidden temporary folder beside it, then a rename),
so a crash leaves no half-written adapter under its name. The parent side (`train_adapter`) never imports torch:
the bot's start-up does not pay for it, and the child's memory is returned when it exits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Everything that shapes an adapter, recorded with it (metrics["recipe"]).
LORA_R = 8  # at most the server's --max-lora-rank (16)
LORA_ALPHA = 16
TARGET_MODULES = "all-linear"
LEARNING_RATE = 2e-3  # defaults are too small to see anything in a few steps on the CPU
BATCH_SIZE = 4
MAX_LENGTH = 256
EPOCHS = 2
MAX_STEPS_CAP = 60  # about 10 minutes at max_length 256 on a busy 2-core CPU (10.8 s/step measured on LoCoMo)
SEED = 0


class TrainingFailed(RuntimeError):
    """The child process failed; the message ends with its error output."""


@dataclass(frozen=True)
class Recipe:
    """The hyperparameters of one run."""

    max_steps: int  # optimizer steps (default_steps: two passes over the samples, capped for the CPU)
    max_length: int = MAX_LENGTH  # tokens per sample, prompt included; longer samples are cut
    r: int = LORA_R  # LoRA rank; vLLM loads adapters up to its --max-lora-rank (16)
    lora_alpha: int = LORA_ALPHA  # LoRA scaling numerator (the update is scaled by alpha / r)
    learning_rate: float = LEARNING_RATE  # AdamW; 2e-3 moves a 135M model in a few steps on the CPU
    batch_size: int = BATCH_SIZE  # samples per step
    seed: int = SEED  # shuffling and LoRA initialisation
    budget_seconds: float | None = None  # wall time for the training steps: stops early (and saves) past it
    init_adapter: str | None = None  # continue this adapter (same base and rank) instead of a fresh LoRA
    bf16: bool = False  # bfloat16 on a GPU; float32 on the CPU
    beta: float = 0.1  # DPO only: how far the policy may move from its reference (the SFT adapter)
    sft_weight: float = 1.0  # DPO only: weight of the chosen answers' NLL added to the DPO loss (0: DPO alone)
    gradient_checkpointing: bool = False  # SFT only (DPO always does): recompute activations, less memory, more time
    group_by_length: bool = True  # SFT only: batches of samples of about the same length (less padding)


def default_steps(samples: int, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE) -> int:
    """Steps for `epochs` passes over the samples, capped for the CPU."""
    return max(1, min(MAX_STEPS_CAP, math.ceil(epochs * samples / batch_size)))


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports."""

    losses: list[float]
    steps: int
    seconds: float  # in the child, loading the model included
    train_seconds: float  # the training steps alone
    recipe: dict[str, Any]

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / max(1, self.steps)


Progress = Callable[[int, int, float | None], None]  # (step, total steps, loss)


def train_adapter(
    base_model: str | Path, rows: Sequence[dict[str, Any]], output: Path, recipe: Recipe,
    progress: Progress | None = None, timeout: float = 6 * 3600, module: str = "training.sft",
) -> TrainResult:
    """Train an adapter on rows in a child process (`module`: training.sft on prompt/completion rows,
    training.dpo on prompt/chosen/rejected); the folder `output` appears when done."""
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.data.", dir=output.parent))  # deleted below: holds text
    try:
        data = work / "samples.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        command = [sys.executable, "-m", module, "--base", str(base_model), "--data", str(data),
                   "--output", str(output), "--recipe", json.dumps(asdict(recipe))]
        return run_child(command, progress, timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def child_env() -> dict[str, str]:
    """The environment of a training or evaluation child: offline, quiet, polite to other processes."""
    return os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false",
                         "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def run_child(command: list[str], progress: Progress | None, timeout: float) -> TrainResult:
    """Run a training child, relaying its progress events; its result, or TrainingFailed with its stderr."""
    done = run_events(command, progress, timeout)
    return TrainResult(losses=done["losses"], steps=done["steps"], seconds=done["seconds"],
                       train_seconds=done["train_seconds"], recipe=done["recipe"])


def run_events(command: list[str], progress: Progress | None, timeout: float) -> dict[str, Any]:
    """Run a child that prints JSON events on stdout; returns its "done" event."""
    env, cwd = child_env(), Path(__file__).resolve().parent.parent
    child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(child.stderr), daemon=True)  # never blocks the child
    reader.start()
    timer = threading.Timer(timeout, child.kill)
    timer.start()
    done: dict[str, Any] | None = None
    try:
        for line in child.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a library printing on stdout
            if event.get("event") in ("start", "step") and progress is not None:
                progress(event.get("step", 0), event["total"], event.get("loss"))
            elif event.get("event") == "done":
                done = event
        child.wait()
    finally:
        timer.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
        reader.join(timeout=5)
    if child.returncode != 0 or done is None:
        tail = "".join(errors)[-4000:]
        raise TrainingFailed(f"training exited with {child.returncode}:\n{tail}")
    return done


# -- the child ----------------------------------------------------------------------------------------------


def _emit(**event: Any) -> None:  # noqa: ANN401 - JSON values
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def reporting_callback(losses: list[float], budget_seconds: float | None) -> Any:  # noqa: ANN401 - a TrainerCallback
    """Relays each logged loss as a step event, and stops training (it is then saved) before a step that would end
    past the wall-time budget (judged by the step just taken: a DPO step on the CPU takes over a minute)."""
    from transformers import TrainerCallback

    started = step_began = time.perf_counter()

    class Report(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs) -> None:  # noqa: ANN001, ANN003
            nonlocal step_began
            step_began = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs) -> None:  # noqa: ANN001, ANN003
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                _emit(event="step", step=state.global_step, total=state.max_steps, loss=float(logs["loss"]))

        def on_step_end(self, args, state, control, **kwargs) -> None:  # noqa: ANN001, ANN003
            now = time.perf_counter()
            if budget_seconds is not None and (now - started) + (now - step_began) > budget_seconds:
                control.should_training_stop = True

    return Report()


def load_model(base: Path, recipe: Recipe) -> Any:  # noqa: ANN401 - a transformers or PEFT model
    """The base model, with the adapter to continue (trainable) when the recipe names one."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if recipe.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    if recipe.init_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, recipe.init_adapter, is_trainable=True)
    return model


def trainer_args(recipe: Recipe, folder: Path) -> dict[str, Any]:
    """What SFTConfig and DPOConfig share."""
    import torch

    return dict(
        output_dir=str(folder / "trainer"), use_cpu=not torch.cuda.is_available(), bf16=recipe.bf16,
        report_to="none", save_strategy="no", learning_rate=recipe.learning_rate, max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size, max_length=recipe.max_length, logging_steps=1,
        seed=recipe.seed, disable_tqdm=True, dataloader_num_workers=0,
        gradient_checkpointing=recipe.gradient_checkpointing,
    )


def save_atomically(trainer: Any, building: Path, output: Path) -> None:  # noqa: ANN401 - a TRL trainer
    """Write the adapter into `building`, then rename it to `output` (a crash leaves no half adapter)."""
    trainer.save_model(str(building))
    shutil.rmtree(building / "trainer", ignore_errors=True)
    shutil.rmtree(building / "ref", ignore_errors=True)  # DPO's frozen reference copy: not needed to serve
    shutil.rmtree(output, ignore_errors=True)
    os.rename(building, output)


MakeTrainer = Callable[[list[dict[str, Any]], Path, list[float]], Any]  # (rows, folder, losses) -> a TRL trainer


def train_in_child(base: Path, data: Path, output: Path, recipe: Recipe, make_trainer: MakeTrainer) -> None:
    """A child's body: read the rows, train, write the adapter folder atomically, emit start and done events."""
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    building = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    started = time.perf_counter()
    losses: list[float] = []
    try:
        _emit(event="start", step=0, total=recipe.max_steps)
        trainer = make_trainer(rows, building, losses)
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


def child_main(description: str, data_help: str, run: Callable[[Path, Path, Path, Recipe], None],
               argv: Sequence[str] | None = None) -> None:
    """The command line of a training child (`--base --data --output --recipe`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help=data_help)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--recipe", type=json.loads, required=True)
    args = parser.parse_args(argv)
    run(args.base, args.data, args.output, Recipe(**args.recipe))


def run(base: Path, data: Path, output: Path, recipe: Recipe) -> None:
    """LoRA SFT on prompt/completion rows (the loss is on the completion only), or continuing an adapter."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    def make_trainer(rows: list[dict[str, Any]], building: Path, losses: list[float]) -> SFTTrainer:
        fresh = recipe.init_adapter is None
        return SFTTrainer(
            model=load_model(base, recipe), args=SFTConfig(**trainer_args(recipe, building), train_sampling_strategy=(
                "group_by_length" if recipe.group_by_length else "random")),
            train_dataset=Dataset.from_list(rows), processing_class=AutoTokenizer.from_pretrained(base),
            peft_config=LoraConfig(r=recipe.r, lora_alpha=recipe.lora_alpha, target_modules=TARGET_MODULES,
                                   lora_dropout=0.0, task_type="CAUSAL_LM") if fresh else None,
            callbacks=[reporting_callback(losses, recipe.budget_seconds)],
        )

    train_in_child(base, data, output, recipe, make_trainer)


def main(argv: Sequence[str] | None = None) -> None:
    child_main("LoRA SFT of one adapter (run by the twin in a child process).",
               "JSONL rows with prompt and completion", run, argv)


if __name__ == "__main__":
    main()
