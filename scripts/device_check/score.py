"""Score a device run's answers here with the loop's own scorer (training.evaluation.score):
`python scripts/device_check/score.py RESULTS.json [SUMMARY.json]` (the captured probes.pkl under .gpu/)."""

import json
import pickle
import sys
from pathlib import Path

from training.evaluation import recall, score

results = json.loads(Path(sys.argv[1]).read_text())["configs"]
shown = ("recall_topic", "recall_indirect", "control", "critique_accuracy", "enhance_coverage", "json_valid",
         "voice_nll")
summary = {}
for name, row in results.items():
    meta = pickle.loads(Path(f".gpu/{'data_gpu' if 'gpu-recipe' in name else 'data_cpu'}/probes.pkl").read_bytes())
    print(f"== {name}: sft {row['sft']['steps']} steps in {row['sft']['train_seconds']} s, dpo {row['dpo']['steps']} "
          f"in {row['dpo']['train_seconds']} s, eval {row['eval_seconds']} s, loop {row['loop_seconds']} s; "
          f"sft loss {row['sft']['first_loss']} -> {row['sft']['last_losses']}")
    summary[name] = {k: row[k] for k in ("sft", "dpo", "eval_seconds", "loop_seconds", "sft_rows", "pairs")}
    summary[name]["models"] = {}
    for model, out in row["results"].items():
        probes = meta["probes"][:len(out["answers"])]
        figures = score(probes, out["answers"], meta["private"], out["voice_nll"], meta["voice_n"])
        figures["recall"] = recall(figures)
        summary[name]["models"][model] = figures
        print(f"  {model:8s}", {k: figures.get(k) for k in shown})
if len(sys.argv) > 2:
    Path(sys.argv[2]).write_text(json.dumps(summary, indent=1))
