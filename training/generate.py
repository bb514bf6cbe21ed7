"""Weights-mode evaluation, in a child process: `python -m training.generate --job FILE`.

The job names the base model, the adapters to compare and the probes. The base model is loaded once; each
adapter is attached by name and switched to (the base answers with the adapters disabled). Answers are greedy and
batched (left padding); voice is the mean negative log-likelihood per token of the owner's held-out replies.
Prints one JSON line per model as it finishes ({"event": "step"}) and a "done" event with every answer. On a GPU
the model runs there (bf16 when the job says so, as the recipe trained it); else on the CPU in float32.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from training.sft import _emit

BATCH = 16


def _generate(model: Any, tokenizer: Any, probes: list[dict[str, Any]]) -> list[str]:  # noqa: ANN401
    """Greedy answers, batched among probes of the same answer length and similar prompt length (less padding)."""
    import torch

    texts = [tokenizer.apply_chat_template(p["prompt"], tokenize=False, add_generation_prompt=True) for p in probes]
    order = sorted(range(len(probes)), key=lambda i: (probes[i]["max_new_tokens"], len(texts[i])))
    answers: dict[int, str] = {}
    for start in range(0, len(order), BATCH):
        chunk = order[start:start + BATCH]
        batch = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max(probes[i]["max_new_tokens"] for i in chunk),
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
        for at, text in zip(chunk, tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:],
                                                          skip_special_tokens=True), strict=True):
            answers[at] = text.strip()
    return [answers[i] for i in range(len(probes))]


def _voice_nll(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> float | None:  # noqa: ANN401
    import torch

    if not rows:
        return None
    total, tokens = 0.0, 0
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        full = prompt + row["completion"] + tokenizer.eos_token
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :1024].to(model.device)
        labels = ids.clone()
        labels[:, :len(prompt_ids)] = -100
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss
        count = int((labels != -100).sum()) - 1
        if count > 0:
            total, tokens = total + float(loss) * count, tokens + count
    return round(total / tokens, 4) if tokens else None


def run(job: dict[str, Any]) -> None:
    """Answer every probe with every model; emit the answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(job["base"])
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if gpu and job.get("bf16") else torch.float32  # as the recipe trained it
    model = AutoModelForCausalLM.from_pretrained(job["base"], dtype=dtype).to("cuda" if gpu else "cpu")
    model.eval()
    adapters: list[dict[str, str]] = job["adapters"]
    if adapters:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapters[0]["path"], adapter_name=adapters[0]["name"])
        for adapter in adapters[1:]:
            model.load_adapter(adapter["path"], adapter_name=adapter["name"])
    results: dict[str, Any] = {}
    names = ["base"] + [adapter["name"] for adapter in adapters]
    for at, name in enumerate(names):
        if name != "base":
            model.set_adapter(name)
        context = model.disable_adapter() if name == "base" and adapters else nullcontext()
        with context:
            results[name] = {"answers": _generate(model, tokenizer, job["probes"]),
                             "voice_nll": _voice_nll(model, tokenizer, job.get("voice", []))}
        _emit(event="step", step=at + 1, total=len(names), loss=None)
    _emit(event="done", results=results, seconds=round(time.perf_counter() - started, 2))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Weights-mode answers of base and adapters (run by the twin).")
    parser.add_argument("--job", type=Path, required=True)
    args = parser.parse_args(argv)
    run(json.loads(args.job.read_text(encoding="utf-8")))


if __name__ == "__main__":
    main()
