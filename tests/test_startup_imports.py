"""`twin --help` and the quick commands start fast: the heavy libraries load only in the commands that use them.

Timing is left to the measurements (a shared machine is too noisy for a threshold); what is checked is what
each command imports, in a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
MODEL_LIBRARIES = {"torch", "sentence_transformers", "transformers", "onnxruntime", "vllm", "trl", "peft"}
QUICK_COMMAND_SPARES = MODEL_LIBRARIES | {"alembic", "httpx", "tenacity", "numpy", "qdrant_client", "rich.progress",
                                          "apscheduler", "serving.server", "training.loop", "twin.l2"}
HELP_SPARES = QUICK_COMMAND_SPARES | {"sqlalchemy", "sqlmodel", "pydantic_settings", "storage.models", "twin.settings"}
PROBE = """
import atexit, json, runpy, sys
watched = json.loads(sys.argv[1])
atexit.register(lambda: print("LOADED " + json.dumps(sorted(m for m in watched if m in sys.modules))))
sys.argv = ["twin", *sys.argv[2:]]
runpy.run_module("twin.cli", run_name="__main__")
"""


def loaded(args: list[str], watched: set[str]) -> list[str]:
    """Which of the watched modules a real `twin ARGS` process had loaded when it exited."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(sorted(watched)), *args], env=environment,
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("LOADED "))
    return json.loads(line.removeprefix("LOADED "))


def test_help_loads_no_store_and_no_model() -> None:
    assert loaded(["--help"], HELP_SPARES) == []


@pytest.mark.parametrize("command", [["stats"], ["facts"], ["jobs"], ["people", "list"]])
def test_quick_commands_load_no_model_no_migrations_and_no_http(twin_env: Path, tmp_path: Path,
                                                                 command: list[str]) -> None:
    source = tmp_path / "notes.jsonl"
    source.write_text(json.dumps({"id": 1, "chat": "notes", "sender": "Ada", "text": "The tomatoes need water",
                                  "timestamp": "2024-03-01T09:00:00Z"}) + "\n")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    imported = subprocess.run([sys.executable, "-m", "twin.cli", "import", str(source)], env=environment,
                              capture_output=True, text=True, timeout=300, cwd=ROOT)  # migrates, embeds, indexes
    assert imported.returncode == 0, imported.stderr
    spares = QUICK_COMMAND_SPARES - ({"apscheduler"} if command == ["jobs"] else set())  # it unpickles the jobs
    assert loaded(command, spares) == []


def test_the_embedder_knows_its_size_before_loading_its_model(tmp_path: Path) -> None:
    from storage.embeddings import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(cache_dir=tmp_path)
    assert embedder.dim == 384 and embedder._encode is None  # read from the model folder: nothing loaded
    assert embedder.embed(["the tomatoes need water"]).shape == (1, 384)
    assert SentenceTransformerEmbedder(cache_dir=tmp_path).dim == 384  # from the ONNX export's record now
