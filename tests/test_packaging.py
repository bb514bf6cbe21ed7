"""The deployment files stay in step with the code. There is no Docker engine here: the compose file and the
Dockerfiles are parsed and checked against the settings model, the CLI and the package."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from typer.main import get_command

from twin.cli import app as cli_app
from twin.settings import Settings

ROOT = Path(__file__).parent.parent
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (DOCKER / ".env.example").read_text()
READ_BY_NAME = {"TWIN_CONFIG_FILE"}  # read from os.environ, not a field: names the TOML file of the fields
SETTINGS = {f"TWIN_{name.upper()}" for name in Settings.model_fields} | READ_BY_NAME
VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
LONG_RUNNING = ("twin", "vllm", "postgres", "qdrant")


def substituted(value: object) -> object:
    """A compose value with ${NAME:-default} replaced by its default, as compose does with NAME unset."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [substituted(v) for v in value]
    if isinstance(value, dict):
        return {k: substituted(v) for k, v in value.items()}
    return value


def environment(service: str) -> dict[str, str]:
    return {name: str(value) for name, value in substituted(SERVICES[service]["environment"]).items()}


def command_option(service: str, option: str) -> str:
    command = [str(part) for part in substituted(SERVICES[service]["command"])]
    return command[command.index(option) + 1]


def mounts(service: str) -> dict[str, str]:
    """Target path -> volume name, for each volume of the service (read-only flags dropped)."""
    found = {}
    for entry in SERVICES[service].get("volumes", []):
        source, target, *_ = entry.split(":")
        found[target] = source
    return found


def dockerfile(name: str) -> str:
    return (DOCKER / name).read_text()


def instruction(text: str, keyword: str) -> list[str]:
    return re.findall(rf"^{keyword} (.+)$", text, flags=re.MULTILINE)


# -- docker/.env.example --------------------------------------------------------------------------------------


def test_env_example_lists_every_setting_the_code_reads_each_with_a_comment() -> None:
    lines = ENV_EXAMPLE.splitlines()
    listed = {}
    for number, line in enumerate(lines):
        match = re.match(r"^(?:# )?(TWIN_[A-Z0-9_]+)=", line)
        if match:
            listed[match.group(1)] = number
    assert set(listed) == SETTINGS, (SETTINGS - set(listed), set(listed) - SETTINGS)
    for name, number in listed.items():
        above = lines[number - 1]
        assert above.startswith("# ") and "=" not in above.split()[1], f"{name} has no comment above it"


def test_every_compose_variable_is_in_the_env_example() -> None:
    text = (DOCKER / "compose.yaml").read_text()
    variables = {m.group(1) for m in VARIABLE.finditer(text)}
    assert variables
    for name in variables:
        assert re.search(rf"^(# )?{name}=", ENV_EXAMPLE, flags=re.MULTILINE), f"{name} is not in .env.example"


# -- compose: services, wiring, health, volumes ----------------------------------------------------------------


def test_the_twin_service_sets_only_real_settings_and_they_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment("twin")
    assert env and set(env) <= SETTINGS, set(env) - SETTINGS
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.database_url and settings.qdrant_url and settings.llm_url


def test_every_service_the_twin_expects_is_defined_and_wired_as_it_reads_it() -> None:
    env = environment("twin")
    database = urlsplit(env["TWIN_DATABASE_URL"])
    postgres = environment("postgres")
    assert database.scheme == "postgresql+psycopg" and database.hostname == "postgres" and database.port == 5432
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])
    assert urlsplit(env["TWIN_QDRANT_URL"]).hostname == "qdrant" and "qdrant" in SERVICES
    assert urlsplit(env["TWIN_QDRANT_URL"]).port == 6333  # Qdrant's REST port
    llm = urlsplit(env["TWIN_LLM_URL"])
    assert llm.hostname == "vllm" and llm.port == int(command_option("vllm", "--port")) and llm.path == "/v1"
    assert env["TWIN_LLM_SERVED_NAME"] == command_option("vllm", "--served-model-name")


def test_vllm_serves_the_base_model_the_twin_trains_on_with_runtime_lora() -> None:
    raw = SERVICES["vllm"]["command"]
    assert raw[raw.index("--model") + 1] == SERVICES["twin"]["environment"]["TWIN_LLM_MODEL"]  # the same ${...}
    assert command_option("vllm", "--model") == environment("twin")["TWIN_LLM_MODEL"] == environment("trainer")[
        "TWIN_LLM_MODEL"]
    assert "--enable-lora" in raw
    assert environment("vllm")["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert SERVICES["vllm"]["image"].startswith("vllm/vllm-openai:")
    assert "${TWIN_LLM_API_KEY" in SERVICES["vllm"]["environment"]["VLLM_API_KEY"]  # the key the twin sends


def test_the_twin_waits_for_healthy_dependencies_and_everything_restarts() -> None:
    for service in ("twin", "trainer"):
        depends = SERVICES[service]["depends_on"]
        for dependency in ("postgres", "qdrant", "vllm"):
            assert depends[dependency]["condition"] == "service_healthy", (service, dependency)
    for service in LONG_RUNNING:
        assert SERVICES[service]["healthcheck"]["test"], service
        assert SERVICES[service]["restart"] in ("unless-stopped", "always"), service
    assert SERVICES["twin"]["healthcheck"]["test"] == ["CMD", "python", "-m", "twin.healthcheck"]


def test_the_adapters_are_shared_at_the_path_the_twin_registers_them_under() -> None:
    from twin.l2 import adapters_dir

    settings = Settings(_env_file=None, data_dir=environment("twin")["TWIN_DATA_DIR"])
    path = str(adapters_dir(settings))
    for service in ("twin", "trainer", "vllm"):
        assert mounts(service).get(path) == "adapters", service
    assert environment("trainer")["TWIN_DATA_DIR"] == environment("twin")["TWIN_DATA_DIR"]


def test_every_volume_that_holds_state_is_named() -> None:
    named = set(COMPOSE["volumes"])
    for service, spec in SERVICES.items():
        for entry in spec.get("volumes", []):
            source = entry.split(":")[0]
            assert source in named, f"{service}: {entry} is not a named volume"
    state = {"twin": environment("twin")["TWIN_DATA_DIR"], "postgres": "/var/lib/postgresql/data",
             "qdrant": "/qdrant/storage", "vllm": environment("vllm")["HF_HOME"]}
    for service, path in state.items():
        assert path in mounts(service), (service, path)
    for volume in instruction(dockerfile("Dockerfile"), "VOLUME"):
        assert volume in mounts("twin")


def test_the_platform_ports_are_published_where_the_twin_listens() -> None:
    env = environment("twin")
    published = {int(str(p).rsplit(":", 1)[1]) for p in substituted(SERVICES["twin"]["ports"])}
    assert published == {int(env["TWIN_SLACK_PORT"]), int(env["TWIN_TELEGRAM_WEBHOOK_PORT"])}
    assert env["TWIN_SLACK_HOST"] == env["TWIN_TELEGRAM_WEBHOOK_LISTEN"] == "0.0.0.0"  # bound inside the container
    exposed = {int(p) for line in instruction(dockerfile("Dockerfile"), "EXPOSE") for p in line.split()}
    assert published == exposed


# -- Dockerfiles: entry points, user, torch --------------------------------------------------------------------


def _exec_form(text: str, keyword: str) -> list[str]:
    import json

    (line,) = instruction(text, keyword)
    return json.loads(line)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.trainer"])
def test_dockerfile_copies_existing_folders_and_runs_unprivileged(name: str) -> None:
    text = dockerfile(name)
    for source in instruction(text, "COPY"):
        for part in source.split()[:-1]:
            assert (ROOT / part).exists(), part
    users = instruction(text, "USER")
    assert users and users[-1] not in ("root", "0")
    assert "useradd" in text


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.trainer"])
def test_every_entry_point_named_in_the_images_exists(name: str) -> None:
    text = dockerfile(name)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    (entry,) = _exec_form(text, "ENTRYPOINT")
    assert entry in scripts
    command = get_command(cli_app)
    arguments = _exec_form(text, "CMD")
    assert arguments[0] in command.commands  # type: ignore[attr-defined]
    for service in ("twin", "trainer"):
        args = [str(a) for a in SERVICES[service]["command"]]
        sub = command.commands[args[0]]  # type: ignore[attr-defined]
        sub.make_context(args[0], args[1:])  # raises on an option the command does not have
    for line in instruction(text, "HEALTHCHECK"):
        module = line.split('"-m", "')[1].split('"')[0]
        assert importlib.util.find_spec(module) is not None, module


def test_the_twin_image_installs_the_cpu_torch_and_the_trainer_the_train_extra() -> None:
    twin = dockerfile("Dockerfile")
    torch_installs = [line for line in instruction(twin, "RUN") if re.search(r"pip install [^&]*torch", line)]
    assert torch_installs and all("--index-url" in line for line in torch_installs)
    assert re.search(r"ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cpu$", twin, flags=re.MULTILINE)
    assert twin.index("torch==") < twin.index("pip install .")  # first, so the project's deps do not pull CUDA
    trainer = dockerfile("Dockerfile.trainer")
    assert 'pip install ".[train]"' in trainer
    assert re.search(r"ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu\d+$", trainer, flags=re.MULTILINE)
    assert instruction(twin, "COPY") == instruction(trainer, "COPY")  # the same code


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme.split("\n## ")[0]
    assert "make test" in ci
