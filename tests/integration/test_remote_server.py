"""The same code against a real `mlflow server` process: tracking, artifacts and registry over HTTP."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

from shipyard.config import Settings
from shipyard.data import DataLoader, split_frame
from shipyard.errors import RegistryError
from shipyard.pipeline import run_training
from shipyard.registry import ModelRegistry
from tests.conftest import ConfigFactory

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_training_registers_through_a_tracking_server(
    mlflow_server: str, iris_config: ConfigFactory, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # the standard variable, as users set it
    settings = Settings(home=tmp_path)
    assert settings.store_uri == mlflow_server and settings.artifact_root is None

    cfg = iris_config(name="iris-remote")
    first = run_training(cfg, settings)
    assert first.promoted and first.tracking_uri == mlflow_server
    second = run_training(
        iris_config(
            name="iris-remote",
            model={"params": {"n_estimators": 1, "max_depth": 1}},
            promotion={"thresholds": {}},
        ),
        settings,
    )
    assert not second.promoted and second.aliases == ["challenger"]

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    model = client.get_registered_model("iris-remote")
    assert model.aliases == {"champion": "1", "challenger": "2"}
    version = client.get_model_version("iris-remote", "1")
    assert version.tags["shipyard.promotion.decision"] == "promoted"
    assert len(version.tags["shipyard.data_hash"]) == 64
    # artifacts went through the server's artifact proxy
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert "reference_profile.json" in artifacts

    loaded = ModelRegistry(settings).load("iris-remote")
    frame = DataLoader(cfg.dataset.source).load().frame
    split = split_frame(frame, cfg.feature_columns, "species", cfg.split, "classification")
    accuracy = float(np.mean(loaded.model.predict(split.X_test) == split.y_test))
    assert accuracy == pytest.approx(first.metrics["accuracy"])


def test_unreachable_server_is_a_clear_registry_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.conftest import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = Settings(tracking_uri=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RegistryError, match=r"registered models"):
        ModelRegistry(settings).model_names()
