"""Fixtures for the behavioural model tests: each shipped config's model, registered in an MLflow store
and loaded back as the service loads it (``ReadyModel``: the input rules and the engine the service
would pick, ONNX Runtime for iris), so the tests judge what is served, not only the raw Pipeline.

``pytest tests/model --model-store URI [--model-alias ALIAS]`` runs them against the versions already
registered in a store (the champion by default), e.g. a challenger before promoting it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.config import Settings
from shipyard.config.pipeline import PipelineConfig
from shipyard.data import DataLoader, DataValidator, Split, split_frame
from shipyard.inference import ReadyModel
from shipyard.pipeline import load_pipeline_config, run_training
from shipyard.registry import ModelRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]

# A smaller forest than the shipped 100 trees keeps the suite fast and still clears the R² gate.
HOUSING_TREES = 30


@dataclass(frozen=True)
class ServedModel:
    """A registered version as the service serves it, with the config and split it was trained on."""

    config: PipelineConfig
    split: Split
    ready: ReadyModel

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return self.ready.predict_frame(rows)["prediction"].to_numpy()

    def proba(self, rows: pd.DataFrame, label: str) -> np.ndarray:
        return self.ready.predict_frame(rows)[f"proba_{label}"].to_numpy()

    @property
    def engine(self) -> str:
        return self.ready.engine.name


def split_of(config: PipelineConfig) -> Split:
    """The training run's split (same data path, same seed)."""
    loaded = DataLoader(config.dataset.source, base_dir=REPO_ROOT).load()
    frame = DataValidator(config.dataset).check(loaded.frame)
    ds = config.dataset
    return split_frame(frame, config.feature_columns, ds.target, config.split, ds.task)


def configs() -> dict[str, PipelineConfig]:
    iris = load_pipeline_config(REPO_ROOT / "configs" / "iris.yaml")
    housing = load_pipeline_config(REPO_ROOT / "configs" / "housing.yaml")
    small = housing.model.model_copy(
        update={"params": {**housing.model.params, "n_estimators": HOUSING_TREES}}
    )
    return {"iris": iris, "housing": housing.model_copy(update={"model": small})}


@pytest.fixture(scope="session")
def model_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, migrated_store: Path
) -> tuple[Settings, str]:
    """(settings, alias): the store given with --model-store, or a fresh one where both shipped
    configs are trained and registered now."""
    given = request.config.getoption("--model-store")
    alias = request.config.getoption("--model-alias")
    if given:
        home = tmp_path_factory.mktemp("model-tests")
        return Settings(home=home, tracking_uri=given), alias
    home = tmp_path_factory.mktemp("model-store")
    shutil.copy(migrated_store, home / "mlflow.db")
    settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    for config in configs().values():
        run_training(config, settings, base_dir=REPO_ROOT)
    return settings, "champion"


def served(name: str, store: tuple[Settings, str]) -> ServedModel:
    settings, alias = store
    config = configs()[name]
    loaded = ModelRegistry(settings).load(name, alias)
    return ServedModel(config, split_of(config), ReadyModel(loaded))


@pytest.fixture(scope="session")
def iris(model_store: tuple[Settings, str]) -> ServedModel:
    return served("iris", model_store)


@pytest.fixture(scope="session")
def housing(model_store: tuple[Settings, str]) -> ServedModel:
    return served("housing", model_store)
