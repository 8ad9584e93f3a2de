"""Fixtures every tier shares: the repo root and small, fast versions of the example configs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from shipyard.config import PipelineConfig
from shipyard.config.loading import parse_config

REPO = Path(__file__).resolve().parents[1]


CLOCK_SKEW_FILE = "SHIPYARD_TEST_CLOCK_SKEW_FILE"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--model-store",
        default=None,
        help="Behavioural model tests (tests/model) against the models registered in this tracking store "
        "(e.g. sqlite:///mlflow.db or http://mlflow:5000) instead of freshly trained ones.",
    )
    parser.addoption(
        "--model-alias", default="champion", help="With --model-store: the alias of the versions to test."
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under scripts/test_clock_skew.sh, move libfaketime's clock forward once collection is over: a
    token, timestamp or deadline made at import or collection is then stale when its test runs, as it
    is on a busy CI machine where a tier starts many minutes after collection."""
    path = os.environ.get(CLOCK_SKEW_FILE)
    if not path:
        return
    before = time.time()
    Path(path).write_text(os.environ.get("SHIPYARD_TEST_CLOCK_SKEW", "+20m") + "\n")
    deadline = time.monotonic() + 5  # libfaketime re-reads the file within its cache duration (1 s)
    while abs(time.time() - before) < 60:
        if time.monotonic() > deadline:
            raise pytest.UsageError(
                f"the wall clock did not move after writing {path}: is libfaketime loaded?"
            )
        time.sleep(0.05)


@pytest.fixture(autouse=True, scope="module")
def _clean_module_environment() -> Iterator[None]:
    """The same clean-up for the fixtures a module makes once (stores trained per module), which run
    before any per-test fixture: MLflow exports MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI whenever a
    store is configured in-process, so one module's store must not become the next module's default."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith(("SHIPYARD_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")):
                patch.delenv(key)
        yield


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's own MLflow or Shipyard settings must not leak into tests, and nothing a test runs
    may write into the working tree (the prediction log goes to the test's own folder)."""
    import os

    for key in list(os.environ):
        if key.startswith(("SHIPYARD_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    from shipyard.config.settings import Settings

    monkeypatch.setitem(Settings.model_config, "env_file", None)  # a developer's .env must not leak in
    monkeypatch.setenv("SHIPYARD_PREDICTION_LOG_PATH", str(tmp_path / "predictions.db"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def raw_config(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base`` (dicts merge; an empty dict or any other value
    replaces)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


ConfigFactory = Callable[..., PipelineConfig]


@pytest.fixture
def iris_config() -> ConfigFactory:
    """configs/iris.yaml with a 20-tree forest (fast), plus any overrides."""

    def make(**overrides: Any) -> PipelineConfig:
        base = merge(raw_config("iris"), {"model": {"params": {"n_estimators": 20}}})
        return parse_config(merge(base, overrides), source="iris-test")

    return make


@pytest.fixture
def housing_config() -> ConfigFactory:
    """configs/housing.yaml with a 20-tree forest and an absolute data path, plus any overrides."""

    def make(**overrides: Any) -> PipelineConfig:
        base = merge(
            raw_config("housing"),
            {
                "model": {"params": {"n_estimators": 20, "max_features": 0.5}},
                "dataset": {"source": {"path": str(REPO / "data/raw/housing.csv")}},
            },
        )
        return parse_config(merge(base, overrides), source="housing-test")

    return make


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated SQLite store made once; each test copies it (migration takes seconds)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def train_small_examples(settings: Any, source: str) -> None:
    """iris (20 trees) and housing (10 trees) trained and registered into ``settings``' store: the small
    champions the integration tests serve and score."""
    from shipyard.config.loading import parse_config
    from shipyard.pipeline import run_training

    iris = merge(raw_config("iris"), {"model": {"params": {"n_estimators": 20}}})
    housing = merge(
        raw_config("housing"),
        {
            "model": {"params": {"n_estimators": 10, "max_features": 0.5}},
            "dataset": {"source": {"path": str(REPO / "data/raw/housing.csv")}},
        },
    )
    run_training(parse_config(iris, source=f"iris-{source}"), settings)
    run_training(parse_config(housing, source=f"housing-{source}"), settings)


def shifted_iris_rows(rng: Any, count: int) -> list[dict[str, float]]:
    """Iris-like rows whose petals are far longer and wider than any in training: drift by design."""
    return [
        {
            "sepal_length": float(rng.normal(5.8, 0.4)),
            "sepal_width": float(rng.normal(3.0, 0.3)),
            "petal_length": float(rng.normal(6.5, 0.4)),
            "petal_width": float(rng.normal(2.4, 0.2)),
        }
        for _ in range(count)
    ]


def iris_rows(rows: int, seed: int = 0) -> Any:
    """Iris-like rows with an ``id`` column, as files to batch-score."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sepal_length": rng.normal(5.8, 0.8, rows),
            "sepal_width": rng.normal(3.0, 0.4, rows),
            "petal_length": rng.normal(3.7, 1.7, rows).clip(0.1),
            "petal_width": rng.normal(1.2, 0.7, rows).clip(0.1),
        }
    )
    frame.insert(0, "id", np.arange(rows))
    return frame


def flush_prediction_log(client: Any) -> None:
    """Write what a running TestClient app has buffered in its prediction log, so the test reads it
    back at once instead of sleeping past the writer's interval."""
    log = client.app.state.services.plane.prediction_log
    assert log is not None, "the app runs without a prediction log (settings.prediction_log is off)"
    log.flush()


def missing_external(reason: str) -> NoReturn:
    """A system the test needs is not installed (a validator, a browser, a server binary): skip with the
    reason on a developer machine, fail under CI, whose .ci/run installs every one of them."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason}; CI must install it (.ci/run, make install-test)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster (tests/pg_cluster.py) on a free port of 127.0.0.1, started once per
    session: each test makes its own database, ``postgres.create_database(name, user, password)`` (unique
    names; password from ``secrets``), which returns a ``postgresql+psycopg://`` URL."""
    from tests.pg_cluster import throwaway_cluster

    with throwaway_cluster("shipyard-pg-", missing_external) as cluster:
        yield cluster
