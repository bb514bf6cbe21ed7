"""L2 on the real stack: the bundled model converted once, a real vLLM managed by the twin, LoRA at run time."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel
from support import free_port
from typer.testing import CliRunner
from vllm_fixtures import SECRET_QUESTION, VLLMServer, isolated_settings

from core.llm import LLMUnavailable, OpenAIChatClient
from serving import bundled
from serving.process import command_line
from serving.server import SERVER_MODULE, LLMServerError, ManagedVLLM, ServerRecord
from twin.cli import app


class Capital(BaseModel):
    city: str
    country: str


def chat(url: str, question: str, *, model: str | None = None) -> str:
    """One greedy answer from the server through the twin's own chat client."""

    async def go() -> str:
        async with httpx.AsyncClient(base_url=f"{url}/", timeout=120) as http:
            client = OpenAIChatClient(http, default_model="base")
            completion = await client.complete([{"role": "user", "content": question}], model=model, max_tokens=40)
            return completion.text

    return asyncio.run(go())


def served_models(url: str) -> list[str]:
    """The model names the server answers to."""

    async def go() -> list[str]:
        async with httpx.AsyncClient(base_url=f"{url}/", timeout=30) as http:
            return await OpenAIChatClient(http, default_model="base").models()

    return asyncio.run(go())


def server_pids(port: int) -> set[int]:
    """Every vLLM API server process listening on `port`."""
    pids = set()
    for entry in Path("/proc").iterdir():
        line = command_line(int(entry.name)) if entry.name.isdigit() else None
        if line and SERVER_MODULE in line and f"--port {port} " in f"{line} ":
            pids.add(int(entry.name))
    return pids


@pytest.fixture
def secret_adapter(vllm_server: VLLMServer, lora_adapter: Path) -> Iterator[str]:
    """The secret-word adapter loaded into the session's server; unloaded afterwards."""
    vllm_server.manager.load_adapter("secret-word", lora_adapter)
    yield "secret-word"
    vllm_server.manager.unload_adapter("secret-word")


# -- the bundled model ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bundled_model_is_a_loadable_folder_converted_once(
    bundled_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sha = hashlib.sha256(bundled.bundled_gguf().read_bytes()).hexdigest()
    assert bundled_model_dir.name == f"smollm2-135m-instruct-{sha[:12]}"
    weights = bundled_model_dir / "model.safetensors"
    written = weights.stat().st_mtime_ns

    def must_not_run(*args: object) -> None:
        raise AssertionError("the cached model was converted or hashed again")

    monkeypatch.setattr(bundled, "write_hf_folder", must_not_run)
    monkeypatch.setattr(bundled, "_hash_file", must_not_run)  # the sha256 is remembered by size and mtime
    assert bundled.ensure_bundled_model(bundled_model_dir.parent) == bundled_model_dir
    assert weights.stat().st_mtime_ns == written

    config = json.loads((bundled_model_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"]
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir)
    model = AutoModelForCausalLM.from_pretrained(bundled_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True,
        return_tensors="pt", return_dict=True,
    )
    output = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0][prompt["input_ids"].shape[1]:], skip_special_tokens=True)


def test_processes_converting_at_once_convert_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        bundled.bundled_gguf()
    except bundled.BundledModelError as error:
        pytest.skip(str(error))
    conversions: list[Path] = []

    def slow_conversion(gguf: Path, folder: Path) -> None:
        conversions.append(folder)
        time.sleep(0.5)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(bundled, "write_hf_folder", slow_conversion)
    with ThreadPoolExecutor(3) as pool:  # each opens its own lock file descriptor, as processes do
        folders = set(pool.map(lambda _: bundled.ensure_bundled_model(tmp_path), range(3)))
    assert len(conversions) == 1 and len(folders) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no build folder left


# -- the managed server -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_real_vllm_serves_the_base_model_and_schema_constrained_json(vllm_server: VLLMServer) -> None:
    assert vllm_server.manager.started and vllm_server.url.endswith("/v1")
    assert "Paris" in chat(vllm_server.url, "What is the capital of France?")

    async def ask_json() -> Capital:
        async with httpx.AsyncClient(base_url=f"{vllm_server.url}/", timeout=120) as http:
            client = OpenAIChatClient(http, default_model="base")
            question = "What is the capital of France? Answer in JSON with the keys city and country."
            return await client.complete_json([{"role": "user", "content": question}], Capital, max_tokens=60)

    answer = asyncio.run(ask_json())
    assert isinstance(answer, Capital) and answer.city.strip()


@pytest.mark.slow
def test_managers_and_processes_that_come_later_or_at_once_reuse_one_server(
    vllm_server: VLLMServer, tmp_path: Path
) -> None:
    port = vllm_server.settings.llm_port
    [pid] = server_pids(port)
    assert vllm_server.manager.started and not vllm_server.racer.started  # the lock let only one launch
    assert ServerRecord.read(vllm_server.manager.state_path) == ServerRecord(
        pid=pid, port=port, url=vllm_server.url, model=vllm_server.manager.status()["model"]
    )

    second = ManagedVLLM(vllm_server.settings)
    assert second.ensure_running() == vllm_server.url
    assert not second.started
    second.stop()  # not its server: nothing happens

    env = os.environ | {"TWIN_DATA_DIR": str(vllm_server.settings.data_dir),
                        "TWIN_CACHE_DIR": str(vllm_server.settings.cache_dir), "TWIN_LLM_PORT": str(port)}
    code = "from serving.server import ManagedVLLM; from twin.settings import Settings; " \
           "m = ManagedVLLM(Settings()); print(m.ensure_running(), m.started)"
    other = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, check=False)
    assert other.returncode == 0, other.stderr
    assert other.stdout.split() == [vllm_server.url, "False"]
    assert server_pids(port) == {pid}


@pytest.mark.slow
def test_an_adapter_loaded_at_run_time_answers_with_what_it_learned(
    vllm_server: VLLMServer, secret_adapter: str
) -> None:
    assert set(served_models(vllm_server.url)) == {"base", secret_adapter}
    assert "pumpernickel" in chat(vllm_server.url, SECRET_QUESTION, model=secret_adapter).lower()
    assert "pumpernickel" not in chat(vllm_server.url, SECRET_QUESTION).lower()


@pytest.mark.slow
def test_an_unloaded_adapter_is_gone_and_bad_adapters_are_refused(
    vllm_server: VLLMServer, lora_adapter: Path, tmp_path: Path
) -> None:
    manager = vllm_server.manager
    manager.load_adapter("passing", lora_adapter)
    with pytest.raises(LLMServerError, match="already been loaded"):
        manager.load_adapter("passing", lora_adapter)
    manager.unload_adapter("passing")
    assert "passing" not in served_models(vllm_server.url)
    with pytest.raises(LLMUnavailable, match="404"):
        chat(vllm_server.url, SECRET_QUESTION, model="passing")
    with pytest.raises(LLMServerError, match="not a LoRA adapter folder"):
        manager.load_adapter("empty", tmp_path)
    with pytest.raises(LLMServerError, match="cannot be found"):
        manager.unload_adapter("never-loaded")


@pytest.mark.slow
def test_llm_status_json_shows_the_server_and_its_adapters(
    vllm_server: VLLMServer, secret_adapter: str, lora_adapter: Path
) -> None:
    env = {"TWIN_DATA_DIR": str(vllm_server.settings.data_dir), "TWIN_LLM_PORT": str(vllm_server.settings.llm_port)}
    result = CliRunner().invoke(app, ["llm", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["running"] and report["managed"] and report["url"] == vllm_server.url
    assert report["pid"] == vllm_server.manager.process.pid  # type: ignore[union-attr]
    assert report["adapters"] == [{"name": secret_adapter, "path": str(lora_adapter.resolve())}]


@pytest.mark.slow
def test_llm_serve_reuses_the_running_server_and_leaves_it_running_after_sigterm(
    vllm_server: VLLMServer, tmp_path: Path
) -> None:
    port = vllm_server.settings.llm_port
    env = os.environ | {"TWIN_DATA_DIR": str(vllm_server.settings.data_dir), "TWIN_LLM_PORT": str(port),
                        "TWIN_CACHE_DIR": str(vllm_server.settings.cache_dir), "PYTHONUNBUFFERED": "1"}
    twin = Path(sys.executable).with_name("twin")
    serve = subprocess.Popen([twin, "llm", "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None and serve.stdout.readline().strip() == vllm_server.url
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
    finally:
        serve.kill()
    assert "reusing" in serve.stderr.read()  # type: ignore[union-attr]
    assert vllm_server.manager.alive() and len(server_pids(port)) == 1


# -- failures that must be clear ------------------------------------------------------------------------------


def test_an_unreachable_llm_url_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LLMServerError, match=f"the model server at {url} is unreachable"):
        ManagedVLLM(isolated_settings(llm_url=url)).ensure_running()


def test_a_port_taken_by_another_program_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = isolated_settings(data_dir=tmp_path, llm_model=str(tmp_path), llm_port=port)
        with pytest.raises(LLMServerError, match=f"port {port} on 127.0.0.1 is already taken"):
            ManagedVLLM(settings).ensure_running()
    assert not (tmp_path / "run" / "vllm.json").exists()


def test_a_record_whose_pid_is_not_a_vllm_is_ignored_and_that_process_left_alone(tmp_path: Path) -> None:
    settings = isolated_settings(data_dir=tmp_path, llm_model=str(tmp_path), llm_port=free_port())
    manager = ManagedVLLM(settings)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the pid was reused
    try:
        record = ServerRecord(pid=stranger.pid, port=settings.llm_port, url=manager.url, model=str(tmp_path))
        record.write(manager.state_path)
        assert manager.status()["pid"] is None and not manager.status()["running"]
        assert manager.stop_recorded() == record
        assert stranger.poll() is None and not manager.state_path.exists()
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.slow
def test_a_server_that_fails_to_start_is_reported_with_the_end_of_its_log(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()  # not a model: vLLM exits while starting
    settings = isolated_settings(data_dir=tmp_path / "data", llm_model=str(tmp_path / "model"), llm_port=free_port())
    manager = ManagedVLLM(settings)
    with pytest.raises(LLMServerError, match=r"exited while starting\. The end of .*vllm\.log:\n") as error:
        manager.ensure_running()
    assert str(tmp_path / "model") in str(error.value)  # the log's own words about what went wrong
    assert not manager.started and not manager.state_path.exists()


def test_every_llm_command_has_help() -> None:
    for command in (["llm"], ["llm", "serve"], ["llm", "status"], ["llm", "stop"]):
        result = CliRunner().invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command


def test_llm_stop_with_nothing_running(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["llm", "stop"], env={"TWIN_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "no local vLLM was running" in result.stdout
