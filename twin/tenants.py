"""Many twins in one deployment: each named twin has a settings file, `<data dir>/twins/<name>.json`.

The file holds what belongs to one owner (PER_TWIN: the owner's name and accounts, the platform credentials, the
experts, the adapter overrides); everything else (database, vector store, model server, data dir) is shared and
comes from the environment as before. For a named twin the per-twin fields come from its file alone: a TWIN_*
variable for one of them (in the environment, .env or TWIN_CONFIG_FILE) is ignored, so nothing set for one twin, or
for the single-twin setup, can reach another twin through a shared environment."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from storage.errors import StorageError
from twin.settings import Settings

PER_TWIN = frozenset({  # who the owner is, and the accounts and secrets the twin acts with
    "owner_name", "owner_ids", "default_visibility", "llm_adapters", "experts",
    "telegram_token", "telegram_mode", "telegram_webhook_url", "telegram_webhook_secret",
    "slack_bot_token", "slack_signing_secret", "slack_app_token",
    "matrix_homeserver", "matrix_user_id", "matrix_password", "matrix_access_token", "matrix_device_id",
    "matrix_allowed_inviters",
})  # where a process listens (TWIN_SLACK_HOST/PORT, TWIN_TELEGRAM_WEBHOOK_LISTEN/PORT, health) stays per process
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def check_name(name: str) -> str:
    """A twin's name: 1-32 of a-z 0-9 _ -, starting with a letter or digit (it is part of file and adapter names)."""
    if not NAME.fullmatch(name):
        raise StorageError(f"twin name {name!r}: use 1-32 of a-z 0-9 _ -, starting with a letter or digit")
    return name


def twins_dir(settings: Settings) -> Path:
    """Where the twins' settings files (and their own folders, such as the Matrix keys) live."""
    return settings.data_dir / "twins"


def twin_file(settings: Settings, name: str) -> Path:
    """The settings file of the named twin."""
    return twins_dir(settings) / f"{check_name(name)}.json"


def read_twin_file(path: Path) -> dict[str, Any]:
    """The per-twin values in a twin's file; a shared setting or malformed JSON is refused in one line."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise StorageError(f"{path}: cannot be read ({error.strerror})") from error
    except json.JSONDecodeError as error:
        raise StorageError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from error
    if not isinstance(values, dict):
        raise StorageError(f"{path}: expected a JSON object of settings")
    shared = sorted(set(values) - PER_TWIN)
    if shared:
        raise StorageError(f"{path}: {', '.join(shared)} cannot be set per twin (shared by every twin, or unknown); "
                           "set shared settings in the environment")
    return values


def write_twin_file(path: Path, values: dict[str, Any]) -> None:
    """Write a twin's settings, readable by its owner only (it holds platform secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {key: value.get_secret_value() if isinstance(value, SecretStr) else value for key, value in values.items()}
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(plain, handle, indent=2, sort_keys=True)
        handle.write("\n")
    temporary.replace(path)


def settings_for_twin(base: Settings, name: str) -> Settings:
    """The settings of the named twin: the shared ones from `base`, the per-twin ones from its file (or defaults).
    Refuses a twin that has no file: create it with `twin twins create NAME`."""
    path = twin_file(base, name)
    if not path.exists():
        raise StorageError(f"no twin named {name!r} (no {path}): create it with `twin twins create {name}`")
    own = read_twin_file(path)
    shared = base.model_dump(exclude=set(PER_TWIN) | {"twin", "owner"}, exclude_unset=True)
    defaults = {field: Settings.model_fields[field].get_default(call_default_factory=True)
                for field in PER_TWIN - set(own)}
    try:
        return Settings(**shared, **defaults, **own, twin=name, owner=name)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors())
        raise StorageError(f"{path}: {problems}") from None
