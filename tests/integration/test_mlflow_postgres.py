"""MLflow's own backend on PostgreSQL, for real: `mlflow server` on a throwaway cluster, iris trained and
registered through the shipyard CLI, then read back with MLflow's own client and loaded by alias. This
is the shared-store deployment (compose, k8s) with its `postgresql+psycopg://` URL, not SQLite."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.integration.conftest import free_port
from tests.pg_cluster import PostgresCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

BIN = Path(sys.executable).parent
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3}


def _env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    return {**base, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


@contextlib.contextmanager
def _mlflow_server(backend_uri: str, root: Path, secret: str) -> Iterator[str]:
    """`mlflow server` on ``backend_uri`` as in tests/integration/conftest.py's ``mlflow_server`` (which is
    SQLite-only); stopped by its process group. ``secret`` is masked in the log shown on failure."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    command = [
        str(BIN / "mlflow"), "server",
        "--artifacts-destination", (root / "artifacts").as_uri(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # the store in --backend-store-uri's own variable: no password in `ps`
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env({"MLFLOW_BACKEND_STORE_URI": backend_uri}),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:].replace(secret, "***")
                raise AssertionError(f"mlflow server on PostgreSQL not up (exit {proc.poll()}):\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def test_train_register_and_load_through_a_server_on_postgresql(
    postgres: PostgresCluster, tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = secrets.token_urlsafe(16)
    store = postgres.create_database("mlflow_store", "mlflow_store", password)
    assert store.startswith("postgresql+psycopg://")

    shutil.copytree(repo_root / "configs", tmp_path / "configs")
    config = tmp_path / "configs" / "iris.yaml"
    config.write_text(config.read_text().replace("n_estimators: 100", "n_estimators: 20"))

    with _mlflow_server(store, tmp_path, password) as url:
        trained = subprocess.run(
            [str(BIN / "shipyard"), "train", "-c", "configs/iris.yaml", "-q"],
            cwd=tmp_path,
            env=_env({"MLFLOW_TRACKING_URI": url, "SHIPYARD_HOME": str(tmp_path)}),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert trained.returncode == 0, trained.stdout + trained.stderr

        import mlflow
        from mlflow import MlflowClient

        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        # and MLflow's process-wide URIs, which an earlier test in this process may have set (they win
        # over the variable)
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        client = MlflowClient(tracking_uri=url, registry_uri=url)
        versions = client.search_model_versions("name = 'iris'")
        assert [v.version for v in versions] == ["1"]
        assert client.get_registered_model("iris").aliases == {"champion": "1"}
        champion = client.get_model_version_by_alias("iris", "champion")
        assert champion.run_id and client.get_run(champion.run_id).info.status == "FINISHED"

        model = mlflow.pyfunc.load_model("models:/iris@champion")
        import pandas as pd

        predicted = model.predict(pd.DataFrame([SETOSA, VIRGINICA]))
        assert [str(label) for label in predicted] == ["setosa", "virginica"]

    # and it is PostgreSQL that holds the registry, not a fallback store: read MLflow's own tables
    parts = urlsplit(store)
    with psycopg.connect(
        host=parts.hostname, port=parts.port, user="mlflow_store", password=password, dbname="mlflow_store"
    ) as conn:
        aliases = conn.execute("SELECT name, alias, version FROM registered_model_aliases").fetchall()
        assert aliases == [("iris", "champion", 1)]
        runs = conn.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (champion.run_id,)).fetchone()
        assert runs == (1,)
