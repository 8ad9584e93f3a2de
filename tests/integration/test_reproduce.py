"""Reproducing a registered version from what it recorded: equal metrics when nothing changed (the
pipeline is seeded), a refusal naming the file when the data changed, feedback rows of a retrain
included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shipyard.config import Settings
from shipyard.errors import DataError
from shipyard.pipeline import run_training
from shipyard.pipeline.reproduce import reproduce
from shipyard.pipeline.steps import RUNNER_TAG
from tests.conftest import ConfigFactory

pytestmark = pytest.mark.integration


def test_a_version_reproduces_with_equal_metrics(settings: Settings, iris_config: ConfigFactory) -> None:
    summary = run_training(iris_config(), settings)
    result = reproduce(settings, "iris", summary.version)
    assert result.matches, result.checks
    assert {c.metric for c in result.checks} >= {"accuracy", "f1_macro"}
    assert all(c.difference == 0 for c in result.checks)
    assert result.data_hash == summary.data_hash


def test_changed_data_is_refused(settings: Settings, housing_config: ConfigFactory, tmp_path: Path) -> None:
    data = tmp_path / "housing.csv"
    shutil.copy(Path(__file__).resolve().parents[2] / "data/raw/housing.csv", data)
    config = housing_config(
        dataset={"source": {"path": str(data)}}, model={"params": {"n_estimators": 5, "max_features": 0.5}}
    )
    summary = run_training(config, settings)
    from shipyard.registry import ModelRegistry

    assert ModelRegistry(settings).get_version("housing", summary.version).tags[RUNNER_TAG] == "cli"
    lines = data.read_text().splitlines()
    data.write_text("\n".join([*lines, lines[1]]) + "\n")  # one sale more: valid, but not the same data
    with pytest.raises(DataError, match=r"the data of housing v1 changed: .*housing\.csv has sha256"):
        reproduce(settings, "housing", "1")
