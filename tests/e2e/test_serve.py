"""The real service process (`shipyard serve` on uvicorn) against a real store: three protocols agree,
and a promotion under steady traffic switches versions with zero failed requests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import shifted_iris_rows
from tests.e2e.conftest import SHIPYARD, Runner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.5, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2.0},
    {"sepal_length": 5.9, "sepal_width": 2.8, "petal_length": 4.3, "petal_width": 1.3},
]
COLUMNS = list(ROWS[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real `shipyard serve` (or, with ``role="monitor"``, `shipyard monitor`) process on a free port."""

    def __init__(self, workspace: Path, env: dict[str, str], role: str = "serve") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workspace / f"{role}-{self.port}.log").open("w")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING"))}
        self.proc = subprocess.Popen(
            [SHIPYARD, role, "--port", str(self.port), "--models", "iris"],
            cwd=workspace,
            env={**base, "MLFLOW_DISABLE_TELEMETRY": "true", **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.logfile = workspace / f"{role}-{self.port}.log"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.logfile.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after {timeout} s: {self.logfile.read_text()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return int(self.proc.returncode)


@pytest.fixture
def trained(shipyard: Runner) -> None:
    result = shipyard("train", "-c", "configs/iris.yaml", "-q")
    assert result.code == 0, result.stderr


@pytest.fixture
def server(workspace: Path, trained: None) -> Iterator[Server]:
    srv = Server(workspace, {"SHIPYARD_AUTH_ENABLED": "false", "SHIPYARD_RELOAD_INTERVAL_SECONDS": "1"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def test_three_protocols_give_identical_answers(server: Server) -> None:
    own = httpx.post(f"{server.url}/predict", json={"records": ROWS}).json()["predictions"]
    mlflow_split = {"dataframe_split": {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in ROWS]}}
    mlflow_answer = httpx.post(f"{server.url}/invocations", json=mlflow_split).json()["predictions"]
    tensors = [{"name": c, "shape": [3], "datatype": "FP64", "data": [r[c] for r in ROWS]} for c in COLUMNS]
    v2 = httpx.post(f"{server.url}/v2/models/iris/infer", json={"inputs": tensors}).json()["outputs"][0][
        "data"
    ]
    assert own == mlflow_answer == v2 == ["setosa", "virginica", "versicolor"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert "shipyard_predictions_total" in httpx.get(f"{server.url}/metrics").text


def test_promotion_under_traffic_switches_with_zero_failures(server: Server, shipyard: Runner) -> None:
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            deadline = time.monotonic() + 90
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    response = http.post(f"{server.url}/predict", json=ROWS[0])
                    seen.append((response.status_code, response.json().get("version", "?")))
                except httpx.HTTPError as exc:
                    seen.append((0, type(exc).__name__))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(1.0)
        # the same config trains an equally good model: the gate promotes it to champion (version 2)
        result = shipyard("train", "-c", "configs/iris.yaml", "-q")
        assert result.code == 0, result.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(v == "2" for _, v in seen[-5:]):
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    statuses = {s for s, _ in seen}
    versions = [v for _, v in seen]
    assert statuses == {200}, ([x for x in seen if x[0] != 200][:5], server.logfile.read_text()[-4000:])
    assert versions[0] == "1" and versions[-1] == "2"
    # once switched, never back
    assert "1" not in versions[versions.index("2") :]
    assert len(seen) > 20


def test_auth_on_and_graceful_shutdown(workspace: Path, trained: None, shipyard: Runner) -> None:
    secret = "e2e-" + "s" * 40
    srv = Server(workspace, {"SHIPYARD_JWT_SECRET": secret, "SHIPYARD_RELOAD_INTERVAL_SECONDS": "0"})
    try:
        srv.wait_ready()
        assert httpx.post(f"{srv.url}/predict", json=ROWS[0]).status_code == 401
        minted = subprocess.run(
            [SHIPYARD, "token", "create", "--scope", "predict", "--ttl", "5m"],
            env={**os.environ, "SHIPYARD_JWT_SECRET": secret},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        ok = httpx.post(f"{srv.url}/predict", json=ROWS[0], headers={"authorization": f"Bearer {minted}"})
        assert ok.status_code == 200, srv.logfile.read_text()[-4000:]
    finally:
        code = srv.stop()
    # SIGTERM: uvicorn stops accepting, finishes in-flight requests, runs the lifespan's shutdown, then
    # re-raises the signal so the exit status says why it stopped
    assert code in (0, -signal.SIGTERM)
    log = srv.logfile.read_text()
    assert '"message": "shutdown complete"' in log
    assert secret not in log and minted not in log
    access = [json.loads(line) for line in log.splitlines() if '"shipyard.access"' in line]
    assert any(a["route"] == "/predict" and a["status"] == 200 and a["request_id"] for a in access)


def test_shifted_traffic_is_logged_and_shows_as_drift(server: Server, shipyard: Runner) -> None:
    """Traffic through the real service lands in the prediction log; `shipyard drift` reads it."""
    rng = __import__("numpy").random.default_rng(0)
    with httpx.Client(timeout=10) as http:
        for _ in range(60):
            rows = shifted_iris_rows(rng, 5)
            assert http.post(f"{server.url}/predict", json={"records": rows}).status_code == 200
    server.stop()  # graceful shutdown flushes the log
    result = shipyard("drift", "iris", "--window", "300", "-o", "drift.json", "--fail-on-drift")
    assert result.code == 10, result.stdout + result.stderr
    report = json.loads((server.logfile.parent / "drift.json").read_text())
    assert report["current_rows"] == 300
    assert {"petal_length", "petal_width"} <= set(report["drifted_features"])
    assert shipyard("drift", "iris", "--since", "soon").code == 2
