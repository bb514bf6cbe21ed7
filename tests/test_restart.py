"""Kill the twin mid-way, start it again: every message is answered exactly once, none is lost."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from support import wait_until
from telegram_server import EVE, TOKEN, BotAPIServer, private

from twin.testing import RecordingLLM

QUESTIONS = [f"question number {n} about the garden" for n in range(1, 7)]



def start_twin(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "twin.cli", "run"], env=env, cwd=Path(__file__).parents[1],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def answered(bot_api: BotAPIServer) -> Counter:
    """How many replies each question got (the recording model quotes the question in its answer)."""
    counts: Counter = Counter()
    for call in bot_api.sent():
        asked = re.findall(r"user: (question number \d+ about the garden)\s*$", call["text"])
        counts.update(asked[-1:])
    return counts


def test_a_killed_twin_answers_every_message_once_after_a_restart(bot_api: BotAPIServer, tmp_path: Path) -> None:
    with RecordingLLM() as llm:
        llm.delay = 1.0  # every answer takes a second: the kill lands while one is being generated
        env = os.environ | {"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": llm.url, "TWIN_OWNER_NAME": "Ada",
                            "TWIN_TELEGRAM_TOKEN": TOKEN, "TWIN_TELEGRAM_API_URL": bot_api.url}
        twin = start_twin(env)
        try:
            wait_until(lambda: bool(bot_api.called("getUpdates")) or twin.poll() is not None, 120, "polling")
            for question in QUESTIONS:  # one chat: answered in order, one at a time
                bot_api.push(private(question, EVE))
            wait_until(lambda: len(llm.requests) >= 3, 60, "the third answer to be under way")
            twin.send_signal(signal.SIGKILL)  # no clean shutdown: a crash
            twin.wait(timeout=30)
        finally:
            twin.kill()
        before_restart = answered(bot_api)
        assert 2 <= sum(before_restart.values()) < len(QUESTIONS)  # the crash really interrupted the work

        twin = start_twin(env)
        try:
            wait_until(lambda: set(answered(bot_api)) == set(QUESTIONS) or twin.poll() is not None, 120,
                       "every question to be answered")
            time.sleep(2.0)  # time for a second, wrong answer to show up
            twin.send_signal(signal.SIGTERM)
            _, stderr = twin.communicate(timeout=30)
        finally:
            twin.kill()
    assert answered(bot_api) == Counter(dict.fromkeys(QUESTIONS, 1)), stderr[-3000:]
