"""`twin train` and `twin adapters`: train the personal model (L2) and manage which adapter serves whom."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from storage.errors import StorageError
from twin.cli.common import AudienceOption

adapters_app = typer.Typer(help="The trained LoRA adapters: which serves whom, rollback, withdrawal.",
                           no_args_is_help=True)


@adapters_app.command("list")
def list_adapters(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every adapter, newest first: audience, status, samples, final loss."""
    from storage.training import TrainingStore
    from twin.app import open_twin
    from twin.cli.common import load_settings, out

    with open_twin(load_settings()) as app:
        rows = TrainingStore(app.store.engine).adapters(app.twin.id)
    data = [{"name": a.name, "audience": a.audience, "status": a.status, "samples": a.samples,
             "loss": (a.metrics.get("losses") or [None])[-1], "created_at": a.created_at.isoformat(),
             "path": a.path, "withdrawn_reason": a.withdrawn_reason, "stage": a.metrics.get("stage"),
             "evaluation": _own_figures(a.metrics), "gate": a.metrics.get("gate")} for a in rows]
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table("name", "audience", "status", "samples", "loss", "recall", "leaks", "voice NLL", "deployed: why",
                  "created")
    for row in data:
        loss = f"{row['loss']:.3f}" if row["loss"] is not None else "-"
        figures = row["evaluation"] or {}
        gate = row["gate"] or {}
        why = ("yes: " if gate.get("deploy") else "no: ") + gate.get("reason", "") if gate else \
            (row["withdrawn_reason"] or "-")
        table.add_row(row["name"], row["audience"], row["status"], str(row["samples"]), loss,
                      _figure(recall(figures)) if figures else "-", str(figures.get("leaks", "-")),
                      _figure(figures.get("voice_nll")), Text(why), row["created_at"][:19])
    out.print(table if data else "No adapters yet: `twin train` trains one.")


def recall(figures: dict) -> float | None:
    from training.evaluation import recall as mean_recall

    return mean_recall(figures)


def _own_figures(metrics: dict) -> dict | None:
    """The adapter's own row of its evaluation (the stage it was built from)."""
    from training.evaluation import candidate_column

    models = (metrics.get("evaluation") or {}).get("models") or {}
    return models.get(candidate_column(metrics.get("stage", "sft")))


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@adapters_app.command("rollback")
def rollback(audience: Annotated[AudienceOption, typer.Argument(help="owner, contact or stranger")]) -> None:
    """Stop the adapter serving AUDIENCE; the clean one before it (else the base model) serves again."""
    from storage.training import TrainingStore
    from twin.app import open_twin
    from twin.cli.common import fail, load_settings, out
    from twin.l2 import deploy_to

    with open_twin(load_settings()) as app:
        training = TrainingStore(app.store.engine)
        try:
            stopped, now = training.rollback(app.twin.id, audience.value)
        except StorageError as error:
            fail(str(error))
        if now is not None:
            try:
                deploy_to(app.settings)(training.get(app.twin.id, now))
            except Exception as error:  # noqa: BLE001 - said, not hidden: it is loaded at the next start
                out.print(f"note: loading {now} into the model server failed: {error}", markup=False)
    out.print(f"{stopped} retired; {audience.value} is now answered by {now or 'the base model'}.")


@adapters_app.command("withdraw")
def withdraw(name: Annotated[str, typer.Argument(help="The adapter, e.g. owner-v2.")]) -> None:
    """Withdraw an adapter for good: it stops serving, its files are deleted, the next clean one takes over."""
    import shutil
    from pathlib import Path

    from storage.training import WITHDRAWN, TrainingStore
    from twin.app import open_twin
    from twin.cli.common import fail, load_settings, out
    from twin.l2 import unload

    with open_twin(load_settings()) as app:
        training = TrainingStore(app.store.engine)
        adapter = training.get(app.twin.id, name)
        if adapter is None:
            fail(f"no adapter named {name}")
        if adapter.status == WITHDRAWN:
            out.print(f"{name} was already withdrawn.")
            return
        now = training.withdraw(app.twin.id, [name], "withdrawn by the owner")
        shutil.rmtree(Path(adapter.path), ignore_errors=True)
        unload(app.settings, [name])
    serving = now.get(adapter.audience, "unchanged") if adapter.status == "serving" else "unchanged"
    after = f"; {adapter.audience} is now answered by {serving or 'the base model'}" if serving != "unchanged" else ""
    out.print(f"{name} withdrawn and deleted{after}.")


def register_train_commands(app: typer.Typer) -> None:
    """`twin train`, `twin eval` and `twin adapters ...` on the main app."""
    from twin.cli.loop import evaluate, train

    app.command()(train)
    app.command("eval")(evaluate)
    app.add_typer(adapters_app, name="adapters")
