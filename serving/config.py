"""What the serving floor reads of the twin's settings, as a protocol: `twin.settings.Settings` satisfies it,
and serving never imports the composition root."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import SecretStr


class ServingSettings(Protocol):
    """The settings the vLLM process manager and the bundled model need."""

    llm_model: str
    llm_url: str | None
    llm_api_key: SecretStr | None
    llm_host: str
    llm_port: int
    llm_served_name: str
    llm_max_lora_rank: int
    llm_max_loras: int
    llm_max_model_len: int
    llm_kv_cache_gb: int
    llm_start_timeout: float
    cache_dir: Path
    run_dir: Path
    logs_dir: Path
