"""Commands over the stores: import, search, stats, reindex, run."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from twin.cli.common import AudienceOption, VisibilityOption, console, fail, load_settings, out, progress_bar

if TYPE_CHECKING:  # the stores load inside each command: `twin --help` and the quick commands start fast
    from storage.importers import ImportReport
    from storage.layers import LayeredSearcher, LayerHit
    from storage.models import Fact, L0Item
    from twin.settings import Settings


def register_store_commands(app: typer.Typer) -> None:
    """Add import, search, stats, reindex and run to the `twin` app."""
    app.command("import")(import_command)
    for command in (search, stats, reindex, run):
        app.command()(command)


class SearchLayer(StrEnum):
    l0 = "l0"
    l1 = "l1"
    all = "all"


class ImportFormat(StrEnum):
    auto = "auto"
    jsonl = "jsonl"
    telegram = "telegram"
    slack = "slack"
    chatgpt = "chatgpt"
    claude = "claude"
    notes = "notes"


def import_command(
    path: Annotated[
        Path,
        typer.Argument(help="A JSONL file, a Telegram, Slack, ChatGPT or Claude export (folder or zip), or notes."),
    ],
    format: Annotated[ImportFormat, typer.Option("--format", "-f", help="Input format.")] = ImportFormat.auto,
    visibility: Annotated[
        VisibilityOption | None,
        typer.Option(help="Visibility for every imported item (default: the file's, else private)."),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip malformed entries (reported) instead of importing nothing.")
    ] = False,
    me: Annotated[
        list[str] | None, typer.Option("--me", help="The owner's sender id in this file (repeatable), e.g. user111.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import history into raw memory (L0). Re-importing the same file adds nothing."""
    from storage.errors import ImportFormatError
    from storage.importers import import_path
    from twin.app import open_twin

    settings = load_settings()
    with open_twin(settings) as twin, progress_bar() as bar:
        task = bar.add_task(f"importing {path.name}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, advance=done, total=total)

        try:
            report = import_path(
                twin.store, twin.twin.id, path, format=format.value,
                visibility=visibility.value if visibility else None,
                default_visibility=settings.default_visibility, skip_invalid=skip_invalid, progress=advance,
                owner_ids=tuple(me or ()) + tuple(settings.owner_ids),
            )
        except ImportFormatError as error:
            fail(f"{error}\nNothing was imported from this file.")
        if report.reattributed:
            from core.l1 import read_again
            from storage.facts import FactStore

            read_again(FactStore(twin.store.engine), twin.twin.id, report.reattributed)
    for rejected in report.rejected[:20]:
        console.print(f"rejected: {rejected}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    _say_who_the_owner_is(report)
    summary = {"path": report.path, "format": report.format, "added": report.added,
               "duplicates": report.duplicates, "forgotten": report.forgotten, "rejected": len(report.rejected)}
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(f"{report.format}: {report.added} added, {report.duplicates} skipped as duplicates, "
                  f"{report.forgotten} skipped as forgotten, {len(report.rejected)} rejected")


def _say_who_the_owner_is(report: ImportReport) -> None:
    """After an import: the messages that became the owner's, or that the owner was not found, and the fix."""
    if report.reattributed:
        console.print(f"{len(report.reattributed)} messages already stored are now marked as yours.", soft_wrap=True)
    if report.owner_known or not report.senders:
        return
    platform, first_id, _ = report.senders[0]
    senders = ", ".join(f"{sender_id} ({name})" for _, sender_id, name in report.senders)
    console.print(
        f"warning: none of the senders in this file is known as you (the owner), so your messages are stored as "
        f"someone else's. Senders: {senders}. Tell the twin which one is you: `twin import {report.path} --me ID` "
        f"or `twin people link owner {platform}:ID` (e.g. {platform}:{first_id}); set TWIN_OWNER_IDS for later "
        "imports. Messages already stored become yours.", style="yellow", soft_wrap=True)


def _item_json(item: L0Item, score: float) -> dict:
    return {"layer": "l0", "id": item.id, "source": item.source, "source_id": item.source_id, "chat": item.chat,
            "chat_title": item.chat_title, "kind": str(item.kind), "sender": item.sender_name,
            "direction": item.direction, "time": item.occurred_at.isoformat(),
            "visibility": item.visibility, "score": round(score, 6), "text": item.text}


def _fact_json(fact: Fact, score: float, sources: tuple[int, ...]) -> dict:
    return {"layer": "l1", "id": fact.id, "score": round(score, 6), "text": fact.text, "visibility": fact.visibility,
            "confidence": fact.confidence, "origin": fact.origin, "valid_from": fact.valid_from.isoformat(),
            "valid_to": fact.valid_to.isoformat() if fact.valid_to else None, "sources": list(sources)}


def _hit_json(hit: LayerHit) -> dict:
    if hit.fact is not None:
        return _fact_json(hit.fact, hit.score, hit.sources)
    assert hit.item is not None
    return _item_json(hit.item, hit.score)


def _hit_row(hit: LayerHit) -> tuple[str, ...]:
    """A table row: an item's source, chat, sender and time; a fact's validity and the items it came from."""
    if hit.fact is not None:
        fact = hit.fact
        valid = f"{fact.valid_from:%Y-%m-%d} .. {f'{fact.valid_to:%Y-%m-%d}' if fact.valid_to else 'now'}"
        sources = "from " + ", ".join(map(str, hit.sources)) if hit.sources else fact.origin
        return ("L1", str(fact.id), "fact", sources, fact.visibility, valid, f"{hit.score:.4f}", fact.text[:200])
    item = hit.item
    assert item is not None
    return ("L0", str(item.id), item.source, chat_label(item), item.sender_name,
            item.occurred_at.strftime("%Y-%m-%d %H:%M"), f"{hit.score:.4f}", item.text[:200])


def search(
    query: Annotated[str | None, typer.Argument(help="What to look for.")] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="How many results.")] = 10,
    chat: Annotated[str | None, typer.Option(help="Only this chat (facts: those drawn from it).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only items from this time on (facts: valid then).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Only items up to this time (facts: valid then).")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or dense.")] = "hybrid",
    layer: Annotated[SearchLayer, typer.Option(help="l0 (raw memory), l1 (facts) or all.")] = SearchLayer.all,
    audience: Annotated[
        AudienceOption, typer.Option(help="Search only what this audience may see.")
    ] = AudienceOption.owner,
    batch: Annotated[
        Path | None, typer.Option(help="JSONL of {query, k?, chat?, asked_at?}; JSONL out, one line per query.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="The twin's own replies, expert relays and /commands too.")
    ] = False,
) -> None:
    """Search every memory layer by words and meaning: raw items (L0) and facts (L1), each hit saying its layer;
    what people said and wrote (--all: the twin's replies, expert relays and /commands too)."""
    from storage.facts import FactStore
    from storage.layers import LayeredSearcher
    from storage.search import SearchScope
    from twin.app import open_twin

    if (query is None) == (batch is None):
        fail("give a QUERY or --batch FILE (one of the two)", 2)
    with open_twin(load_settings()) as twin:
        searcher = LayeredSearcher(twin.searcher, FactStore(twin.store.engine))
        if batch is not None:
            _search_batch(twin.twin.id, searcher, batch, mode, layer.value, audience.value)
            return
        scope = SearchScope(twin.twin.id, audience=audience.value, chats=(chat,) if chat else None,
                            since=since, until=until, asked_at=datetime.now(UTC))
        try:
            found = searcher.search(query or "", scope, k=k if show_all else k * HIDDEN_HEADROOM, mode=mode,
                                    layer=layer.value)
        except ValueError as error:
            fail(str(error), 2)
        hits = (found if show_all else [h for h in found if h.item is None or said_by_people(h.item)])[:k]
    if as_json:
        out.print_json(json.dumps([_hit_json(hit) for hit in hits]))
        return
    table = Table("layer", "id", "source", "chat / from", "sender / visibility", "time / valid", "score", "text")
    for hit in hits:
        table.add_row(*(Text(cell) for cell in _hit_row(hit)))
    out.print(table)


HIDDEN_HEADROOM = 5  # rank this many times k, so that k remain once replies and commands are left out


def said_by_people(item: L0Item) -> bool:
    """What people said or wrote: not the twin's replies, not expert relays, not /commands."""
    from core.commands import parse_command
    from storage.models import ItemKind

    return item.kind in (ItemKind.message, ItemKind.document) and parse_command(item.text) is None


def chat_label(item: L0Item) -> str:
    """The chat's title with its id, or the id alone."""
    return f"{item.chat_title} ({item.chat})" if item.chat_title and item.chat_title != item.chat else item.chat


def _search_batch(
    twin_id: int, searcher: LayeredSearcher, path: Path, mode: str, layer: str, audience: str
) -> None:
    from storage.search import SearchScope

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"{path}: {error}", 2)
    requests, now = [], datetime.now(UTC)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("query"), str):
                raise ValueError("expected an object with a string 'query'")
            asked_at = datetime.fromisoformat(str(request["asked_at"])) if "asked_at" in request else now
        except ValueError as error:
            fail(f"{path}: line {number}: {error}", 2)
        requests.append((request, asked_at))
    for request, asked_at in requests:
        chat = request.get("chat")
        scope = SearchScope(twin_id, audience=audience, chats=(str(chat),) if chat else None, asked_at=asked_at)
        hits = searcher.search(request["query"], scope, k=int(request.get("k", 10)), mode=mode, layer=layer)
        sys.stdout.write(json.dumps({"query": request["query"], "results": [_hit_json(h) for h in hits]}) + "\n")


def stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Counts per layer and source, and store sizes."""
    from storage.facts import FactStore
    from twin.app import open_twin

    settings = load_settings()
    with open_twin(settings) as twin:
        by_source = twin.store.count_by_source(twin.twin.id)
        facts = FactStore(twin.store.engine)
        report = {
            "twin": twin.twin.handle,
            "l0": {"total": sum(by_source.values()), "by_source": by_source},
            "l1": {"current_facts": len(facts.current(twin.twin.id)), "all_facts": len(facts.all(twin.twin.id))},
            "vectors": {"points": twin.store.index.count(twin.twin.id), "bytes": twin.store.index.disk_bytes()},
            "database": {"url": _redact(settings.resolved_database_url), "bytes": _database_bytes(settings)},
            "data_dir": str(settings.data_dir),
        }
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = Table("layer", "source", "items")
    for source, count in sorted(by_source.items()):
        table.add_row("L0", source, str(count))
    table.add_row("L0", Text("total", style="bold"), str(report["l0"]["total"]))
    l1 = report["l1"]
    table.add_row("L1", "facts (current / with superseded)", f"{l1['current_facts']} / {l1['all_facts']}")
    out.print(table)
    out.print(f"vector index: {report['vectors']['points']} points, {report['vectors']['bytes'] / 1e6:.1f} MB")
    out.print(f"database: {report['database']['url']} ({report['database']['bytes'] / 1e6:.1f} MB)")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _database_bytes(settings: Settings) -> int:
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return 0
    files = (Path(url.database), Path(f"{url.database}-wal"), Path(f"{url.database}-shm"))
    return sum(p.stat().st_size for p in files if p.exists())


def reindex() -> None:
    """Rebuild the vector index from the database (the source of truth)."""
    from twin.app import open_twin
    from twin.startup import record_index_embedding

    with open_twin(load_settings(), rebuilding_index=True) as twin, progress_bar() as bar:
        task = bar.add_task("reindexing", total=twin.store.count())
        done = twin.store.reindex(progress=lambda n: bar.update(task, advance=n))
        record_index_embedding(twin, twin.store.embedder.dim)
    out.print(f"reindexed {done} items")


def run(
    twin: Annotated[str | None, typer.Option("--twin", help="Serve this named twin (same as `twin --twin NAME run`).")]
    = None,
) -> None:
    """Start the twin: with no platform configured, the console channel (type, or pipe lines in)."""
    from twin.cli import common
    from twin.cli.talk import run_console

    if twin is not None:
        common.selected_twin = twin

    run_console(load_settings())
