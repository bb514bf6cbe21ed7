"""`twin forget`: show what matches, then remove it everywhere on confirmation."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer

from twin.cli.common import console, out


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date, e.g. 2024-03-01 or 2024-03-01T09:00:00Z",
                                 param_hint="--before") from error
    return moment if moment.tzinfo else moment.astimezone()


def forget(
    query: Annotated[str | None, typer.Argument(help="Forget every message or note containing these words.")] = None,
    message: Annotated[list[int] | None, typer.Option("--message", help="An L0 item id (repeatable).")] = None,
    chat: Annotated[str | None, typer.Option(help="Only (or all of) this chat.")] = None,
    before: Annotated[str | None, typer.Option(help="Only items before this ISO 8601 date.")] = None,
    fact: Annotated[list[int] | None, typer.Option("--fact", help="An L1 fact id (repeatable).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm without asking (for scripts).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was removed as JSON.")] = False,
) -> None:
    """Forget: rows in every table, vectors, training data, and the bytes on disk; a tombstone stops re-imports."""
    from storage.errors import StorageError
    from storage.forget import ForgetQuery
    from twin.app import open_twin
    from twin.cli.common import fail, load_settings
    from twin.conversation import build_forgetter

    try:
        selector = ForgetQuery(text=query, message_ids=tuple(message or ()), chat=chat, before=_when(before),
                               fact_ids=tuple(fact or ()))
    except StorageError as error:
        fail(str(error), code=2)
    if selector.describe() == "nothing":
        fail("say what to forget: words, --message, --chat, --before or --fact", code=2)
    with open_twin(load_settings()) as app:
        forgetter = build_forgetter(app)
        plan = forgetter.plan(app.twin.id, selector)
        console.print(plan.summary(), markup=False, highlight=False)
        if plan.empty:
            return
        if not yes:
            if not sys.stdin.isatty():
                fail("nothing was removed: add --yes to confirm without a terminal")
            typer.confirm("Forget all of this, everywhere?", abort=True, err=True)
        report = forgetter.forget(app.twin.id, selector)
    if as_json:
        out.print_json(json.dumps({"items": report.items, **report.layers}))
    else:
        out.print(report.summary())
