"""Integration fixtures: a real MLflow SQLite store per test, and a real `mlflow server` process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.config import Settings


@pytest.fixture
def settings(tmp_path: Path, migrated_store: Path) -> Settings:
    """Settings for a fresh embedded store under ``tmp_path`` (SQLite + local artifacts)."""
    shutil.copy(migrated_store, tmp_path / "mlflow.db")
    return Settings(home=tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with its own store; yields its URL, stops it afterwards."""
    root = tmp_path_factory.mktemp("mlflow-server")
    shutil.copy(migrated_store, root / "server.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination", (root / "artifacts").as_uri(),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with running_server(command, env, root / "server.log", url) as started:
        yield started


@contextlib.contextmanager
def running_server(
    command: list[str], env: dict[str, str], log_path: Path, url: str, timeout: float = 90
) -> Iterator[str]:
    """``command`` (an `mlflow server`) in its own process group, logging to ``log_path``; yields ``url``
    once its /health answers 200, and stops the group afterwards (SIGTERM, then SIGKILL)."""
    log = log_path.open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server not up after {timeout:.0f} s: {log_path.read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
