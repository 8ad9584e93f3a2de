"""Unit fixtures: models trained in memory (no MLflow) wrapped as served models, and app factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipyard.config import PipelineConfig, Settings
from shipyard.data import DataLoader, split_frame
from shipyard.registry.models import InputColumn, LoadedModel
from shipyard.serving import create_app
from shipyard.serving.holder import ModelHolder, ServedModel
from shipyard.training import ModelTrainer
from tests.conftest import ConfigFactory

SECRET = "x" * 40

_SIGNATURE_TYPES = {"int": "long", "float": "double", "str": "string", "bool": "boolean"}


def loaded_from_config(cfg: PipelineConfig, version: str = "1") -> tuple[LoadedModel, Any]:
    """Train in memory and wrap the Pipeline as the registry would hand it over."""
    frame = DataLoader(cfg.dataset.source).load().frame
    split = split_frame(frame, cfg.feature_columns, cfg.dataset.target, cfg.split, cfg.dataset.task)
    model = ModelTrainer(cfg).fit(split.X_train, split.y_train)
    inputs = []
    for name in cfg.feature_columns:
        spec = cfg.dataset.columns[name]
        kind = "float" if spec.nullable and spec.dtype == "int" else spec.dtype
        inputs.append(
            InputColumn(
                name, _SIGNATURE_TYPES[kind], not spec.nullable, tuple(spec.allowed) if spec.allowed else None
            )
        )
    tags = {"shipyard.git_commit": "abc123", "shipyard.data_hash": "d" * 64}
    loaded = LoadedModel(
        model, cfg.name, version, "run-" + version, inputs, tags, split.X_train.head(5), {"test_r2": 0.9}
    )
    return loaded, split


@pytest.fixture(scope="session")
def iris_loaded() -> tuple[LoadedModel, Any]:
    from shipyard.config.loading import parse_config
    from tests.conftest import merge, raw_config

    cfg = parse_config(merge(raw_config("iris"), {"model": {"params": {"n_estimators": 20}}}))
    return loaded_from_config(cfg)


@pytest.fixture(scope="session")
def housing_loaded(repo_root: Any) -> tuple[LoadedModel, Any]:
    from shipyard.config.loading import parse_config
    from tests.conftest import merge, raw_config

    cfg = parse_config(
        merge(
            raw_config("housing"),
            {
                "model": {"params": {"n_estimators": 10}},
                "dataset": {"source": {"path": str(repo_root / "data/raw/housing.csv")}},
            },
        )
    )
    return loaded_from_config(cfg)


def served(loaded: LoadedModel) -> ServedModel:
    return ServedModel(loaded, "champion", datetime.now(tz=UTC))


AppFactory = Callable[..., TestClient]


@pytest.fixture
def client_for(
    iris_loaded: tuple[LoadedModel, Any], housing_loaded: tuple[LoadedModel, Any]
) -> Iterator[AppFactory]:
    """A TestClient (lifespan running) around the two in-memory models, with settings overrides."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "auth_enabled": False,
            "models": ["iris", "housing"],
            "reload_interval_seconds": 0,
        }
        values.update(overrides)
        holder = ModelHolder.of(served(iris_loaded[0]), served(housing_loaded[0]))
        client = TestClient(create_app(Settings(**values), holder), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_for: AppFactory) -> TestClient:
    return client_for()


IRIS_ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.5, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2.0},
    {"sepal_length": 5.9, "sepal_width": 2.8, "petal_length": 4.3, "petal_width": 1.3},
]


@pytest.fixture
def small_config(iris_config: ConfigFactory) -> PipelineConfig:
    return iris_config()
