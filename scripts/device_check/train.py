"""On the device: the owner's loop children (SFT, DPO, weights-mode answers) on the captured data, per config.
Writes OUT/results.json after each config (answers, timings, losses). `python .gpu/train.py BASE_DIR`."""

import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from training.dpo import train_dpo
from training.sft import Recipe, run_events, train_adapter

BASE, OUT, W = sys.argv[1], Path(os.environ.get("OUT", "/tmp/out")), Path(os.environ.get("W", "/tmp/tw"))
TINY = os.environ.get("TINY") == "1"  # a dry run on the CPU: two steps, eight probes
CONFIGS = [("cpu-recipe", "data_cpu", {}), ("gpu-recipe", "data_gpu", {}),
           ("cpu-recipe-8-epochs", "data_cpu", {"epochs": 8})]  # (name, captured data, recipe fields changed)
only = os.environ.get("ONLY")
results = {"configs": {}}


def steps(n: int, epochs: float, batch: int) -> int:
    # as training.stages._steps: that module (and the recipe's pydantic) is not importable on the bare device image
    return max(1, math.ceil(epochs * n / batch))


for name, folder, override in CONFIGS:
    if only and name not in only.split(","):
        continue
    data = Path(".gpu") / folder
    meta = json.loads((data / "recipe.json").read_text()) | override
    sft_rows = [json.loads(x) for x in (data / "sft.jsonl").read_text().splitlines()]
    pairs = [json.loads(x) for x in (data / "pairs.jsonl").read_text().splitlines()]
    job = json.loads((data / "eval.json").read_text())
    if TINY:
        job["probes"] = job["probes"][:8]
    sft_recipe = Recipe(max_steps=2 if TINY else steps(len(sft_rows), meta["epochs"], meta["batch_size"]),
                        max_length=meta["max_length"], r=meta["rank"], lora_alpha=meta["alpha"],
                        learning_rate=meta["sft_learning_rate"], batch_size=meta["batch_size"], seed=meta["seed"],
                        bf16=meta["bf16"], gradient_checkpointing=meta["gradient_checkpointing"])
    row = results["configs"][name] = {"recipe": meta, "sft_rows": len(sft_rows), "pairs": len(pairs)}
    began = time.perf_counter()
    sft = train_adapter(BASE, sft_rows, W / f"{name}.sft", sft_recipe)
    row["sft"] = {"steps": sft.steps, "seconds": sft.seconds, "train_seconds": sft.train_seconds,
                  "first_loss": sft.losses[:1], "last_losses": sft.losses[-3:]}
    dpo_recipe = replace(sft_recipe, max_steps=2 if TINY else steps(len(pairs), 1, meta["batch_size"]),
                         learning_rate=meta["dpo_learning_rate"], beta=meta["dpo_beta"],
                         sft_weight=meta["dpo_sft_weight"])
    dpo = train_dpo(BASE, W / f"{name}.sft", pairs, W / f"{name}.dpo", dpo_recipe)
    row["dpo"] = {"steps": dpo.steps, "seconds": dpo.seconds, "train_seconds": dpo.train_seconds,
                  "first_loss": dpo.losses[:1], "last_losses": dpo.losses[-3:]}
    job |= {"base": BASE, "bf16": meta["bf16"], "adapters": [{"name": "sft", "path": str(W / f"{name}.sft")},
                                                             {"name": "sft+dpo", "path": str(W / f"{name}.dpo")}]}
    (W / f"{name}.job.json").write_text(json.dumps(job))
    done = run_events([sys.executable, "-m", "training.generate", "--job", str(W / f"{name}.job.json")], None, 900)
    row["eval_seconds"] = done["seconds"]
    row["results"] = done["results"]
    row["loop_seconds"] = round(time.perf_counter() - began, 1)
    (OUT / "results.json").write_text(json.dumps(results))
    print(name, "done in", row["loop_seconds"], "s; sft", row["sft"]["train_seconds"], "s for", sft.steps, "steps",
          flush=True)
