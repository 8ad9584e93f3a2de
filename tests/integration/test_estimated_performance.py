"""Estimated performance end to end against a real store: training keeps CBPE (iris) and DLE (housing)
with the version, `shipyard drift` and the monitor report the estimate next to drift and export it as
gauges, and `shipyard retrain --if-drift --on estimated_drop` retrains on an estimated drop."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from shipyard.cli.main import app, main
from shipyard.config import Settings
from shipyard.monitoring.gauges import MonitorGauges
from shipyard.monitoring.monitor import Monitor
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.reports import drift_for_model
from shipyard.monitoring.retrain import TRIGGER_TAG, retrain
from shipyard.monitoring.store import MonitoringStore
from shipyard.registry import ModelRegistry
from shipyard.registry.models import load_reference
from shipyard.serving.monitor_app import registry_references
from shipyard.training.performance import CBPE, DLE
from tests.conftest import REPO, train_small_examples

pytestmark = pytest.mark.integration

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Settings:
    """iris and housing trained once for the module (the tests below add versions, never remove)."""
    home = tmp_path_factory.mktemp("estimated")
    shutil.copy(migrated_store, home / "mlflow.db")
    settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    train_small_examples(settings, "estimated")
    return settings


def iris_rows() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True).frame
    return data.iloc[:, :4].set_axis(IRIS, axis=1)


def boundary_rows(rows: int, seed: int = 0) -> pd.DataFrame:
    """Flowers between versicolor and virginica, where the forest is least sure."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sepal_length": rng.normal(6.2, 0.2, rows).round(1),
            "sepal_width": rng.normal(2.8, 0.1, rows).round(1),
            "petal_length": rng.normal(4.9, 0.1, rows).round(1),
            "petal_width": rng.normal(1.65, 0.08, rows).round(1),
        }
    )


def test_training_keeps_the_estimators_with_the_version(examples: Settings) -> None:
    registry = ModelRegistry(examples)
    iris = load_reference(registry, "iris")
    assert isinstance(iris.estimator, CBPE) and iris.estimator.classes == sorted(iris.estimator.classes)
    recorded = registry.resolve("iris").metrics
    assert iris.estimator.reference["accuracy"] == pytest.approx(recorded["test_accuracy"])
    housing = load_reference(registry, "housing")
    assert isinstance(housing.estimator, DLE)
    assert housing.estimator.reference["mae"] == pytest.approx(
        registry.resolve("housing").metrics["test_mae"]
    )


def test_drift_reports_the_estimate_and_it_falls_where_the_model_is_unsure(examples: Settings) -> None:
    usual = drift_for_model(examples, "iris", iris_rows())
    assert usual.performance is not None and usual.performance.method == "cbpe"
    assert not usual.performance.degraded and usual.performance.rows == 150
    unsure = drift_for_model(examples, "iris", boundary_rows(200))
    assert unsure.performance is not None and unsure.performance.degraded
    assert unsure.performance.estimated["accuracy"] < usual.performance.estimated["accuracy"] - 0.1
    assert unsure.to_dict()["performance"]["degraded"] is True  # what a retrain reads

    # housing: DLE on the logged answers; bigger houses, bigger expected errors (as realised)
    frame = pd.read_csv(REPO / "data/raw/housing.csv")
    by_size = frame.sort_values("gr_liv_area")
    small = drift_for_model(examples, "housing", by_size.head(400).drop(columns=["saleprice"]))
    large = drift_for_model(examples, "housing", by_size.tail(400).drop(columns=["saleprice"]))
    assert small.performance is not None and large.performance is not None
    assert small.performance.method == "dle" and small.performance.metric == "mae"  # r2 needs labels
    assert large.performance.estimated["mae"] > 1.5 * small.performance.estimated["mae"]
    assert large.performance.drop > small.performance.drop


def log_rows(url: str, frame: pd.DataFrame, version: str) -> None:
    """What the service would have logged for these rows (the answers are re-scored by the monitor)."""
    store = MonitoringStore.open(url)
    log = PredictionLog(store, interval=0.01)
    log.start()
    now = time.time()
    for i, row in enumerate(frame.to_dict("records")):
        features = {k: np.array([row[k]]) for k in IRIS}
        log.submit((f"r{i}", now + i * 1e-3, "iris", version, "champion", features, ["virginica"], 0.1, True))
    log.close()
    store.close()


def test_the_monitor_exports_the_estimate_and_a_retrain_follows_it(
    examples: Settings, tmp_path: Path
) -> None:
    settings = examples.model_copy(update={"monitoring_store_url": f"sqlite:///{tmp_path}/monitoring.db"})
    version = ModelRegistry(settings).resolve("iris").version
    log_rows(settings.monitoring_store_url, boundary_rows(200, seed=1), version)

    registry = CollectorRegistry()
    store = MonitoringStore.open(settings.monitoring_store_url)
    monitor = Monitor(settings, store, MonitorGauges(registry), registry_references(settings))
    (report,) = monitor.drift("iris")
    assert report.performance is not None and report.performance.degraded
    gauge = registry.get_sample_value(
        "shipyard_estimated_quality", {"model": "iris", "version": version, "metric": "accuracy"}
    )
    assert gauge == pytest.approx(report.performance.estimated["accuracy"])
    assert registry.get_sample_value("shipyard_estimated_quality_degraded", {"model": "iris"}) == 1
    stored = store.latest_result("drift", "iris")
    assert stored is not None and stored["performance"]["degraded"] is True
    store.close()

    only_drift = retrain(settings, "iris", if_drift=True, on="drift")
    assert (only_drift.ran, only_drift.trigger) == (True, "drift")  # these rows drifted too
    on_estimate = retrain(settings, "iris", if_drift=True, on="estimated_drop")
    assert on_estimate.ran and on_estimate.trigger == "estimated_drop"
    assert "estimated performance drop" in on_estimate.reason
    assert on_estimate.summary is not None
    mlflow.set_tracking_uri(settings.store_uri)
    run = mlflow.MlflowClient(settings.store_uri).get_run(on_estimate.summary.run_id)
    assert run.data.tags[TRIGGER_TAG] == "estimated_drop"


def test_the_cli_shows_the_estimate_and_checks_its_options(examples: Settings, tmp_path: Path) -> None:
    current = tmp_path / "unsure.csv"
    boundary_rows(200).to_csv(current, index=False)
    env = {"SHIPYARD_HOME": str(examples.home), "MLFLOW_TRACKING_URI": examples.tracking_uri}
    runner = CliRunner()
    shown = runner.invoke(
        app, ["drift", "iris", "--current", str(current), "-o", str(tmp_path / "r.json")], env=env
    )
    assert shown.exit_code == 0, shown.output
    assert (
        "estimated performance without labels (CBPE, 200 rows)" in shown.output and "DEGRADED" in shown.output
    )
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["performance"]["method"] == "cbpe" and written["performance"]["degraded"] is True


def test_retrain_options_are_checked_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["retrain", "iris", "--if-drift", "--on", "labels"]) == 2
    assert "--on 'labels': expected drift, estimated_drop or either" in capsys.readouterr().err
    assert main(["retrain", "iris", "--on", "drift"]) == 2
    assert "--on only applies with --if-drift" in capsys.readouterr().err
