"""`twin bench training`: the whole loop on a synthetic owner shipped in the repository (bench/data), on the bundled
model, through the same entry point `twin train` uses. Prints and records what the weights know: recall under
held-out phrasings (topic named / not named) for the owner adapter and the public (stranger) adapter, the
held-out-fact control, the leak rate of private facts through the public adapter, critique and enhancement,
wall time and peak memory per stage."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.scale import record_result
from storage.models import Audience

DATA = Path(__file__).parent / "data" / "synthetic_owner.json"
SHOWN = ("recall_topic", "recall_indirect", "recall_others", "control", "leak", "leaks", "critique_accuracy",
         "enhance_coverage", "json_valid", "voice_nll")


def seed_owner(app: Any, data: dict[str, Any], folder: Path) -> dict[int, list[str]]:  # noqa: ANN401 - TwinApp
    """The owner's chats through the import path, the facts as `twin remember` stores them; returns the indirect
    (topic-free) questions per fact id."""
    from storage.facts import FactStore, NewFact
    from storage.importers import import_path
    from storage.models import FactOrigin, Visibility

    chats = folder / "chats.jsonl"
    chats.write_text("".join(json.dumps(row) + "\n" for row in data["chats"]), encoding="utf-8")
    import_path(app.store, app.twin.id, chats, owner_ids=(data["owner_id"],))
    facts = FactStore(app.store.engine)
    indirect: dict[int, list[str]] = {}
    for row in data["facts"]:
        fact = facts.add(app.twin.id, NewFact(row["text"], origin=FactOrigin.owner,
                                              visibility=Visibility(row["visibility"])))
        indirect[fact.id] = list(row.get("indirect", []))
    return indirect


def run_training_bench(*, budget_minutes: float, dpo: bool, as_json: bool, results_path: Path | None,
                       console: Console, out: Console,
                       audiences: tuple[str, ...] = (Audience.owner, Audience.stranger),
                       teacher: bool = False, report_dir: Path | None = None, missed: bool = False) -> dict[str, Any]:
    """Seed a fresh twin, train each audience's adapter (the owner's and the public one by default), print and
    record the figures; with `teacher`, the recipe's teacher and judge take part as in `twin train`; with
    `report_dir`, each evaluation is written there as `twin eval --report` writes it (one folder per audience and
    mode); with `missed`, the probes the chosen adapter got wrong in each mode are printed (the synthetic owner's
    facts: nothing private)."""
    from bench.retrieval import git_commit
    from training.evaluation import candidate_column
    from training.loop import retrain
    from training.report import write_report
    from twin.app import open_twin
    from twin.cli.loop import missed_table
    from twin.l2 import evaluate_adapter, retrain_deps
    from twin.settings import Settings

    measured = git_commit()  # the code that runs: the loop takes minutes, and HEAD may move meanwhile
    data = json.loads(DATA.read_text(encoding="utf-8"))
    report: dict[str, Any] = {"bench": "training", "facts": len(data["facts"]), "teacher": teacher, "audiences": {}}
    with tempfile.TemporaryDirectory(prefix="twin-bench-training-") as tmp:
        # the recipe of TWIN_TRAINING, as `twin train` would use it, with the bench's budget and DPO switch
        recipe = Settings().training.model_dump() | {"budget_minutes": budget_minutes, "dpo": dpo}
        settings = Settings(data_dir=Path(tmp) / "data", owner_name=data["owner"], owner_ids=[data["owner_id"]],
                            training=recipe)
        report["recipe"] = {k: v for k, v in recipe.items() if k not in ("teacher", "judge")}  # no endpoint keys
        with open_twin(settings) as app:
            indirect = seed_owner(app, data, Path(tmp))
            for audience in audiences:
                deps = retrain_deps(app, deploy=False, teacher=teacher)
                deps.extra_indirect = indirect
                started = time.perf_counter()
                outcome = retrain(deps, audience, deploy=False,
                                  stage=lambda text, a=audience, **_: console.print(f"{a}: {text}"))
                evaluations = {"weights": outcome.metrics.get("evaluation")}
                chosen = {"weights": (outcome.evaluation, candidate_column(outcome.metrics.get("stage", "sft")))}
                if outcome.adapter and outcome.status in ("ready", "kept", "serving"):
                    console.print(f"{audience}: evaluating with retrieval (serving prompts)")
                    serving = evaluate_adapter(app, outcome.adapter, audience, "serving")
                    evaluations["serving"] = serving.as_json()
                    chosen["serving"] = (serving, outcome.adapter)
                for mode, (evaluation, column) in chosen.items():
                    if missed and evaluation is not None:  # stderr: --json's stdout stays JSON
                        found = evaluation.misses(column)
                        console.print(missed_table(f"{audience} adapter, {mode} mode: {len(found)} probes missed",
                                                   found))
                for mode, evaluation in evaluations.items():
                    if report_dir is not None and evaluation:
                        write_report(evaluation, report_dir / f"{audience}-{mode}")
                report["audiences"][audience] = {
                    "with_retrieval": (evaluations.get("serving") or {}).get("models", {}),
                    "status": outcome.status, "message": outcome.message,
                    "wall_seconds": round(time.perf_counter() - started, 1),  # the loop, then serving mode
                    "loop_seconds": outcome.metrics.get("wall_seconds"),  # what `twin train` takes: the loop alone
                    "models": (outcome.metrics.get("evaluation") or {}).get("models", {}),
                    "timings": outcome.metrics.get("timings", {}), "report": outcome.metrics.get("report", {}),
                    "training": {k: v for k, v in (outcome.metrics.get("training") or {}).items() if k != "recipe"},
                }
    if results_path is not None:
        record_result(report, results_path, commit=measured)
    if as_json:
        out.print_json(json.dumps(report))
    else:
        for audience, row in report["audiences"].items():
            out.print(_table(f"{audience} adapter", row["models"], row["message"]))
            if row["with_retrieval"]:
                out.print(_table(f"{audience}, with retrieval", row["with_retrieval"]))
            out.print(f"the loop {row['loop_seconds']} s, with the serving-mode evaluation {row['wall_seconds']} s; "
                      f"per stage: {row['timings']}")
    return report


def _table(title: str, models: dict[str, dict[str, Any]], caption: str | None = None) -> Table:
    table = Table(title, *models, title=caption)
    for figure in SHOWN:
        cells = [m.get(figure) for m in models.values()]
        if any(c is not None for c in cells):
            table.add_row(figure, *("-" if c is None else f"{c:.2f}" if isinstance(c, float) else str(c)
                                    for c in cells))
    return table
