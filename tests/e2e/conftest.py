"""End-to-end fixtures: a project workspace (configs + data) and the installed `shipyard` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SHIPYARD = str(Path(sys.executable).parent / "shipyard")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self, path: Path) -> Any:
        return json.loads(path.read_text())


Runner = Callable[..., Result]


@pytest.fixture
def workspace(tmp_path: Path, repo_root: Path, migrated_store: Path) -> Path:
    """A copy of the project's configs and data, with an (already migrated) empty embedded store."""
    shutil.copytree(repo_root / "configs", tmp_path / "configs")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw").symlink_to(repo_root / "data" / "raw")
    shutil.copy(migrated_store, tmp_path / "mlflow.db")
    return tmp_path


@pytest.fixture
def shipyard(workspace: Path) -> Runner:
    """Run the real console script in the workspace, as a user would."""

    def run(*args: str, timeout: float = 300) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING"))}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        proc = subprocess.run(
            [SHIPYARD, *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=timeout
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
