"""`make run` reinstalls nothing when nothing changed: scripts/setup skips pip while pyproject.toml and the script
are as they were at the last setup that finished. Run on a copy with a stand-in .venv whose pip records calls."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]
ACTIVATE = 'export PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd):$PATH"\n'
RECORDING = '#!/usr/bin/env bash\necho "$(basename "$0") $*" >> "$CALLS"\n'


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup", repo / "scripts" / "setup")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "activate").write_text(ACTIVATE)
    for name in ("python", "pip", "twin"):  # python -c "import torch" etc. succeed: installed
        _executable(bin_dir / name, RECORDING)
    return repo


def _setup(repo: Path, calls: Path) -> str:
    result = subprocess.run(["bash", "scripts/setup"], cwd=repo, env={**os.environ, "CALLS": str(calls)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _pip_calls(calls: Path) -> list[str]:
    return [line for line in calls.read_text().splitlines() if line.startswith("pip ")] if calls.exists() else []


def test_setup_installs_once_and_again_only_after_pyproject_changes(tmp_path: Path) -> None:
    repo, calls = _checkout(tmp_path), tmp_path / "calls.txt"
    _setup(repo, calls)
    assert _pip_calls(calls) == ["pip install --quiet -e .[dev,train]"]

    calls.unlink()
    assert "up to date" in _setup(repo, calls)
    assert not calls.exists()  # neither pip nor an import check ran

    with (repo / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a new dependency would go here\n")
    _setup(repo, calls)
    assert _pip_calls(calls) == ["pip install --quiet -e .[dev,train]"]
