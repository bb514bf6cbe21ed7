"""The teacher and the judge the training loop asks, from the settings: the recipe's endpoints, else the local
base model when it runs, else none (templates alone, no judge). Each runs on an event loop of its own, called
from the retrain thread; either one failing leaves the loop going without it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from core.endpoints import ModelEndpoint
from core.llm import OpenAIChatClient
from serving.server import ManagedVLLM
from storage.training import StoredSample
from training.evaluation import JudgeRun
from training.run import Teach
from twin.app import TwinApp
from twin.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

Endpoint = tuple[str, str, str | None, str]  # url, model, api key, visibility


def _endpoint(settings: Settings, configured: ModelEndpoint | None) -> Endpoint | None:
    """A teacher's or judge's endpoint: the recipe's, else the local base model when it runs, else none."""
    if configured is not None:
        key = configured.api_key.get_secret_value() if configured.api_key else None
        return configured.url, configured.model, key, configured.visibility
    server = ManagedVLLM(settings)
    if server.external or server.status()["running"]:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return server.url, settings.llm_served_name, key, "private"  # the twin's own model may see everything
    return None


def _with_client(endpoint: Endpoint, work: Callable[[OpenAIChatClient, str, str], Awaitable[T]]) -> T:
    """Run `work(client, model, visibility)` on a loop of its own (this is called from the retrain thread)."""
    import httpx

    url, model, key, visibility = endpoint

    async def go() -> T:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(base_url=url.rstrip("/") + "/", headers=headers, timeout=120) as http:
            return await work(OpenAIChatClient(http, default_model=model, attempts=1), model, visibility)
    return asyncio.run(go())


def teacher_for(app: TwinApp) -> Teach | None:
    """Teacher paraphrases and reasoning; on any failure, templates alone (said in the log)."""
    from training.teacher import Teacher, teach

    endpoint = _endpoint(app.settings, app.settings.training.teacher)
    if endpoint is None:
        return None
    per_fact = app.settings.training.phrasings_per_fact

    def run(cards: list, style: str) -> tuple[dict, dict, dict]:
        async def work(client: OpenAIChatClient, model: str, visibility: str) -> tuple[dict, dict, dict]:
            return await teach(Teacher(client, model, visibility), cards, app.twin.display_name, per_fact, style)
        try:
            return _with_client(endpoint, work)
        except Exception as error:  # noqa: BLE001 - the teacher is optional
            log.warning("the teacher is unavailable (%s): templates alone", error)
            return {}, {}, {}
    return run


def judge_for(app: TwinApp) -> JudgeRun | None:
    """The judge: calibrated first; its four metrics only when it passes."""
    from training.judge import Judge

    endpoint = _endpoint(app.settings, app.settings.training.judge)
    if endpoint is None:
        return None

    def run(probes: Sequence[StoredSample], answers: dict[str, list[str]]) -> tuple[str, dict]:
        async def work(client: OpenAIChatClient, model: str, visibility: str) -> tuple[str, dict]:
            judge = Judge(client, model, visibility)
            ok, calibration = await judge.calibrate(probes)
            if not ok:
                return calibration, {}
            return calibration, {name: await judge.metrics(probes, given) for name, given in answers.items()}
        try:
            return _with_client(endpoint, work)
        except Exception as error:  # noqa: BLE001 - the judge is optional
            return f"n/a: the judge is unavailable ({error})", {}
    return run
