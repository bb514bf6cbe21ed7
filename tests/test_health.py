"""`twin run` answers GET /healthz over real HTTP: every part up gives 200, a part down gives 503 and says what."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from support import free_port
from telegram_server import TOKEN, BotAPIServer

from twin.app import TwinApp, open_twin
from twin.health import UP, health_server, report, twin_probes
from twin.settings import Settings
from twin.testing import RecordingLLM

ROOT = Path(__file__).parents[1]


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_health(url: str, twin: subprocess.Popen, timeout: float = 120) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert twin.poll() is None, twin.stderr.read() if twin.stderr else "the twin exited"
        try:
            return get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twin.healthcheck"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_twin_run_answers_healthz_and_the_image_healthcheck_follows_it(bot_api: BotAPIServer, tmp_path: Path) -> None:
    port = free_port()
    llm = RecordingLLM().__enter__()
    env = os.environ | {"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": llm.url, "TWIN_TELEGRAM_TOKEN": TOKEN,
                        "TWIN_TELEGRAM_API_URL": bot_api.url, "TWIN_HEALTH_PORT": str(port)}
    twin = subprocess.Popen([sys.executable, "-m", "twin.cli", "run"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        status, body = wait_for_health(f"http://127.0.0.1:{port}/healthz", twin)
        assert status == 200, body
        assert body == {"healthy": True, "database": UP, "vector_store": UP, "model_server": UP, "telegram": UP}
        assert healthcheck(env).returncode == 0

        llm.__exit__(None, None, None)  # the model server goes away
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503 and body["healthy"] is False
        assert "unreachable" in body["model_server"] and body["database"] == UP and body["telegram"] == UP
        checked = healthcheck(env)
        assert checked.returncode == 1 and "model_server" in checked.stdout
    finally:
        twin.send_signal(signal.SIGTERM)
        try:
            twin.wait(timeout=30)
        finally:
            twin.kill()
            llm.__exit__(None, None, None)
    assert healthcheck(env).returncode == 1  # nothing answers: unhealthy, not a crash


def test_each_part_says_what_is_wrong_and_port_0_turns_it_off(tmp_path: Path, llm: RecordingLLM) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, llm_url=llm.url)
    closed = f"http://127.0.0.1:{free_port()}/v1"

    async def check(app: TwinApp) -> None:
        parts = await report(twin_probes(app, closed, {}))
        assert parts["database"] == parts["vector_store"] == UP
        assert f"the model server at {closed} is unreachable" in parts["model_server"]
        other = replace(app, settings=settings.model_copy(update={"llm_served_name": "other"}))
        assert (await report(twin_probes(other, llm.url, {})))["model_server"] == f"{llm.url} does not serve 'other'"
        async with health_server("127.0.0.1", 0, twin_probes(app, llm.url, {})) as url:
            assert url is None

    with open_twin(settings) as app:
        asyncio.run(check(app))
