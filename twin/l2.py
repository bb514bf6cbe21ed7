"""Composition of L2 (the personal model): the registry, deploying to and unloading from the model server,
retrain requests and the runner the scheduler's retrain job calls. Nothing here imports torch: training runs in
a child process (training.sft)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from serving.endpoint import LLMServerError
from serving.files import file_lock
from serving.server import ManagedVLLM
from storage.state import TWIN_WIDE, StateStore
from storage.training import AUDIENCES, Adapter, TrainingStore
from storage.training_forgetting import TrainingForgetting
from training.loop import RetrainDeps, RetrainOutcome, retrain
from twin.app import TwinApp
from twin.settings import Settings

log = logging.getLogger(__name__)

# platform_state (twin-wide), two keys so that neither writer can overwrite the other's news: requests are
# written only by those asking (/retrain, a forget), progress only by the retrain job.
REQUEST_KEY = "retrain-request"  # {"requested_at", "reason", "audiences"}
RUN_KEY = "retrain-run"  # {"handled": the requested_at it took up, "last_run"}
ROUTINE_EVERY = timedelta(days=7)  # without a request, retrain (only if there is something new) weekly


def adapters_dir(settings: Settings) -> Path:
    """Where trained adapters live: <data_dir>/adapters/<name>."""
    return settings.data_dir / "adapters"


def deploy_to(settings: Settings) -> Callable[[Adapter], None]:
    """Load an adapter into the model server. The local vLLM when it is not running: nothing to do now, the
    serving adapters are loaded when it starts (`load_serving`). Raises when the server refuses it."""
    def deploy(adapter: Adapter) -> None:
        server = ManagedVLLM(settings)
        if not server.external and not server.status()["running"]:
            return
        server.load_adapter(adapter.name, adapter.path, replace=True)
    return deploy


def unload(settings: Settings, names: list[str]) -> None:
    """Unload adapters from the model server, where it has them (best effort: they no longer serve anyway)."""
    server = ManagedVLLM(settings)
    for name in names:
        try:
            server.unload_adapter(name)
        except LLMServerError as error:
            log.info("unloading %s: %s", name, error)


def load_serving(app: TwinApp) -> None:
    """At start: load every audience's serving adapter into the model server (best effort, logged)."""
    training = TrainingStore(app.store.engine)
    serving = [name for name in (training.serving(app.twin.id, a) for a in AUDIENCES) if name]
    if not serving:
        return
    server = ManagedVLLM(app.settings)
    loaded = {entry["name"] for entry in server.status()["adapters"]}
    for name in serving:
        adapter = training.get(app.twin.id, name)
        if adapter is None or name in loaded:
            continue
        try:
            server.load_adapter(name, adapter.path)
        except LLMServerError as error:
            log.warning("could not load the serving adapter %s: %s", name, error)


def retrain_deps(app: TwinApp, *, deploy: bool = True) -> RetrainDeps:
    """What `training.loop.retrain` needs for this twin."""
    from serving.bundled import resolve_base_model

    return RetrainDeps(
        twin_id=app.twin.id, owner_name=app.twin.display_name, training=TrainingStore(app.store.engine),
        adapters_dir=adapters_dir(app.settings), base_model=lambda: resolve_base_model(app.settings),
        deploy=deploy_to(app.settings) if deploy else None,
    )


# -- retrain requests: durable (another process may ask: `twin forget`), and immediate in this process -----


def request_retrain(engine: Engine, twin_id: int, reason: str, audiences: list[str] | None = None) -> None:
    """Record that a retrain is wanted (the running twin's retrain job picks it up) and, if this process runs
    the scheduler, make the job run now."""
    from twin.scheduler import run_retrain_now

    state = StateStore(engine)
    still_pending = pending_retrain(engine, twin_id) or {}
    wanted = sorted(set(still_pending.get("audiences") or []) | set(audiences or AUDIENCES))
    state.put(twin_id, TWIN_WIDE, REQUEST_KEY, {
        "requested_at": datetime.now(UTC).isoformat(), "reason": reason, "audiences": wanted,
    })
    run_retrain_now(twin_id)


def pending_retrain(engine: Engine, twin_id: int) -> dict | None:
    """The retrain request the job has not taken up yet, if any: {'requested_at', 'reason', 'audiences'}."""
    state = StateStore(engine)
    request = state.get(twin_id, TWIN_WIDE, REQUEST_KEY) or {}
    handled = (state.get(twin_id, TWIN_WIDE, RUN_KEY) or {}).get("handled")
    return request if request.get("requested_at") and request["requested_at"] != handled else None


def retrain_one_at_a_time(app: TwinApp, audience: str, *, deploy: bool = True, **options: object) -> RetrainOutcome:
    """`training.loop.retrain` under a lock on the data dir: the job and `twin train` (any process) never train
    at once, so two runs can neither pick the same adapter name nor share the CPU."""
    with file_lock(app.settings.run_dir / "retrain.lock"):
        return retrain(retrain_deps(app, deploy=deploy), audience, deploy=deploy, **options)  # type: ignore[arg-type]


def on_withdrawn(app: TwinApp) -> Callable[[list[str]], None]:
    """What the forget layer calls with the adapters it withdrew: unload them, schedule a retrain."""
    def withdrawn(names: list[str]) -> None:
        unload(app.settings, names)
        training = TrainingStore(app.store.engine)
        audiences = sorted({a.audience for name in names if (a := training.get(app.twin.id, name)) is not None})
        request_retrain(app.store.engine, app.twin.id, f"withdrew {', '.join(names)} (forgotten data)", audiences)
    return withdrawn


def training_forgetting(app: TwinApp) -> TrainingForgetting:
    """The forget layer for L2, wired to unload and retrain."""
    return TrainingForgetting(app.store.engine, on_withdrawn(app))


def retrain_runner(app: TwinApp) -> Callable[[], Awaitable[list[RetrainOutcome]]]:
    """What the scheduler's retrain job runs: a pending request's audiences (always), or a weekly routine run
    of every audience that has something new; training is in a child process, off the event loop."""
    engine, twin_id = app.store.engine, app.twin.id

    def due() -> tuple[list[str], bool]:
        state = StateStore(engine)
        run = state.get(twin_id, TWIN_WIDE, RUN_KEY) or {}
        now = datetime.now(UTC).isoformat()
        request = pending_retrain(engine, twin_id)
        if request is not None:  # a request made after this read stays pending: `handled` names this one
            state.put(twin_id, TWIN_WIDE, RUN_KEY, run | {"handled": request["requested_at"], "last_run": now})
            return list(request.get("audiences") or AUDIENCES), False
        last = run.get("last_run")
        if last is not None and datetime.now(UTC) - datetime.fromisoformat(last) < ROUTINE_EVERY:
            return [], True
        state.put(twin_id, TWIN_WIDE, RUN_KEY, run | {"last_run": now})
        if last is None:  # the first start: the first routine run is a week away
            return [], True
        return list(AUDIENCES), True

    def run() -> list[RetrainOutcome]:
        audiences, only_if_new = due()
        outcomes = [retrain_one_at_a_time(app, audience, only_if_new=only_if_new) for audience in audiences]
        for outcome in outcomes:
            log.info("retrain %s: %s", outcome.audience, outcome.message)
        return outcomes

    async def runner() -> list[RetrainOutcome]:
        return await asyncio.to_thread(run)

    return runner
