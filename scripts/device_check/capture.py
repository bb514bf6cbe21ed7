"""Capture what one audience's loop would train and evaluate on (the bench's synthetic owner, TWIN_TRAINING's
recipe), for a device run of the same children: `python scripts/device_check/capture.py DIR [AUDIENCE]` writes
sft.jsonl, pairs.jsonl, eval.json (the generate job without base and adapters), recipe.json and probes.pkl."""

import json
import pickle
import sys
import tempfile
from pathlib import Path

import training.loop as loop
from training.dpo import pair_row
from training.evaluation import ANSWER_TOKENS, JSON_PROBES, JSON_TOKENS

OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)


class Captured(Exception):
    pass

def capture(run, base, sft_rows, pair_rows, probes, version, inputs, digest, deploy):  # noqa: ANN001, ANN201
    (OUT / "sft.jsonl").write_text("".join(json.dumps({"prompt": s.prompt, "completion": [
        {"role": "assistant", "content": s.completion}]}) + "\n" for s in sft_rows))
    (OUT / "pairs.jsonl").write_text("".join(json.dumps(pair_row(p.prompt, p.completion, p.meta["rejected"])) + "\n"
                                         for p in pair_rows))
    rows = [{"prompt": p.prompt, "max_new_tokens": JSON_TOKENS if p.task in JSON_PROBES else ANSWER_TOKENS}
            for p in probes]
    (OUT / "eval.json").write_text(json.dumps({"voice": list(inputs["voice"]), "probes": rows}))
    (OUT / "recipe.json").write_text(json.dumps(run.recipe.model_dump(mode="json", exclude={"teacher", "judge"})))
    (OUT / "probes.pkl").write_bytes(pickle.dumps({"probes": probes, "private": [c.key for c in inputs["hidden"]],
                                                   "voice_n": len(inputs["voice"]), "report": run.report}))
    raise Captured

loop._train_and_gate = capture  # everything up to training, then stop

from bench.training import DATA, seed_owner  # noqa: E402
from twin.app import open_twin  # noqa: E402
from twin.l2 import retrain_deps  # noqa: E402
from twin.settings import Settings  # noqa: E402

data = json.loads(DATA.read_text())
audience = sys.argv[2] if len(sys.argv) > 2 else "owner"
with tempfile.TemporaryDirectory() as tmp:
    settings = Settings(data_dir=Path(tmp) / "data", owner_name=data["owner"], owner_ids=[data["owner_id"]])
    with open_twin(settings) as app:
        indirect = seed_owner(app, data, Path(tmp))
        deps = retrain_deps(app, deploy=False, teacher=False)
        deps.extra_indirect = indirect
        try:
            loop.retrain(deps, audience, deploy=False)
        except Captured:
            lines = [len((OUT / f).read_text().splitlines()) for f in ("sft.jsonl", "pairs.jsonl")]
            print("captured", audience, lines[0], "sft rows", lines[1], "pairs")
