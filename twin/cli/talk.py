"""The conversation commands: `twin run`, `twin chat`, `twin ask`, `twin people`."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from bots.console import CONSOLE, ConsoleSpeaker, converse, to_inbound
from core.messages import Reply
from twin.cli.common import console, out

if TYPE_CHECKING:
    from twin.app import TwinApp
    from twin.settings import Settings

people_app = typer.Typer(help="People the twin knows and how far each is trusted.", no_args_is_help=True)


def _speaker(settings: Settings, as_name: str | None) -> ConsoleSpeaker:
    if as_name is None:
        return ConsoleSpeaker.owner(settings.owner_name)
    try:
        return ConsoleSpeaker.named(as_name)
    except ValueError as error:
        console.print(f"error: {error}", style="red", markup=False)
        raise typer.Exit(2) from error


async def _talk(settings: Settings, speaker: ConsoleSpeaker, banner: bool, background: bool = False) -> None:
    from twin.app import open_twin
    from twin.conversation import model_server
    from twin.startup import check_after_open

    with open_twin(settings) as app:
        if background:  # `twin run`: refuses serving adapters trained on another base model
            check_after_open(app)
        with model_server(settings) as url:
            await _converse(app, url, speaker, banner, background)


async def _converse(app: TwinApp, url: str, speaker: ConsoleSpeaker, banner: bool, background: bool) -> None:
    from twin.cli.line_editor import history_path, line_reader
    from twin.cli.live_reply import answering_live
    from twin.conversation import open_pipeline
    from twin.health import serve_health
    from twin.l2 import retrain_runner
    from twin.scheduler import background_jobs

    interactive = sys.stdin.isatty()

    def write(text: str) -> None:
        out.print(Text.assemble(("twin> ", "bold"), text) if interactive else text)

    async def notify(platform: str, _chat_id: str, text: str) -> None:  # a retrain's outcome, asked for here
        if platform == CONSOLE:
            write(text)

    async with open_pipeline(app, url) as pipeline, AsyncExitStack() as jobs:
        if background:  # `twin run`: L1 extraction, profile refresh and index upkeep on this loop; /healthz
            await jobs.enter_async_context(background_jobs(app, pipeline.responder.llm,
                                                           retrainer=retrain_runner(app, notify)))
            await jobs.enter_async_context(serve_health(app, url, {}))
        if banner:
            total = app.store.count(app.twin.id)
            console.print(Text.assemble(("Twin", "bold"), f" of {app.twin.display_name}: {total} items in memory, "
                          f"model at {url}. You are {speaker.name}. /help for commands, Ctrl-D to leave."))
        handle = answering_live(pipeline.handle, out) if interactive else pipeline.handle  # piped: the reply only
        read = _read_piped
        if interactive:  # editing, history and Tab completion of /commands; plain input() without prompt_toolkit
            read = line_reader(history_path(app.settings.data_dir), pipeline.command_handlers) or input
        await converse(handle, speaker, read=read, write=write,
                       prompt=f"{speaker.name}> ", delivered=pipeline.delivered)


def _read_piped(_prompt: str) -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def run_console(settings: Settings) -> None:
    """The configured chat platforms; with none, the console channel as the owner (typed or piped in)."""
    from twin.platforms import configured_platforms, run_platforms
    from twin.startup import check_before_open

    check_before_open(settings)  # refuses in one line (StartupRefused): secrets, database, Qdrant
    if configured_platforms(settings):
        run_platforms(settings)
        return
    asyncio.run(_talk(settings, ConsoleSpeaker.owner(settings.owner_name), banner=True, background=True))


def chat(
    as_name: Annotated[str | None, typer.Option("--as", help="Talk as this person instead of the owner.")] = None,
) -> None:
    """Talk with the twin in the terminal: as the owner, or --as someone else talking about or to the owner."""
    from twin.cli.common import load_settings

    settings = load_settings()
    asyncio.run(_talk(settings, _speaker(settings, as_name), banner=True))


def ask(
    text: Annotated[str, typer.Argument(help="The message.")],
    as_name: Annotated[str | None, typer.Option("--as", help="Ask as this person instead of the owner.")] = None,
    expert: Annotated[str | None, typer.Option(help="Relay to this expert (see TWIN_EXPERTS).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the mode, model and memory ids as JSON.")] = False,
) -> None:
    """One message, one answer: for scripts."""
    from twin.cli.common import load_settings

    settings = load_settings()
    speaker = _speaker(settings, as_name)
    message = f"/ask {expert} {text}" if expert else text
    reply = asyncio.run(_ask_once(settings, speaker, message))
    if as_json:
        out.print_json(json.dumps(reply_json(reply), default=str))
    else:
        out.print(reply.text, markup=False, highlight=False)
    if reply.error:
        raise typer.Exit(1)


async def _ask_once(settings: Settings, speaker: ConsoleSpeaker, text: str) -> Reply:
    from twin.app import open_twin
    from twin.conversation import model_server, open_pipeline

    with open_twin(settings) as app, model_server(settings) as url:
        async with open_pipeline(app, url) as pipeline:
            message = to_inbound(speaker, text)
            reply = await pipeline.handle(message)
            if reply is not None:
                await pipeline.delivered(message)
    assert reply is not None  # a console message is always new
    return reply


def reply_json(reply: Reply) -> dict:
    """A reply as `twin ask --json` prints it."""
    return {
        "text": reply.text, "mode": str(reply.mode), "audience": reply.audience, "model": reply.model,
        "context_ids": list(reply.context_ids), "error": reply.error, **reply.details,
    }


@people_app.command("list")
def people_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Everyone the twin knows, with their trust and accounts."""
    from storage.people import PeopleDirectory
    from twin.app import open_twin
    from twin.cli.common import load_settings

    with open_twin(load_settings()) as app:
        people = PeopleDirectory(app.store.engine).all(app.twin.id)
    if as_json:
        rows = [{"id": p.person_id, "name": p.name, "trust": p.trust, "accounts": accounts} for p, accounts in people]
        out.print_json(json.dumps(rows))
        return
    table = Table("id", "name", "trust", "accounts")
    for person, accounts in people:
        table.add_row(str(person.person_id), person.name, person.trust, ", ".join(accounts))
    out.print(table)


@people_app.command("trust")
def people_trust(
    person: Annotated[str, typer.Argument(help="Id, name or account id of the person.")],
    level: Annotated[str, typer.Argument(help="contact or stranger.")],
) -> None:
    """Make someone a contact (sees contacts-level memory) or a stranger (public only)."""
    from storage.people import PeopleDirectory
    from twin.app import open_twin
    from twin.cli.common import load_settings

    with open_twin(load_settings()) as app:
        directory = PeopleDirectory(app.store.engine)
        changed = directory.set_trust(app.twin.id, _one_person(directory, app.twin.id, person), level)
    out.print(f"{changed.name} is now a {changed.trust}")


def _one_person(directory, twin_id: int, name: str) -> int:  # noqa: ANN001 - PeopleDirectory
    """The id of the one person the name matches; a clear error for none or several."""
    from twin.cli.common import fail

    found = directory.matches(twin_id, name)
    if not found:
        fail(f"no person matches {name!r}; `twin people list` shows who the twin knows")
    if len(found) > 1:
        names = ", ".join(f"{p.person_id} ({p.name})" for p in found)
        fail(f"{name!r} matches {len(found)} people: {names}; give the id or platform:account")
    return found[0].person_id


@people_app.command("merge")
def people_merge(
    keep: Annotated[str, typer.Argument(help="The person to keep: id, name or platform:account.")],
    other: Annotated[str, typer.Argument(help="The same person under another name; merged into KEEP.")],
) -> None:
    """One person seen on two platforms: their accounts and messages become one person's."""
    from storage.people import PeopleDirectory
    from twin.app import open_twin
    from twin.cli.common import load_settings

    with open_twin(load_settings()) as app:
        directory = PeopleDirectory(app.store.engine)
        kept = directory.merge(app.twin.id, _one_person(directory, app.twin.id, keep),
                               _one_person(directory, app.twin.id, other))
    out.print(f"merged into {kept.name} ({kept.trust})")


@people_app.command("link")
def people_link(
    person: Annotated[str, typer.Argument(help="Id, name or platform:account of the person ('owner' for you).")],
    account: Annotated[str, typer.Argument(help="The account to add, as platform:id, e.g. slack:U01ADA.")],
) -> None:
    """Link a platform account to a person (the owner links their own accounts this way)."""
    from storage.people import PeopleDirectory
    from twin.app import open_twin
    from twin.cli.common import fail, load_settings

    platform, _, external_id = account.partition(":")
    if not platform or not external_id:
        fail(f"{account!r} is not platform:id (e.g. telegram:12345)", code=2)
    with open_twin(load_settings()) as app:
        directory = PeopleDirectory(app.store.engine)
        if person == "owner":
            _link_owner_account(app, directory, platform, external_id)
            return
        linked = directory.link(app.twin.id, _one_person(directory, app.twin.id, person), platform, external_id)
    out.print(f"{account} now belongs to {linked.name}")


def _link_owner_account(app, directory, platform: str, external_id: str) -> None:  # noqa: ANN001 - TwinApp, People
    """The owner's account: theirs from now on, with every message already stored from it (read again by L1)."""
    from core.l1 import read_again
    from storage.facts import FactStore

    moved = directory.claim_for_owner(app.twin.id, platform, external_id)
    read_again(FactStore(app.store.engine), app.twin.id, moved)
    out.print(f"{platform}:{external_id} now belongs to {app.store.owner(app.twin.id).display_name}"
              + (f"; {len(moved)} messages already stored are now marked as yours" if moved else ""))
