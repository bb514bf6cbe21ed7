"""Checks before `twin run` serves anyone, each refusing with one clear line: a configured platform without its
secret, an unreachable database, Qdrant server or model server, serving adapters trained on another base model
than the one served, and an index built with another embedding model than the configured one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.errors import StorageError
from twin.settings import Settings

if TYPE_CHECKING:
    from twin.app import TwinApp

CONNECT_TIMEOUT = 10  # seconds for a dependency to answer at start
EMBEDDING_KEY = "index-embedding"  # platform_state (twin-wide): the model and size the index was built with
# Per platform: the setting that turns it on, then the secrets it needs (any one of a group) and the settings
# that mean nothing without it.
PLATFORM_SETTINGS = {
    "telegram": ("telegram_token", (), ("telegram_webhook_url", "telegram_webhook_secret")),
    "slack": ("slack_bot_token", (("slack_signing_secret", "slack_app_token"),), ("slack_signing_secret",
                                                                                    "slack_app_token")),
    "matrix": ("matrix_homeserver", (("matrix_user_id",), ("matrix_password", "matrix_access_token")),
               ("matrix_user_id", "matrix_password", "matrix_access_token")),
}


class StartupRefused(StorageError):
    """The twin will not start: the message says what to fix, in one line."""


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    return f"TWIN_{field.upper()}"


def _value(settings: Settings, field: str) -> str | None:
    value = getattr(settings, field)
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def platform_problems(settings: Settings) -> list[str]:
    """What is missing for each platform the settings mention: an empty token, a secret without its platform."""
    problems = []
    for platform, (switch, needs, dependents) in PLATFORM_SETTINGS.items():
        on = _value(settings, switch)
        if on is None:
            stray = [env_name(f) for f in dependents if _value(settings, f)]
            if stray:
                problems.append(f"{', '.join(stray)} set but {env_name(switch)} is not: {platform} cannot run")
            continue
        if not on.strip():
            problems.append(f"{env_name(switch)} is empty: set it, or unset it to run without {platform}")
        for group in needs:
            if not any((_value(settings, f) or "").strip() for f in group):
                problems.append(f"{platform} needs {' or '.join(env_name(f) for f in group)} (missing or empty)")
    return problems


def check_platform_secrets(settings: Settings) -> None:
    """Refuse when a configured platform lacks a secret."""
    problems = platform_problems(settings)
    if problems:
        raise StartupRefused("; ".join(problems))


def redacted(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def check_database(settings: Settings) -> None:
    """Refuse when the configured database does not answer (SQLite always does)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        return
    engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as error:
        raise StartupRefused(f"the database at {redacted(url)} is unreachable: {_first_line(error)}") from error
    finally:
        engine.dispose()


def check_qdrant(settings: Settings) -> None:
    """Refuse when the configured Qdrant server does not answer."""
    if not settings.qdrant_url:
        return
    from qdrant_client import QdrantClient

    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    client = QdrantClient(url=settings.qdrant_url, api_key=key, timeout=CONNECT_TIMEOUT)
    try:
        client.get_collections()
    except Exception as error:  # noqa: BLE001 - qdrant-client raises httpx, grpc and its own errors alike
        raise StartupRefused(f"the Qdrant server at {settings.qdrant_url} is unreachable: {_first_line(error)}") \
            from error
    finally:
        client.close()


def served_base(settings: Settings) -> str | None:
    """The base model the configured model server says it serves (vLLM's `root`), when it says."""
    from serving.endpoint import LLMServerError, VLLMEndpoint

    if not settings.llm_url:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    try:
        models = VLLMEndpoint(settings.llm_url, api_key=key, timeout=CONNECT_TIMEOUT).models()
    except LLMServerError as error:
        raise StartupRefused(str(error)) from error
    base = next((m for m in models if m.get("id") == settings.llm_served_name), None)
    if base is None:
        names = ", ".join(str(m.get("id")) for m in models) or "nothing"
        raise StartupRefused(f"the model server at {settings.llm_url} does not serve {settings.llm_served_name!r} "
                             f"(it serves {names}): set TWIN_LLM_SERVED_NAME")
    root = base.get("root")
    return str(root) if root and root != settings.llm_served_name else None


def expected_base(settings: Settings) -> str | None:
    """The base model adapters must have been trained on: what the server says, else TWIN_LLM_MODEL."""
    from serving.bundled import BUNDLED, resolve_base_model

    served = served_base(settings)
    if served is not None:
        if settings.llm_model != BUNDLED and settings.llm_model != served:
            raise StartupRefused(f"TWIN_LLM_MODEL is {settings.llm_model} but the model server at {settings.llm_url} "
                                 f"serves {served}: set both to the same base model")
        return served
    if settings.llm_url and settings.llm_model == BUNDLED:
        return None  # a server that does not say, and no base model named: nothing to compare with
    return resolve_base_model(settings)


def check_adapters_match_base(app: TwinApp, base: str | None) -> None:
    """Refuse when an adapter serving an audience was trained on another base model than `base`."""
    from storage.training import AUDIENCES, TrainingStore

    if base is None:
        return
    training = TrainingStore(app.store.engine)
    for audience in AUDIENCES:
        name = training.serving(app.twin.id, audience)
        adapter = training.get(app.twin.id, name) if name else None
        if adapter is not None and adapter.base_model != base:
            raise StartupRefused(
                f"adapter {adapter.name} (serving {audience}) was trained on {adapter.base_model}, but the base model "
                f"is {base}: serve that base model, or `twin adapters rollback {audience}`")


def embedding_identity(settings: Settings, dim: int) -> dict[str, object]:
    """What the index's vectors depend on: the model and its vector size."""
    return {"model": settings.embedding_model, "dim": dim}


def check_index_embedding(app: TwinApp, dim: int) -> None:
    """Refuse when the index was built with another embedding model; record the model when none is recorded."""
    from storage.state import TWIN_WIDE, StateStore

    state = StateStore(app.store.engine)
    current = embedding_identity(app.settings, dim)
    recorded = state.get(app.twin.id, TWIN_WIDE, EMBEDDING_KEY)
    if recorded is None:
        record_index_embedding(app, dim)
    elif recorded != current:
        raise StartupRefused(
            f"the index was built with the embedding model {recorded['model']} ({recorded['dim']} dimensions), but "
            f"TWIN_EMBEDDING_MODEL is {current['model']} ({dim}): run `twin reindex`, or set it back")


def record_index_embedding(app: TwinApp, dim: int) -> None:
    """Note the model the index is built with (after `twin reindex` rebuilt it)."""
    from storage.state import TWIN_WIDE, StateStore

    StateStore(app.store.engine).put(app.twin.id, TWIN_WIDE, EMBEDDING_KEY, embedding_identity(app.settings, dim))


def check_before_open(settings: Settings) -> None:
    """What can be checked before the stores are opened: secrets, the database, Qdrant."""
    check_platform_secrets(settings)
    check_database(settings)
    check_qdrant(settings)


def check_after_open(app: TwinApp) -> None:
    """What needs the twin's registry: the model server and the serving adapters' base model."""
    check_adapters_match_base(app, expected_base(app.settings))


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
