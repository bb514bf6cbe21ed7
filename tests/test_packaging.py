"""The deployment files stay in step with the code: compose settings exist, Dockerfile copies real folders."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from twin.settings import Settings

ROOT = Path(__file__).parent.parent


def test_compose_sets_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    names = set(compose["services"]["twin"]["environment"])
    fields = {f"TWIN_{name.upper()}" for name in Settings.model_fields}
    assert names and names <= fields, names - fields
    assert (ROOT / compose["services"]["twin"]["build"]["dockerfile"]).exists()


def test_dockerfile_copies_existing_folders() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    sources = re.findall(r"^COPY (\S+)", dockerfile, flags=re.MULTILINE)
    assert sources
    for source in sources:
        for part in source.split():
            assert (ROOT / part).exists(), part


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme.split("\n## ")[0]
    assert "make test" in ci
