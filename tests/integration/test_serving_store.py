"""The service against a real MLflow store: it loads the champion, answers as MLflow's own loader does,
and follows the alias when a new version is promoted."""

from __future__ import annotations

import math

import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from shipyard.config import Settings
from shipyard.data import DataLoader, split_frame
from shipyard.pipeline import run_training
from shipyard.registry import ModelRegistry
from shipyard.serving import create_app
from tests.conftest import ConfigFactory, flush_prediction_log, shifted_iris_rows

pytestmark = pytest.mark.integration


def serving_settings(settings: Settings, models: list[str]) -> Settings:
    return settings.model_copy(update={"auth_enabled": False, "models": models, "reload_interval_seconds": 0})


def test_service_answers_like_mlflow_pyfunc_and_follows_promotion(
    settings: Settings, iris_config: ConfigFactory
) -> None:
    cfg = iris_config()
    run_training(cfg, settings)
    frame = DataLoader(cfg.dataset.source).load().frame
    rows = split_frame(frame, cfg.feature_columns, "species", cfg.split, "classification").X_test
    reference = list(mlflow.pyfunc.load_model("models:/iris@champion").predict(rows))

    with TestClient(create_app(serving_settings(settings, ["iris"]))) as client:
        assert client.get("/ready").json()["ready"] is True
        records = rows.to_dict("records")
        own = client.post("/predict", json={"records": records}).json()
        assert own["predictions"] == reference and own["version"] == "1"
        split = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
        assert client.post("/invocations", json=split).json()["predictions"] == reference
        inputs = [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()} for c in rows
        ]
        assert (
            client.post("/v2/models/iris/infer", json={"inputs": inputs}).json()["outputs"][0]["data"]
            == reference
        )
        detail = client.get("/models/iris").json()
        assert detail["metrics"]["accuracy"] >= 0.9
        assert len(detail["lineage"]["data_hash"]) == 64

        # a weaker model stays challenger: nothing changes
        weak = iris_config(
            model={"params": {"n_estimators": 1, "max_depth": 1}}, promotion={"thresholds": {}}
        )
        run_training(weak, settings)
        assert client.post("/admin/reload").json()["models"] == {"iris": "unchanged"}
        # promoted by hand: the service swaps on the next check
        ModelRegistry(settings).promote("iris", "2", reason="drill", by="test")
        assert client.post("/admin/reload").json()["models"] == {"iris": "loaded version 2 (was 1)"}
        assert client.post("/predict", json=records[0]).json()["version"] == "2"


def test_allowed_categories_travel_with_the_model(settings: Settings, housing_config: ConfigFactory) -> None:
    cfg = housing_config()
    run_training(cfg, settings)
    raw = pd.read_csv(cfg.dataset.source.path, keep_default_na=False, na_values=[""])  # type: ignore[arg-type]
    record = {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in raw[cfg.feature_columns].head(1).to_dict("records")[0].items()
    }
    expected = mlflow.pyfunc.load_model("models:/housing@champion").predict(raw[cfg.feature_columns].head(1))
    with TestClient(create_app(serving_settings(settings, ["housing"]))) as client:
        ok = client.post("/predict", json=record)
        assert ok.status_code == 200, ok.text
        assert ok.json()["predictions"] == pytest.approx(list(expected))
        bad = client.post("/predict", json={**record, "paved_drive": "Gravel"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["msg"] == "unknown category 'Gravel' (expected one of: N, P, Y)"


def test_a_missing_champion_leaves_the_service_alive_but_not_ready(settings: Settings) -> None:
    with TestClient(create_app(serving_settings(settings, ["iris"]))) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        listing = client.get("/models").json()["models"]
        assert listing == [{"name": "iris", "loaded": False, "error": "no version has alias 'champion'"}]
        assert client.post("/predict", json={"a": 1}).status_code == 404


def test_service_watches_drift_over_logged_traffic(settings: Settings, iris_config: ConfigFactory) -> None:
    import numpy as np

    run_training(iris_config(), settings)
    watched = serving_settings(settings, ["iris"]).model_copy(
        update={"prediction_log": True, "drift_interval_seconds": 0, "drift_window": 300}
    )
    rng = np.random.default_rng(0)
    with TestClient(create_app(watched)) as client:
        empty = client.get("/models/iris/drift", params={"refresh": "true"})
        assert empty.status_code == 404 and "no logged predictions" in empty.json()["detail"]
        for _ in range(30):
            rows = shifted_iris_rows(rng, 10)
            assert client.post("/predict", json={"records": rows}).status_code == 200
        flush_prediction_log(client)
        report = client.get("/models/iris/drift", params={"refresh": "true"}).json()
        assert report["current_rows"] == 300 and report["version"] == "1"
        assert {"petal_length", "petal_width"} <= set(report["drifted_features"])
        assert report["dataset_drift"] is True
        assert client.get("/models/iris/drift").json()["created_at"] == report["created_at"]  # the latest
        metrics = client.get("/metrics").text
        assert 'shipyard_dataset_drift{model="iris"} 1.0' in metrics
        assert 'shipyard_feature_drifted{feature="petal_length",model="iris"} 1.0' in metrics
        assert 'shipyard_feature_drift_score{feature="petal_length",model="iris",test="ks"}' in metrics
