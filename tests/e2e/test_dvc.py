"""The DVC runner on a temporary clone of the repository: `dvc repro` reproduces the example models
through the CLI, a second run does nothing, a changed param reruns only what depends on it, a parameter
sweep runs as an experiment, and outputs survive a trip through the default local remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
LOCAL_ONLY = ("dvc.lock", "metrics/", "plots/")  # produced by a local `dvc repro`, not part of a clone


@pytest.fixture
def clone(tmp_path: Path, repo_root: Path) -> Path:
    """The repository's files (as git sees them, committed or not) in a fresh git repository."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=repo_root,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    target = tmp_path / "clone"
    for name in filter(None, listed):
        source = repo_root / name
        if name.startswith(LOCAL_ONLY) or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-qm", "clone")
    return target


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    return env


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, env=environment(), capture_output=True)


def dvc(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "dvc"), *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def versions(clone: Path, name: str) -> list[dict[str, str]]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{clone / 'mlflow.db'}"
    found = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions(f"name='{name}'")
    return [dict(v.tags) for v in found]


def test_repro_params_experiments_and_remote(clone: Path) -> None:
    first = dvc(clone, "repro")
    for stage in ("prepare@iris", "prepare@housing", "train@iris", "train@housing"):
        assert f"Running stage '{stage}'" in first
    assert (clone / "data/processed/housing.parquet").is_file()
    assert (clone / "models/iris/MLmodel").is_file() and (clone / "models/housing/MLmodel").is_file()
    metrics = json.loads((clone / "metrics/iris.json").read_text())
    assert metrics["accuracy"] >= 0.9
    assert json.loads((clone / "metrics/housing.json").read_text())["r2"] >= 0.85
    plot = pd.read_csv(clone / "plots/iris/predictions.csv")
    assert list(plot.columns) == ["actual", "predicted"] and len(plot) == 30
    tags = versions(clone, "iris")
    assert len(tags) == 1 and tags[0]["shipyard.runner"] == "dvc"
    assert tags[0]["shipyard.dvc_stage"] == "train@iris"
    assert tags[0]["shipyard.data_uri"].endswith("data/processed/iris.parquet")
    assert "dvc metrics" not in dvc(clone, "metrics", "show")  # the metrics files are readable by DVC

    second = dvc(clone, "repro")
    assert "Data and pipelines are up to date" in second and "Running stage" not in second
    assert len(versions(clone, "iris")) == 1  # nothing retrained, nothing registered

    config = clone / "configs/iris.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["model"]["params"]["n_estimators"] = 40
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert "model.params.n_estimators" in dvc(clone, "params", "diff")
    third = dvc(clone, "repro")
    assert "Running stage 'train@iris'" in third
    for untouched in ("prepare@iris", "prepare@housing", "train@housing"):
        assert f"Running stage '{untouched}'" not in third
    assert len(versions(clone, "iris")) == 2
    git(clone, "commit", "-qam", "40 trees")

    sweep = dvc(clone, "exp", "run", "-S", "configs/iris.yaml:model.params.n_estimators=25")
    assert "Running stage 'train@iris'" in sweep
    table = _json(dvc(clone, "exp", "show", "--json"))
    assert "n_estimators" in json.dumps(table) and "25" in json.dumps(table)

    dvc(clone, "push")
    for output in ("data/processed", "models", ".dvc/cache"):
        shutil.rmtree(clone / output)
    dvc(clone, "pull")
    assert (clone / "models/iris/MLmodel").is_file() and (clone / "data/processed/iris.parquet").is_file()
    assert "up to date" in dvc(clone, "status").lower()


def _json(text: str) -> object:
    """The JSON document in DVC's output (it may print notices before it)."""
    start = min(i for i in (text.find("["), text.find("{")) if i >= 0)
    return json.loads(text[start:])
