"""MLflow behind its basic-auth app, as every deployment runs it: a real `mlflow server --app-name
basic-auth`, the users job creating (then re-keying) the roles' logins as the admin, the trainer's login
training and registering, the reader's login loading and scoring but refused a write with a clear error,
and no request at all without a login."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shipyard.config import Settings
from shipyard.errors import RegistryError
from shipyard.orchestration.mlflow_users import auth_config
from shipyard.pipeline import run_training
from shipyard.registry import ModelRegistry
from tests.conftest import ConfigFactory
from tests.integration.conftest import free_port, running_server

pytestmark = pytest.mark.integration


def server_env(root: Path, admin: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))},
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Iterator[tuple[str, str]]:
    """A real basic-auth MLflow server; yields its URL and the admin password made for it."""
    root = tmp_path_factory.mktemp("mlflow-auth")
    shutil.copy(migrated_store, root / "server.db")
    (root / "basic_auth.ini").write_text(auth_config(f"sqlite:///{root / 'users.db'}"))
    admin = secrets.token_urlsafe(18)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", (root / "artifacts").as_uri(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with running_server(command, server_env(root, admin), root / "server.log", url, timeout=120) as started:
        yield started, admin


def users_job(url: str, **passwords: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
    env.update({"MLFLOW_TRACKING_URI": url, **passwords})
    return subprocess.run(
        [sys.executable, "-m", "shipyard.orchestration.mlflow_users"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def login(monkeypatch: pytest.MonkeyPatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def test_roles_log_in_as_themselves(
    server: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, iris_config: ConfigFactory
) -> None:
    url, admin = server
    trainer, reader = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    roles = {
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin,
        "SHIPYARD_MLFLOW_TRAINER_PASSWORD": trainer,
        "SHIPYARD_MLFLOW_READER_PASSWORD": reader,
    }
    first = users_job(url, **roles)
    assert first.returncode == 0, first.stderr
    assert "shipyard-trainer: created" in first.stdout and "shipyard-reader: created" in first.stdout
    assert not any(p in first.stdout + first.stderr for p in roles.values())  # no password printed
    # a second run (a redeploy with a rotated reader password) re-keys instead of failing
    reader = secrets.token_urlsafe(18)
    again = users_job(url, **{**roles, "SHIPYARD_MLFLOW_READER_PASSWORD": reader})
    assert again.returncode == 0 and "shipyard-reader: password set" in again.stdout, again.stderr
    wrong = users_job(url, **{**roles, "MLFLOW_AUTH_ADMIN_PASSWORD": "not-the-admin-password"})
    assert wrong.returncode == 2 and "refused the admin (HTTP 401)" in wrong.stderr
    short = users_job(url, **{**roles, "SHIPYARD_MLFLOW_TRAINER_PASSWORD": "short"})
    assert (
        short.returncode == 2 and "SHIPYARD_MLFLOW_TRAINER_PASSWORD: at least 12 characters" in short.stderr
    )

    search = f"{url}/api/2.0/mlflow/experiments/search"
    assert httpx.get(search, params={"max_results": 1}).status_code == 401  # no login, no answer

    settings = Settings(home=tmp_path, tracking_uri=url, artifact_location="")
    login(monkeypatch, "shipyard-trainer", trainer)
    run_training(iris_config(), settings)  # an experiment, a run, artifacts, a version, aliases

    login(monkeypatch, "shipyard-reader", reader)
    registry = ModelRegistry(settings)
    loaded = registry.load("iris", "champion")
    assert loaded.version == "1" and loaded.model is not None
    with pytest.raises(RegistryError, match=r"permission denied to user 'shipyard-reader'.*\(403\)"):
        run_training(iris_config(), settings)
    login(monkeypatch, "shipyard-reader", "wrong-password")
    with pytest.raises(RegistryError, match="asks for a login"):
        ModelRegistry(settings).load("iris", "champion")
