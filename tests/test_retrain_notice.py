"""The owner hears how a /retrain ended, in the chat where they asked: the console of a real `twin run`, and a
Telegram chat through the Bot API test server."""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from telegram_server import ADA, BotAPIServer, private

from storage.retrain_requests import RetrainRequests
from twin.app import open_twin
from twin.platforms import serve
from twin.settings import Settings

ROOT = Path(__file__).parents[1]
FINISHED = "Retraining finished."


def _lines(stream) -> queue.Queue:  # noqa: ANN001 - a text pipe
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue, text: str, timeout: float) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            continue
        if text in seen[-1]:
            return seen
    raise AssertionError(f"no {text!r} within {timeout} s; the twin wrote: {''.join(seen)}")


def test_the_console_hears_the_outcome_of_its_retrain(twin_env: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TWIN_HEALTH_PORT": "0"}
    twin = subprocess.Popen([sys.executable, "-m", "twin.cli", "run"], env=environment, cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = _lines(twin.stdout)
        twin.stdin.write("/retrain\n")
        twin.stdin.flush()
        _wait_for(lines, "Retraining is queued", 120)
        answer = _wait_for(lines, FINISHED, 120)
        answer += _wait_for(lines, "stranger", 30)  # the notice goes on (lines wrapped at the terminal's width)
        words = " ".join("".join(answer).split())
        assert "I will tell you the outcome here" in words
        notice = words[words.index(FINISHED):]
        assert "owner" in notice and "stranger" in notice  # every audience's outcome, in words (too few samples)
    finally:
        twin.stdin.close()
        twin.wait(timeout=60)
    assert twin.returncode == 0


def test_a_telegram_chat_hears_the_outcome_of_its_retrain(twin_env: Path, bot_api: BotAPIServer,
                                                          monkeypatch) -> None:  # noqa: ANN001
    owner_chat = ADA["id"]
    monkeypatch.setenv("TWIN_TELEGRAM_TOKEN", bot_api.token)
    monkeypatch.setenv("TWIN_TELEGRAM_API_URL", bot_api.url)
    monkeypatch.setenv("TWIN_OWNER_IDS", f'["telegram:{owner_chat}"]')
    monkeypatch.setenv("TWIN_HEALTH_PORT", "0")

    async def go() -> list[str]:
        stop = asyncio.Event()
        running = asyncio.create_task(serve(Settings(), stop))
        try:
            bot_api.push(private("/retrain", ADA))
            for _ in range(600):
                texts = [m["text"] for m in bot_api.sent() if str(m["chat_id"]) == str(owner_chat)]
                if any(FINISHED in text for text in texts):
                    return texts
                await asyncio.sleep(0.2)
            raise AssertionError(f"no outcome sent; sent: {bot_api.sent()}")
        finally:
            stop.set()
            await running

    texts = asyncio.run(go())
    assert texts[0].startswith("Retraining is queued")
    assert FINISHED in texts[-1]
    with open_twin(Settings()) as app:  # the chat was recorded with the request the job took
        assert RetrainRequests(app.store.engine).asked_from(app.twin.id) == [("telegram", str(owner_chat))]


def test_the_chat_that_asked_hears_each_long_stage_as_it_starts(twin_env: Path, monkeypatch) -> None:  # noqa: ANN001
    """The stages the loop reports from its training thread reach the asking chat in order, before the outcome;
    the quick ones in between stay in the log."""
    import twin.l2 as l2
    from training.run import RetrainOutcome

    stages = [("synthesizing samples", False), ("selecting samples", False),
              ("SFT on 184 samples (92 steps at most)", True), ("DPO on 48 pairs (6 steps at most)", True),
              ("evaluating 3 models on 106 probes", True), ("judging", False)]

    def training(app, audience: str, *, stage, **options) -> RetrainOutcome:  # noqa: ANN001, ARG001
        for text, long in stages:  # what training.loop.retrain says, from the thread the job trains on
            stage(text, long=long)
        return RetrainOutcome(audience, "kept", f"{audience}: the serving adapter stays.")

    monkeypatch.setattr(l2, "retrain_one_at_a_time", training)
    sent: list[tuple[str, str, str]] = []

    async def notify(platform: str, chat_id: str, text: str) -> None:
        sent.append((platform, chat_id, text))

    with open_twin(Settings()) as app:
        RetrainRequests(app.store.engine).request(app.twin.id, "/retrain", ["owner"], reply_to=("telegram", "42"))
        asyncio.run(l2.retrain_runner(app, notify)())
    assert [chat for *chat, _ in sent] == [["telegram", "42"]] * 4
    texts = [text for *_, text in sent]
    assert texts[:3] == ["Retraining your own adapter: SFT on 184 samples (92 steps at most).",
                         "Retraining your own adapter: DPO on 48 pairs (6 steps at most).",
                         "Retraining your own adapter: evaluating 3 models on 106 probes."]
    assert texts[3].startswith(FINISHED) and "the serving adapter stays" in texts[3]
