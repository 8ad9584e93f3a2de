"""Fixtures for the data-contract tests: the shipped configs and the raw data they name, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config.pipeline import PipelineConfig
from shipyard.data import DataLoader, LoadedData
from shipyard.pipeline import load_pipeline_config

REPO_ROOT = Path(__file__).resolve().parents[2]
HOUSING_CSV = REPO_ROOT / "data" / "raw" / "housing.csv"
# The provenance hash recorded for data/raw/housing.csv; a model's lineage names its data by this digest.
HOUSING_SHA256 = "7cab86c0e7baf112f7b01a64e3093d81ccc55085001d376750aeff7b6aa7e00a"


def load_shipped_config(name: str) -> PipelineConfig:
    return load_pipeline_config(REPO_ROOT / "configs" / f"{name}.yaml")


def load_shipped_data(config: PipelineConfig) -> LoadedData:
    return DataLoader(config.dataset.source, base_dir=REPO_ROOT).load()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def iris_config() -> PipelineConfig:
    return load_shipped_config("iris")


@pytest.fixture(scope="session")
def housing_config() -> PipelineConfig:
    return load_shipped_config("housing")


@pytest.fixture(scope="session")
def housing_data(housing_config: PipelineConfig) -> LoadedData:
    """The raw housing data as loaded; tests that change the frame must copy it first."""
    return load_shipped_data(housing_config)
