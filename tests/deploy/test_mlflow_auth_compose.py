"""The Compose stack's MLflow, run for real: the mlflow service's own command (its auth config written
from MLFLOW_AUTH_DATABASE_URI, then `mlflow server --app-name=basic-auth` with the service's options)
on a throwaway PostgreSQL database that holds both the tracking store and the users, then the mlflow-users
service's command. Shows the two share one database without clashing (each its own alembic table), that
/health stays open for the health check while everything else needs a login, and that the role users the
job makes read and write as the clients expect. Only the address, port and artifact folder are moved."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_container_files import COMPOSE, compose_argv, environment, load_compose

pytestmark = [pytest.mark.deploy, pytest.mark.slow, pytest.mark.timeout(300)]

VENV_BIN = str(Path(sys.executable).parent)  # `python` and `mlflow` as the image has them on PATH


@dataclass(frozen=True)
class Server:
    url: str
    store: str
    passwords: dict[str, str]  # the .env values: admin, trainer, reader, secret key
    root: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def moved(argv: list[str], port: int, artifacts: Path) -> list[str]:
    """The service's command with what only makes sense in the container pointed at this machine."""
    replace = {
        "--host=": "--host=127.0.0.1",
        "--port=": f"--port={port}",
        "--artifacts-destination=": f"--artifacts-destination={artifacts.as_uri()}",
    }
    out = []
    for arg in argv:
        prefix = next((p for p in replace if arg.startswith(p)), None)
        out.append(replace[prefix] if prefix else arg)
    assert out != argv
    return out


def base_env(root: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHIPYARD_"))}
    return {
        **keep,
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(root),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def call(
    url: str, path: str, login: tuple[str, str] | None = None, body: dict[str, Any] | None = None
) -> int:
    headers = {"Content-Type": "application/json"}
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
    request = urllib.request.Request(
        f"{url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def experiment_id(url: str, login: tuple[str, str], name: str) -> str:
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/experiments/create",
        data=json.dumps({"name": name}).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(":".join(login).encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["experiment_id"])


def answers(url: str) -> bool:
    try:
        return call(url, "/health") == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE)


@pytest.fixture(scope="module")
def server(
    compose: dict[str, Any], postgres: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("compose-mlflow")
    store = postgres.create_database(
        f"mlflow_{secrets.token_hex(4)}", f"mlflow_{secrets.token_hex(4)}", secrets.token_hex(16)
    )
    passwords = {
        "MLFLOW_AUTH_ADMIN_PASSWORD": secrets.token_hex(32),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        "SHIPYARD_MLFLOW_TRAINER_PASSWORD": secrets.token_hex(32),
        "SHIPYARD_MLFLOW_READER_PASSWORD": secrets.token_hex(32),
    }
    service = compose["services"]["mlflow"]
    declared = environment(service)
    port = free_port()
    env = {
        **base_env(root),
        # the service's own variables, with the values .env and the stack would give them
        **{k: v for k, v in declared.items() if "${" not in v and "/tmp/" not in v},
        "MLFLOW_BACKEND_STORE_URI": store,
        "MLFLOW_AUTH_DATABASE_URI": store,
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),  # the tmpfs
        "MLFLOW_AUTH_ADMIN_PASSWORD": passwords["MLFLOW_AUTH_ADMIN_PASSWORD"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": passwords["MLFLOW_FLASK_SERVER_SECRET_KEY"],
    }
    assert set(declared) == set(env) & set(declared)
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        moved(compose_argv(service), port, root / "artifacts"),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow did not come up: {(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(url, store, passwords, root)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def run_users_job(compose: dict[str, Any], server: Server) -> subprocess.CompletedProcess[str]:
    service = compose["services"]["mlflow-users"]
    env = {
        **base_env(server.root),
        **{k: server.passwords.get(k, v) for k, v in environment(service).items()},
        "MLFLOW_TRACKING_URI": server.url,
    }
    return subprocess.run(
        compose_argv(service), env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_health_is_open_and_everything_else_needs_a_login(server: Server) -> None:
    assert call(server.url, "/health") == 200
    assert call(server.url, "/api/2.0/mlflow/experiments/search?max_results=1") == 401
    admin = ("admin", server.passwords["MLFLOW_AUTH_ADMIN_PASSWORD"])
    assert call(server.url, "/api/2.0/mlflow/experiments/search?max_results=1", admin) == 200
    assert call(server.url, "/api/2.0/mlflow/experiments/search?max_results=1", ("admin", "x" * 16)) == 401
    config = server.root / "basic_auth.ini"
    assert config.stat().st_mode & 0o777 == 0o600
    assert f"database_uri = {server.store}" in config.read_text()


def test_the_users_job_makes_the_roles_and_reruns_safely(compose: dict[str, Any], server: Server) -> None:
    first = run_users_job(compose, server)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "MLflow user shipyard-trainer: created",
        "MLflow user shipyard-reader: created",
    ]
    again = run_users_job(compose, server)
    assert again.returncode == 0, again.stderr
    assert "MLflow user shipyard-reader: password set" in again.stdout

    trainer = ("shipyard-trainer", server.passwords["SHIPYARD_MLFLOW_TRAINER_PASSWORD"])
    reader = ("shipyard-reader", server.passwords["SHIPYARD_MLFLOW_READER_PASSWORD"])
    # the trainer makes an experiment (MLflow gives its creator MANAGE on it); the reader sees it but
    # cannot write to it (READ, the config's default_permission)
    experiment = experiment_id(server.url, trainer, f"compose-{secrets.token_hex(4)}")
    assert call(server.url, f"/api/2.0/mlflow/experiments/get?experiment_id={experiment}", reader) == 200
    tag = {"experiment_id": experiment, "key": "k", "value": "v"}
    assert call(server.url, "/api/2.0/mlflow/experiments/set-experiment-tag", reader, tag) == 403
    assert call(server.url, "/api/2.0/mlflow/runs/create", reader, {"experiment_id": experiment}) == 403
    assert call(server.url, "/api/2.0/mlflow/experiments/set-experiment-tag", trainer, tag) == 200

    # the tracking store and the users live side by side in the one database
    import psycopg

    with psycopg.connect(server.store.replace("postgresql+psycopg://", "postgresql://")) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"alembic_version", "alembic_version_auth", "experiments", "users"} <= tables
        users = {r[0] for r in conn.execute("SELECT username FROM users")}
    assert users == {"admin", "shipyard-trainer", "shipyard-reader"}


def test_the_users_job_says_why_when_the_admin_is_refused(compose: dict[str, Any], server: Server) -> None:
    wrong = Server(
        server.url,
        server.store,
        {**server.passwords, "MLFLOW_AUTH_ADMIN_PASSWORD": secrets.token_hex(32)},
        server.root,
    )
    refused = run_users_job(compose, wrong)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "refused the admin" in line and wrong.passwords["MLFLOW_AUTH_ADMIN_PASSWORD"] not in line
