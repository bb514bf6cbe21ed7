"""`twin train` and `twin eval`: the training loop and its evaluation, with progress per stage and a summary."""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from twin.cli.common import console, fail, load_settings, out, progress_bar

FIGURES = ("recall_topic", "recall_indirect", "recall_others", "control", "leaks", "critique_accuracy",
           "enhance_coverage", "json_valid", "voice_nll")


class TrainAudience(StrEnum):
    owner = "owner"
    contacts = "contacts"
    public = "public"
    all = "all"


AUDIENCES = {"owner": ["owner"], "contacts": ["contact"], "public": ["stranger"], "all": ["owner", "contact",
                                                                                           "stranger"]}


class Cot(StrEnum):
    none = "none"
    weak = "weak"
    multistep = "multistep"
    strong = "strong"


def evaluation_table(models: dict[str, dict[str, Any]]) -> Table:
    """Base, serving, SFT and SFT+DPO side by side, one row per figure."""
    table = Table("figure", *models)
    for name in FIGURES:
        if not any(name in figures for figures in models.values()):
            continue
        cells = [figures.get(name) for figures in models.values()]
        table.add_row(name, *("-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v) for v in cells))
    return table


def missed_table(title: str, missed: list[Any]) -> Table:
    """The probes a model got wrong (training.evaluation.Miss), as plain text: questions, facts and model answers
    are data, never markup."""
    table = Table("figure", "asked", "a right answer holds", "the model said", title=title)
    for miss in missed:
        table.add_row(miss.figure, Text(miss.question), Text(miss.expected), Text(miss.answer))
    if not missed:
        table.add_row("-", Text("no probe missed"), "", "")
    return table


def _summary(outcome_json: dict[str, Any]) -> None:
    report = outcome_json.get("report") or {}
    synthesis, selection = report.get("synthesis") or {}, report.get("selection") or {}
    if synthesis:
        out.print(f"synthesized: {synthesis.get('samples')} + {synthesis.get('pairs')} pairs from "
                  f"{synthesis.get('facts')} facts ({synthesis.get('facts_without_card')} without a question, "
                  f"{synthesis.get('control_facts')} held out as control)")
    for kind, counts in selection.items():
        out.print(f"selected ({kind}): kept {counts.get('kept')} of {counts.get('given')}, "
                  f"dropped {counts.get('dropped')}")
    if report.get("start"):
        out.print(f"start: {report['start']}")
    training = outcome_json.get("training") or {}
    for stage in ("sft", "dpo"):
        losses = training.get(stage) or []
        if losses:
            out.print(f"{stage}: {training.get(stage + '_steps')} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    evaluation = outcome_json.get("evaluation") or {}
    if evaluation.get("models"):
        out.print(evaluation_table(evaluation["models"]))
        out.print(f"judge metrics: {evaluation.get('judge')}; probe set {evaluation.get('probe_version')}")
    if outcome_json.get("choice"):
        out.print(f"candidate: {outcome_json['choice']}")


def train(
    audience: Annotated[TrainAudience, typer.Option(help="Whose adapter: trained only on what they may see.")]
    = TrainAudience.owner,
    cot: Annotated[Cot | None, typer.Option(help="Chain-of-thought style of all four tasks (else the recipe's, "
                                              "per task).")] = None,
    dpo: Annotated[bool, typer.Option("--dpo/--no-dpo", help="DPO after SFT (else the recipe's: on).")] = True,
    budget: Annotated[float | None, typer.Option("--budget", min=1, help="Minutes for the whole run (training "
                                                 "stops early to leave a fifth for the evaluation).")] = None,
    deploy: Annotated[bool, typer.Option("--deploy/--no-deploy", help="Serve it when it passes the gate.")] = True,
    teacher: Annotated[bool, typer.Option("--teacher/--no-teacher", help="Ask the teacher for paraphrases.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """The whole loop: synthesize, select, SFT then DPO, evaluate against what serves now, deploy if not worse."""
    from training.loop import retrain
    from training.recipe import TASKS, CotSettings
    from twin.app import open_twin
    from twin.l2 import retrain_deps, training_lock

    settings = load_settings()
    recipe = settings.training.model_copy(update={k: v for k, v in {
        "dpo": settings.training.dpo and dpo, "budget_minutes": budget,
        "cot": CotSettings(**dict.fromkeys(TASKS, cot.value)) if cot else None}.items() if v is not None})
    outcomes = []
    with open_twin(settings) as app, progress_bar() as bar:
        for name in AUDIENCES[audience.value]:
            task = bar.add_task(f"{name}: starting", total=None)

            def stage(text: str, task: int = task, name: str = name, *, long: bool = False) -> None:  # noqa: ARG001
                bar.update(task, description=f"{name}: {text}", completed=0, total=None)

            def advance(step: int, total: int, loss: float | None, task: int = task) -> None:
                bar.update(task, completed=step, total=total)

            with training_lock(app):
                outcomes.append(retrain(retrain_deps(app, deploy=deploy, teacher=teacher), name, deploy=deploy,
                                        progress=advance, stage=stage, recipe=recipe))
    rows = [{"audience": o.audience, "status": o.status, "adapter": o.adapter, "samples": o.samples,
             "message": o.message, **o.metrics} for o in outcomes]
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        for row in rows:
            _summary(row)
            out.print(Text(row["message"], style="bold"))
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)
    if any(o.status == "too_few" for o in outcomes) and not as_json:
        console.print("import more history (twin import), `twin remember` facts or talk to the twin, then train again")


class EvalMode(StrEnum):
    weights = "weights"
    serving = "serving"


def evaluate(
    adapter: Annotated[str, typer.Option(help="An adapter name, 'serving' or 'base'.")] = "serving",
    audience: Annotated[str, typer.Option(help="owner, contact or stranger (for 'serving').")] = "owner",
    mode: Annotated[EvalMode, typer.Option(help="weights: empty memory; serving: the full prompt.")] = EvalMode.weights,
    report: Annotated[Path | None, typer.Option(help="Write JSON, Markdown and a PNG chart into this folder.")] = None,
    missed: Annotated[bool, typer.Option("--missed", help=(
        "Also list each probe the adapter got wrong: the question, what a right answer holds, what it said. It "
        "shows the owner's facts, private ones included: printed here, never written to the report."))] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The evaluation alone: the frozen probe set answered by the base model and an adapter."""
    from twin.app import open_twin
    from twin.l2 import evaluate_adapter

    with open_twin(load_settings()) as app, progress_bar() as bar:
        task = bar.add_task("evaluating", total=None)
        try:
            result = evaluate_adapter(app, adapter, audience, mode.value,
                                      lambda step, total, _loss: bar.update(task, completed=step, total=total))
        except LookupError as error:
            fail(str(error))
    data = result.as_json()
    if report is not None:
        from training.report import write_report

        write_report(data, report)
        console.print(f"report written to {report}")
    listed = [name for name in data["models"] if name != "base"] or ["base"]  # the adapter's, or the base's alone
    wrong = {name: result.misses(name) for name in listed} if missed else {}
    if as_json:
        found = {name: [asdict(m) for m in found] for name, found in wrong.items()}
        out.print_json(json.dumps(data | ({"missed": found} if missed else {})))
    else:
        out.print(evaluation_table(data["models"]))
        out.print(f"mode {data['mode']}; judge metrics: {data['judge']}; probe set {data['probe_version']}")
        for name, found in wrong.items():
            out.print(missed_table(f"{name}: {len(found)} probes missed", found))
