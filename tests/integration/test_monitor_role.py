"""The monitor role over a real store and a real registry: its routes, its gauges, its errors, its
OpenAPI document judged by schemathesis, and the `shipyard monitor --once/--upgrade` commands."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from shipyard.config import Settings
from shipyard.monitoring.store import MonitoringStore
from shipyard.pipeline import run_training
from shipyard.serving.monitor_app import create_monitor_app
from tests.conftest import ConfigFactory, shifted_iris_rows
from tests.integration.test_retrain import log_traffic

pytestmark = pytest.mark.integration

SHIPYARD = str(Path(sys.executable).parent / "shipyard")


@pytest.fixture
def watched(settings: Settings, iris_config: ConfigFactory) -> Settings:
    """iris trained and registered, 200 shifted requests logged, 50 of them labelled."""
    run_training(iris_config(), settings)
    rows = shifted_iris_rows(np.random.default_rng(3), 200)
    log_traffic(settings.monitoring_store_url, rows, ["virginica"] * 50)
    return settings.model_copy(update={"models": ["iris"], "drift_interval_seconds": 3600})


def ready(client: TestClient) -> None:
    deadline = time.monotonic() + 60  # the first round starts with the app
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").text
        time.sleep(0.1)


def test_the_monitor_serves_drift_quality_and_gauges(watched: Settings) -> None:
    with TestClient(create_monitor_app(watched), raise_server_exceptions=False) as client:
        assert client.get("/health").json()["status"] == "ok"
        ready(client)
        report = client.get("/models/iris/drift").json()
        assert report["dataset_drift"] and report["version"] == "1" and report["current_rows"] == 200
        # the shifted petals are also a data-quality finding: outside the training range
        assert report["correction"] == "bh" and report["quality_issues"]["petal_width"]["out_of_range"] > 0.1
        report = client.get("/models/iris/drift?version=1&refresh=true").json()  # recomputed and stored
        assert report["current_rows"] == 200
        quality = client.get("/models/iris/quality").json()["results"]
        assert quality == [
            {
                "model": "iris",
                "version": "1",
                "variant": "champion",
                "metrics": {"accuracy": 1.0, "f1_macro": 1.0, "n": 50.0},
            }
        ]
        metrics = client.get("/metrics").text
        assert 'shipyard_dataset_drift{model="iris"} 1.0' in metrics
        assert 'shipyard_drift_version_info{model="iris",version="1"} 1.0' in metrics
        assert 'shipyard_live_quality{metric="n",model="iris",variant="champion",version="1"} 50.0' in metrics
        assert "shipyard_monitor_runs_total 1.0" in metrics
        found = re.search(
            r'shipyard_feature_quality\{check="out_of_range",feature="petal_width",model="iris"\} '
            r"([0-9.e-]+)",
            metrics,
        )
        assert found and float(found.group(1)) > 0.1
        unknown = client.get("/models/wine/drift")
        assert unknown.status_code == 404 and "not monitored here (SHIPYARD_MODELS: iris)" in unknown.text
        assert client.get("/models/iris/drift?version=99").status_code == 404
    # the api reads the monitor's stored report for the version it serves
    stored = MonitoringStore.open(watched.monitoring_store_url).latest_result("drift", "iris", "1")
    assert stored is not None and stored["report_id"] == report["report_id"]


def test_schemathesis_finds_no_server_error_on_the_monitor(watched: Settings) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    app = create_monitor_app(watched)
    with TestClient(app) as client:
        ready(client)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 5
        failures = []
        for operation in operations:

            @settings(
                max_examples=20,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def run(case: Any) -> None:
                response = case.call()
                try:
                    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
                except Exception as exc:
                    failures.append(f"{case.operation.label}: {str(exc)[:600]}")
                    raise

            with contextlib.suppress(Exception):
                run()
        assert not failures, "\n\n".join(failures)


def test_monitor_once_and_upgrade_from_the_command_line(watched: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": str(watched.tracking_uri),
            "SHIPYARD_MONITORING_URL": watched.monitoring_store_url,
            "SHIPYARD_MODELS": "iris",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    upgrade = subprocess.run([SHIPYARD, "monitor", "--upgrade"], env=env, capture_output=True, text=True)
    assert upgrade.returncode == 0 and "schema 2, up to date" in upgrade.stderr, upgrade.stderr
    once = subprocess.run(
        [SHIPYARD, "monitor", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=watched.home,
    )
    assert once.returncode == 0, once.stdout + once.stderr
    assert "DRIFTED" in once.stdout and "accuracy=1" in once.stdout
    bad = subprocess.run(
        [SHIPYARD, "monitor", "--once"],
        env={**env, "SHIPYARD_MONITORING_URL": "mysql://u:p@127.0.0.1/x"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "'mysql' stores are not supported" in bad.stderr
    assert "Traceback" not in bad.stderr
