"""Automated retraining against a real store: drift decides whether it runs, feedback rows join the
data, why it ran is recorded, and the champion moves only when the gate passes."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from shipyard.config import Settings
from shipyard.data import DataLoader
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.retrain import (
    DRIFT_ARTIFACT,
    DRIFT_REPORT_TAG,
    FEEDBACK_HASH_TAG,
    FEEDBACK_ROWS_TAG,
    TRIGGER_TAG,
    retrain,
)
from shipyard.monitoring.store import MonitoringStore
from shipyard.pipeline import run_training
from shipyard.pipeline.steps import FEEDBACK_ARTIFACT
from shipyard.registry import ModelRegistry
from tests.conftest import ConfigFactory, shifted_iris_rows

pytestmark = pytest.mark.integration

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def log_traffic(url: str, rows: list[dict[str, float]], labels: list[str] | None) -> None:
    """What the service would have logged: one request per row, and ground truth for each."""
    store = MonitoringStore.open(url)
    log = PredictionLog(store, interval=0.01)
    log.start()
    now = time.time()
    for i, row in enumerate(rows):
        features = {k: np.array([row[k]]) for k in FEATURES}
        log.submit((f"req-{i}", now + i * 1e-3, "iris", "1", "champion", features, ["virginica"], 0.1, True))
    log.close()
    if labels is not None:
        store.write_feedback([(f"req-{i}", [label]) for i, label in enumerate(labels)])
    store.close()


@pytest.fixture
def trained(settings: Settings, iris_config: ConfigFactory) -> ModelRegistry:
    run_training(iris_config(), settings)
    return ModelRegistry(settings)


def test_no_drift_means_no_retrain(
    trained: ModelRegistry, settings: Settings, iris_config: ConfigFactory
) -> None:
    outcome = retrain(settings, "iris", if_drift=True)
    assert not outcome.ran and "no logged predictions" in outcome.reason

    frame = DataLoader(iris_config().dataset.source).load().frame  # traffic like the training data
    log_traffic(settings.monitoring_store_url, frame[FEATURES].to_dict("records"), None)
    outcome = retrain(settings, "iris", if_drift=True)
    assert not outcome.ran and outcome.drift_report_id and "no dataset drift" in outcome.reason
    assert [v.version for v in trained.versions("iris")] == ["1"]  # nothing registered


def test_drift_retrains_with_feedback_and_records_why(trained: ModelRegistry, settings: Settings) -> None:
    rows = shifted_iris_rows(np.random.default_rng(7), 80)
    labels = ["virginica"] * 79 + ["daisy"]  # one label outside the target's contract
    log_traffic(settings.monitoring_store_url, rows, labels)

    outcome = retrain(settings, "iris", if_drift=True)
    assert outcome.ran and outcome.trigger == "drift"
    assert outcome.feedback_rows == 79 and outcome.feedback_rejected == 1
    summary = outcome.summary
    assert summary is not None and summary.version == "2"
    assert summary.rows["total"] == 150 + 79
    version = trained.get_version("iris", "2")
    assert version.tags[TRIGGER_TAG] == "drift"
    assert version.tags[DRIFT_REPORT_TAG] == outcome.drift_report_id
    assert version.tags[DRIFT_REPORT_TAG].startswith("drift-iris-")
    assert version.tags[FEEDBACK_ROWS_TAG] == "79" and len(version.tags[FEEDBACK_HASH_TAG]) == 64
    run = mlflow.MlflowClient(settings.store_uri).get_run(summary.run_id)
    assert run.data.tags[TRIGGER_TAG] == "drift"
    mlflow.set_tracking_uri(settings.store_uri)
    report = mlflow.artifacts.load_dict(f"runs:/{summary.run_id}/{DRIFT_ARTIFACT}")
    assert report["dataset_drift"] is True and report["report_id"] == outcome.drift_report_id
    kept = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{summary.run_id}/{FEEDBACK_ARTIFACT}"))
    assert len(kept) == 79 and set(kept["species"]) == {"virginica"}
    # the gate decided, and the aliases say what it decided
    champion = trained.version_by_alias("iris", "champion")
    assert champion is not None
    if summary.promoted:
        assert champion.version == "2" and trained.version_by_alias("iris", "challenger") is None
    else:
        assert champion.version == "1" and summary.aliases == ["challenger"]


def test_the_champion_moves_only_when_the_gate_passes(
    trained: ModelRegistry, settings: Settings, iris_config: ConfigFactory, tmp_path: Path
) -> None:
    strict = iris_config(promotion={"thresholds": {"accuracy": 0.9999}})
    outcome = retrain(settings, "iris", config=strict)
    assert outcome.ran and outcome.trigger == "manual" and outcome.summary is not None
    assert not outcome.summary.promoted and "below thresholds" in outcome.summary.decision.reason
    assert trained.version_by_alias("iris", "champion").version == "1"  # type: ignore[union-attr]
    assert trained.version_by_alias("iris", "challenger").version == "2"  # type: ignore[union-attr]
    assert trained.get_version("iris", "2").tags[TRIGGER_TAG] == "manual"

    passing = retrain(settings, "iris")  # the champion's own recorded config: same data, same seed
    assert passing.summary is not None and passing.summary.promoted
    assert trained.version_by_alias("iris", "champion").version == "3"  # type: ignore[union-attr]


def test_a_drift_report_file_decides(trained: ModelRegistry, settings: Settings, tmp_path: Path) -> None:
    calm = {"report_id": "drift-iris-x", "dataset_drift": False, "drifted_share": 0.0}
    assert not retrain(settings, "iris", if_drift=True, drift_report=calm).ran
    from shipyard.errors import DataError

    with pytest.raises(DataError, match="dataset_drift"):
        retrain(settings, "iris", if_drift=True, drift_report={"report": "?"})
