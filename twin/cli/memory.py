"""The L1 memory commands: `twin facts`, `twin remember`, `twin profile` and `twin jobs`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from twin.cli.common import AudienceOption, VisibilityOption, out
from twin.cli.jobs import jobs

if TYPE_CHECKING:  # the stores load inside each command: `twin --help` starts fast
    from storage.models import Fact

facts_app = typer.Typer(help="Facts the twin keeps about its owner (L1).", invoke_without_command=True)
profile_app = typer.Typer(help="The owner's bio, status bio and topics (L1).", invoke_without_command=True)


def register_memory_commands(app: typer.Typer) -> None:
    """Add these commands to the `twin` command."""
    app.add_typer(facts_app, name="facts")
    app.add_typer(profile_app, name="profile")
    app.command()(remember)
    app.command()(jobs)


def fact_json(fact: Fact, sources: list[int]) -> dict:
    """A fact as `twin facts --json` prints it."""
    return {
        "id": fact.id, "text": fact.text, "visibility": str(fact.visibility), "set_by_owner": fact.visibility_by_owner,
        "confidence": fact.confidence, "origin": str(fact.origin), "valid_from": fact.valid_from.isoformat(),
        "valid_to": fact.valid_to.isoformat() if fact.valid_to else None, "superseded_by": fact.superseded_by,
        "sources": sources,
    }


@facts_app.callback()
def facts_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Superseded facts too (with their end of validity).")] = False,
) -> None:
    """List the current facts with visibility, confidence, validity and the L0 items they came from."""
    if ctx.invoked_subcommand is not None:
        return
    from storage.facts import FactStore
    from twin.app import open_twin
    from twin.cli.common import load_settings

    with open_twin(load_settings()) as app:
        store = FactStore(app.store.engine)
        facts = store.all(app.twin.id) if all_ else store.current(app.twin.id)
        sources = store.provenance(app.twin.id, [fact.id for fact in facts])
    if as_json:
        out.print_json(json.dumps([fact_json(fact, sources[fact.id]) for fact in facts]))
        return
    table = Table("id", "fact", "visibility", "conf.", "valid", "from items")
    for fact in facts:
        until = fact.valid_to.strftime("%Y-%m-%d") if fact.valid_to else "now"
        visibility = f"{fact.visibility}{' (set)' if fact.visibility_by_owner else ''}"
        table.add_row(str(fact.id), fact.text, visibility, f"{fact.confidence:.2f}",
                      f"{fact.valid_from:%Y-%m-%d} - {until}", ", ".join(map(str, sources[fact.id])) or fact.origin)
    out.print(table if facts else "No facts yet: `twin remember TEXT`, or `twin run` extracts them from memory.")


@facts_app.command("set-visibility")
def facts_set_visibility(
    fact_id: Annotated[int, typer.Argument(help="The fact's id (`twin facts`).")],
    level: Annotated[VisibilityOption, typer.Argument(help="private (owner only), contacts or public.")],
) -> None:
    """Decide who may see a fact; the twin's own inference will not change it afterwards."""
    from storage.errors import StorageError
    from storage.facts import FactStore
    from storage.models import Visibility
    from twin.app import open_twin
    from twin.cli.common import fail, load_settings

    with open_twin(load_settings()) as app:
        try:
            fact = FactStore(app.store.engine).set_visibility(app.twin.id, fact_id, Visibility(level.value))
        except StorageError as error:
            fail(str(error))
    out.print(f"fact {fact.id} is now {fact.visibility}")


def remember(
    text: Annotated[str, typer.Argument(help="The fact, as you would say it.")],
    visibility: Annotated[VisibilityOption, typer.Option(help="Who may see it.")] = VisibilityOption.private,
) -> None:
    """Remember a fact about the owner (private unless --visibility says otherwise)."""
    from storage.facts import FactStore, NewFact
    from storage.models import FactOrigin, Visibility
    from twin.app import open_twin
    from twin.cli.common import fail, load_settings

    if not text.strip():
        fail("the fact is empty", 2)
    with open_twin(load_settings()) as app:
        new = NewFact(text=text.strip(), origin=FactOrigin.owner, visibility=Visibility(visibility.value))
        fact = FactStore(app.store.engine).add(app.twin.id, new)
    out.print(f"remembered as fact {fact.id} ({fact.visibility})")


@profile_app.callback()
def profile_show(
    ctx: typer.Context,
    audience: Annotated[
        AudienceOption, typer.Option(help="Show the profile as this audience sees it.")
    ] = AudienceOption.owner,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the active profile: global bio, status bio, topics, and the facts count."""
    if ctx.invoked_subcommand is not None:
        return
    from core.profile import ProfileView
    from storage.facts import FactStore
    from storage.profiles import ProfileStore
    from twin.app import open_twin
    from twin.cli.common import load_settings

    with open_twin(load_settings()) as app:
        profiles = ProfileStore(app.store.engine)
        if as_json:
            active = profiles.active(app.twin.id, audience.value)
            out.print_json(json.dumps(active.model_dump(mode="json") if active else None))
            return
        view = ProfileView(app.twin.id, app.twin.display_name, FactStore(app.store.engine), profiles)
        out.print(view.describe(audience.value), markup=False, highlight=False)


@profile_app.command("rollback")
def profile_rollback(
    to: Annotated[int | None, typer.Option(help="The version to go back to (default: the one before).")] = None,
) -> None:
    """Go back to an earlier profile version, for every audience, when a regeneration went wrong."""
    from storage.errors import StorageError
    from storage.profiles import ProfileStore
    from twin.app import open_twin
    from twin.cli.common import fail, load_settings

    with open_twin(load_settings()) as app:
        try:
            version = ProfileStore(app.store.engine).rollback(app.twin.id, to)
        except StorageError as error:
            fail(str(error))
    out.print(f"profile version {version} is active")
