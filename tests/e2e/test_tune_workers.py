"""Distributed tuning: two `shipyard tune` worker processes add trials to one Optuna study (a shared
journal file), no trial is lost, and the best is trained and registered through the gate."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import SHIPYARD, Runner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_two_workers_share_one_study(workspace: Path, shipyard: Runner) -> None:
    config = yaml.safe_load((workspace / "configs/iris.yaml").read_text())
    config["tuning"]["cv_folds"] = 2
    config["tuning"]["search_space"] = {
        "n_estimators": {"type": "int", "low": 5, "high": 30},
        "max_depth": {"type": "int", "low": 2, "high": 6},
    }
    # this test is about the shared study, not the gate: a tiny forest may miss iris's 0.9 bar
    config["promotion"]["thresholds"] = {"accuracy": 0.5}
    (workspace / "configs/quick.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING"))}
    command = [SHIPYARD, "tune", "iris", "-c", "configs/quick.yaml", "--study", "s1", "--n-trials", "6"]
    workers = [
        subprocess.Popen(
            [*command, "-o", f"worker{i}.json"],
            cwd=workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()[-3000:]
    added = [json.loads((workspace / f"worker{i}.json").read_text())["trials_added"] for i in range(2)]
    assert added == [6, 6]

    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(workspace / "optuna/s1.journal")))
    trials = optuna.load_study(study_name="s1", storage=storage).trials
    assert len(trials) == 12 and sorted(t.number for t in trials) == list(range(12))  # none lost
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert (
        len({tuple(sorted(t.params.items())) for t in trials}) > 6
    )  # the workers did not duplicate each other

    final = shipyard(
        "tune",
        "iris",
        "-c",
        "configs/quick.yaml",
        "--study",
        "s1",
        "--n-trials",
        "0",
        "--register",
        "-o",
        "best.json",
    )
    assert final.code == 0, final.stderr
    best = json.loads((workspace / "best.json").read_text())["registered"]
    study_best = max(trials, key=lambda t: t.value or 0).params
    assert best["version"] == "1" and best["aliases"] == ["champion"]
    listed = shipyard("models", "lineage", "iris", "1", "-o", "lineage.json")
    tags = json.loads((workspace / "lineage.json").read_text())["tags"]
    assert tags["shipyard.tuning.study"] == "s1" and tags["shipyard.tuning.trials"] == "12"
    assert listed.code == 0
    from mlflow import MlflowClient

    uri = f"sqlite:///{workspace / 'mlflow.db'}"
    params = MlflowClient(uri).get_run(best["run_id"]).data.params
    for key, value in study_best.items():  # the registered run trained with the study's best params
        assert params[f"model.params.{key}"] == str(value)
