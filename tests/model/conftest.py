"""Fixtures for the behavioural model tests: each shipped config's model, trained once, in memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

from shipyard.config.pipeline import PipelineConfig
from shipyard.data import DataLoader, DataValidator, Split, split_frame
from shipyard.pipeline import load_pipeline_config
from shipyard.training import ModelTrainer

REPO_ROOT = Path(__file__).resolve().parents[2]

# A smaller forest than the shipped 100 trees keeps the suite fast and still clears the R² gate.
HOUSING_TREES = 30


@dataclass(frozen=True)
class TrainedModel:
    """A fitted Pipeline with the config and the split it was trained and evaluated on."""

    config: PipelineConfig
    split: Split
    model: Pipeline


def train(config: PipelineConfig) -> TrainedModel:
    """The training run's data path without tracking: load, validate, split, fit."""
    loaded = DataLoader(config.dataset.source, base_dir=REPO_ROOT).load()
    frame = DataValidator(config.dataset).check(loaded.frame)
    ds = config.dataset
    split = split_frame(frame, config.feature_columns, ds.target, config.split, ds.task)
    return TrainedModel(config, split, ModelTrainer(config).fit(split.X_train, split.y_train))


@pytest.fixture(scope="session")
def iris() -> TrainedModel:
    return train(load_pipeline_config(REPO_ROOT / "configs" / "iris.yaml"))


@pytest.fixture(scope="session")
def housing() -> TrainedModel:
    config = load_pipeline_config(REPO_ROOT / "configs" / "housing.yaml")
    small = config.model.model_copy(update={"params": {**config.model.params, "n_estimators": HOUSING_TREES}})
    return train(config.model_copy(update={"model": small}))
