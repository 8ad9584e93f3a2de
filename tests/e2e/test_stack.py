"""`shipyard stack up|status|down`: the Compose stack as local processes, end to end.

The whole stack comes up in a temporary workspace on free ports (a real `mlflow server`, the trainer,
`shipyard monitor`, one or more `shipyard serve` processes with auth on, and Debian's Prometheus
scraping them with the repo's rules), is used through its front doors (the registry's REST API, the api
with and without a JWT, the monitor's reports, Prometheus's HTTP API), and goes down leaving no process
and no port behind. Every test stops what it started, even when it fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shipyard.orchestration.stack import read_state
from shipyard.orchestration.stack.processes import group_members, is_running, port_in_use
from tests.conftest import missing_external
from tests.e2e.conftest import SHIPYARD

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STACK = [SHIPYARD, "stack"]
SECRET = "stack-e2e-" + "k" * 40
IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
RULE_GROUPS = {"shipyard-service", "shipyard-model-health"}


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    pytest.fail(f"{what} not seen within {timeout} s (last: {last!r})")


@dataclass
class Stack:
    """The workspace, its ports and environment, and every PID the stack ever recorded."""

    workspace: Path
    mlflow_port: int
    api_port: int
    prometheus_port: int
    monitor_port: int
    env: dict[str, str]
    seen: dict[int, int | None] = field(default_factory=dict)  # pid -> start ticks

    @property
    def state_dir(self) -> Path:
        return self.workspace / ".stack"

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*STACK, *args], cwd=self.workspace, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*STACK, *args],
            cwd=self.workspace,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def services(self) -> dict[str, Any]:
        states = read_state(self.state_dir)
        for s in states:
            if s.pid is not None:
                self.seen[s.pid] = s.start_ticks
        return {s.name: s for s in states}

    def logs(self) -> str:
        folder = self.state_dir / "logs"
        if not folder.is_dir():
            return ""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in folder.glob("*.log")
        )

    def mlflow_credentials(self) -> dict[str, str]:
        """What `up` generated for the MLflow server and its users (variable -> value)."""
        lines = (self.state_dir / "mlflow" / "credentials.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    def kill_leftovers(self) -> None:
        """Last resort after `stack down`: SIGKILL any process group the stack recorded that still runs."""
        self.services()
        for pid, ticks in self.seen.items():
            if is_running(pid, ticks) or group_members(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def stack(workspace: Path, migrated_store: Path) -> Iterator[Stack]:
    # a 20-tree housing forest: the same flow, seconds instead of most of a minute
    housing = workspace / "configs" / "housing.yaml"
    config = yaml.safe_load(housing.read_text())
    config["model"]["params"]["n_estimators"] = 20
    housing.write_text(yaml.safe_dump(config, sort_keys=False))
    # an already migrated SQLite store for the server (a fresh one takes seconds to migrate)
    (workspace / ".stack" / "mlflow").mkdir(parents=True)
    shutil.copy(migrated_store, workspace / ".stack" / "mlflow" / "mlflow.db")
    mlflow_port, api_port, prometheus_port, monitor_port = free_ports(4)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY", "MLFLOW_BACKEND"))
    }
    env.update(
        {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "SHIPYARD_JWT_SECRET": SECRET,
            # the Compose file's variable names
            "MLFLOW_PORT": str(mlflow_port),
            "API_PORT": str(api_port),
            "PROMETHEUS_PORT": str(prometheus_port),
            "MONITOR_PORT": str(monitor_port),
        }
    )
    st = Stack(workspace, mlflow_port, api_port, prometheus_port, monitor_port, env)
    try:
        yield st
    finally:
        try:
            st.services()
            st.run("down", "--timeout", "15", timeout=120)
        finally:
            st.kill_leftovers()


def require_prometheus() -> None:
    if shutil.which("prometheus") is None:
        missing_external("prometheus is not installed (Debian: apt-get install prometheus)")


def test_stack_up_train_predict_scrape_down(stack: Stack) -> None:
    """The single-process stack (--no-monitor): one api that computes drift and quality itself."""
    require_prometheus()
    up = stack.run("up", "--no-monitor", "--scrape-interval", "1s")
    assert up.returncode == 0, up.stdout + up.stderr + stack.logs()
    services = stack.services()
    assert set(services) == {"mlflow", "mlflow-users", "trainer", "api", "prometheus"}
    assert services["mlflow-users"].exit_code == 0
    assert services["trainer"].exit_code == 0
    servers = [services[name] for name in ("mlflow", "api", "prometheus")]
    assert all(s.running() for s in servers)
    assert [s.port for s in servers] == [stack.mlflow_port, stack.api_port, stack.prometheus_port]
    assert not port_in_use("127.0.0.1", stack.monitor_port)  # no monitor
    assert (stack.state_dir / "monitoring.db").is_file()  # the api's store, in the state folder

    # MLflow runs behind its basic-auth app: nothing without a login, the api's reader login reads and
    # cannot write, the credentials were generated into an owner-only file and appear in no log
    registry = stack.url(stack.mlflow_port)
    credentials = stack.mlflow_credentials()
    reader = ("shipyard-reader", credentials["SHIPYARD_MLFLOW_READER_PASSWORD"])
    search = f"{registry}/api/2.0/mlflow/experiments/search"
    assert httpx.get(search, params={"max_results": 1}).status_code == 401
    assert httpx.get(search, params={"max_results": 1}, auth=("shipyard-reader", "wrong")).status_code == 401
    assert httpx.get(search, params={"max_results": 1}, auth=reader).status_code == 200
    iris = httpx.get(
        f"{registry}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "iris"}, auth=reader
    )
    assert iris.status_code == 200, (
        iris.text
    )  # the reader reads the trainer's experiment, but cannot write it
    experiment = iris.json()["experiment"]["experiment_id"]
    run = httpx.post(
        f"{registry}/api/2.0/mlflow/runs/create", json={"experiment_id": experiment}, auth=reader
    )
    assert run.status_code == 403, run.text
    assert (stack.state_dir / "mlflow" / "credentials.env").stat().st_mode & 0o777 == 0o600
    said = stack.logs() + (stack.state_dir / "state.json").read_text()
    assert not any(secret in said for secret in credentials.values())

    # the trainer registered both champions on the server, and their artifacts went through it
    for model in ("iris", "housing"):
        answer = httpx.get(
            f"{registry}/api/2.0/mlflow/registered-models/alias",
            params={"name": model, "alias": "champion"},
            auth=reader,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"]["version"] == "1"
    assert any((stack.state_dir / "mlflow" / "artifacts").rglob("MLmodel"))
    assert not (stack.workspace / "mlruns").exists() and not (stack.workspace / "mlartifacts").exists()

    # the api runs with auth on: 401 without a token, an answer with one minted from the same secret
    api = stack.url(stack.api_port)
    assert httpx.post(f"{api}/predict", json=IRIS_ROW).status_code == 401
    token = mint_token(stack)
    answer = httpx.post(f"{api}/predict", json=IRIS_ROW, headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == ["setosa"]

    # the real Prometheus scrapes /metrics and evaluates the repo's rules
    prometheus = stack.url(stack.prometheus_port)

    def query(expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    up_metric = wait_for(lambda: query('up{job="shipyard"}'), 30, 'up{job="shipyard"}')
    assert up_metric[0]["value"][1] == "1"
    assert up_metric[0]["metric"]["instance"] == f"127.0.0.1:{stack.api_port}"
    predicted = wait_for(
        lambda: query('sum(shipyard_predictions_total{model="iris"})'), 30, "the prediction in Prometheus"
    )
    assert float(predicted[0]["value"][1]) >= 1

    def evaluated_groups() -> dict[str, list[dict[str, Any]]]:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
        loaded = {g["name"]: g["rules"] for g in groups}
        done = set(loaded) >= RULE_GROUPS and all(
            r["health"] == "ok" and not r["lastEvaluation"].startswith("0001")
            for name in RULE_GROUPS
            for r in loaded[name]
        )
        return loaded if done else {}

    groups = wait_for(evaluated_groups, 30, "the shipyard rule groups evaluated with health ok")
    assert {r["name"] for r in groups["shipyard-service"]} >= {
        "ShipyardHighErrorRate",
        "ShipyardModelLoadFailures",
    }
    # a rule's expression over the scraped series: the model-loaded timestamp the stale-model alert uses
    assert query("time() - shipyard_model_loaded_timestamp_seconds < 3600")

    # status shows what runs
    shown = stack.run("status", "-o", "status.json")
    assert shown.returncode == 0, shown.stderr
    status = {s["name"]: s for s in json.loads((stack.workspace / "status.json").read_text())}
    assert {n: (s["state"], s["healthy"]) for n, s in status.items()} == {
        "mlflow": ("running", True),
        "mlflow-users": ("done", None),
        "trainer": ("done", None),
        "api": ("running", True),
        "prometheus": ("running", True),
    }

    # down stops every process (children too) and frees every port; a second down is a no-op
    pids = dict(stack.seen)
    down = stack.run("down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.count(": stopped") == 3, down.stdout
    for pid, ticks in pids.items():
        assert not is_running(pid, ticks), f"pid {pid} still runs"
        assert not group_members(pid), f"process group {pid} still has members"
    for port in (stack.mlflow_port, stack.api_port, stack.prometheus_port):
        assert not port_in_use("127.0.0.1", port), f"port {port} still taken"
    again = stack.run("down")
    assert again.returncode == 0 and "no stack running" in again.stdout
    assert "no stack running" in stack.run("status").stdout


def test_stack_with_the_monitor_and_api_replicas(stack: Stack) -> None:
    """The default stack with two api processes: both `shipyard serve` replicas and the one `shipyard
    monitor` share the state folder's monitoring store, so a label posted to the replica that did not
    answer counts in the monitor's live quality; Prometheus scrapes all three; status lists each and
    down stops each. Needs `shipyard monitor` (issue 12)."""
    require_prometheus()
    taken = {stack.mlflow_port, stack.prometheus_port, stack.monitor_port}
    stack.api_port = free_consecutive_ports(2, avoid=taken)
    stack.env.update(
        {"API_PORT": str(stack.api_port), "SHIPYARD_MODELS": "iris", "SHIPYARD_DRIFT_INTERVAL_SECONDS": "1"}
    )
    up = stack.run("up", "--api-replicas", "2", "-c", "configs/iris.yaml", "--scrape-interval", "1s")
    assert up.returncode == 0, up.stdout + up.stderr + stack.logs()
    services = stack.services()
    # the start order: the monitor after the trainer, before the api processes
    assert list(services) == ["mlflow", "mlflow-users", "trainer", "monitor", "api-1", "api-2", "prometheus"]
    ports = {name: services[name].port for name in ("monitor", "api-1", "api-2")}
    assert ports == {"monitor": stack.monitor_port, "api-1": stack.api_port, "api-2": stack.api_port + 1}
    assert all(services[name].running() for name in ("mlflow", "monitor", "api-1", "api-2", "prometheus"))
    for name in ("monitor", "api-1", "api-2"):
        assert (stack.state_dir / "logs" / f"{name}.log").is_file()

    monitor = stack.url(stack.monitor_port)
    ready = httpx.get(f"{monitor}/ready", timeout=5)
    assert ready.status_code == 200, ready.text
    assert "monitoring.db" in ready.json()["store"]  # the state folder's store, shared with the replicas

    # each replica answers; each label goes to the other replica than the one that answered
    token = mint_token(stack)
    headers = {"authorization": f"Bearer {token}"}
    replicas = [stack.url(stack.api_port), stack.url(stack.api_port + 1)]
    answered = []
    for api in replicas:
        answer = httpx.post(f"{api}/predict", json=IRIS_ROW, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == ["setosa"]
        answered.append(answer.json()["request_id"])
    for api, request_id in zip(reversed(replicas), answered, strict=True):
        feedback = httpx.post(
            f"{api}/feedback", json={"request_id": request_id, "label": "setosa"}, headers=headers, timeout=10
        )
        assert feedback.status_code == 200, feedback.text
        assert feedback.json()["stored_rows"] == 1

    def joined() -> list[dict[str, Any]]:
        rows = httpx.get(f"{monitor}/models/iris/quality", params={"refresh": "true"}, timeout=10).json()
        return [r for r in rows["results"] if r["metrics"].get("n") == 2]

    (quality,) = wait_for(joined, 60, "both labels joined in the monitor's live quality")
    assert quality["metrics"]["accuracy"] == 1.0

    # Prometheus scrapes both api processes and the monitor, and sees the monitor's gauges
    prometheus = stack.url(stack.prometheus_port)

    def query(expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def instances_up(job: str, count: int) -> dict[str, str]:
        found = {r["metric"]["instance"]: r["value"][1] for r in query(f'up{{job="{job}"}}')}
        return found if len(found) == count and set(found.values()) == {"1"} else {}

    apis = wait_for(lambda: instances_up("shipyard", 2), 30, "both api processes scraped")
    assert set(apis) == {f"127.0.0.1:{stack.api_port}", f"127.0.0.1:{stack.api_port + 1}"}
    monitors = wait_for(lambda: instances_up("shipyard-monitor", 1), 30, "the monitor scraped")
    assert set(monitors) == {f"127.0.0.1:{stack.monitor_port}"}
    accuracy = wait_for(
        lambda: query('shipyard_live_quality{job="shipyard-monitor",model="iris",metric="accuracy"}'),
        30,
        "the monitor's live accuracy in Prometheus",
    )
    assert float(accuracy[0]["value"][1]) == 1.0

    # status lists each process; down stops each by its PID and frees every port
    shown = stack.run("status", "-o", "status.json")
    assert shown.returncode == 0, shown.stderr
    status = {s["name"]: s for s in json.loads((stack.workspace / "status.json").read_text())}
    assert {n: (s["state"], s["healthy"], s["port"]) for n, s in status.items()} == {
        "mlflow": ("running", True, stack.mlflow_port),
        "mlflow-users": ("done", None, None),
        "trainer": ("done", None, None),
        "monitor": ("running", True, stack.monitor_port),
        "api-1": ("running", True, stack.api_port),
        "api-2": ("running", True, stack.api_port + 1),
        "prometheus": ("running", True, stack.prometheus_port),
    }
    pids = dict(stack.seen)
    down = stack.run("down")
    assert down.returncode == 0, down.stderr
    stopped = {
        line.split()[0] for line in down.stdout.splitlines() if line.endswith(")") and ": stopped" in line
    }
    assert stopped == {"mlflow", "monitor", "api-1", "api-2", "prometheus"}, down.stdout
    for pid, ticks in pids.items():
        assert not is_running(pid, ticks), f"pid {pid} still runs"
        assert not group_members(pid), f"process group {pid} still has members"
    for port in (
        stack.mlflow_port,
        stack.monitor_port,
        stack.api_port,
        stack.api_port + 1,
        stack.prometheus_port,
    ):
        assert not port_in_use("127.0.0.1", port), f"port {port} still taken"


def mint_token(stack: Stack) -> str:
    return subprocess.run(
        [SHIPYARD, "token", "create", "--scope", "predict", "--ttl", "5m"],
        cwd=stack.workspace,
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def free_consecutive_ports(count: int, avoid: set[int]) -> int:
    """The first of ``count`` consecutive free ports (the api processes take API_PORT, API_PORT+1, ...)."""
    for _ in range(50):
        (base,) = free_ports(1)
        candidates = range(base, base + count)
        if (
            base + count <= 65535
            and not avoid & set(candidates)
            and not any(port_in_use("127.0.0.1", port) for port in candidates)
        ):
            return base
    pytest.fail(f"no {count} consecutive free ports found in 50 tries")


def test_stack_up_refuses_before_starting_anything(stack: Stack) -> None:
    """A taken port or a missing JWT secret: a clear error, and not one process started."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", stack.api_port))
        taken.listen()
        result = stack.run("up", "--no-prometheus")
    assert result.returncode == 12, result.stdout + result.stderr
    assert f"port in use on 127.0.0.1: {stack.api_port} (api; set API_PORT" in result.stderr
    assert "nothing was started" in result.stderr
    assert not (stack.state_dir / "state.json").exists()

    no_secret = {k: v for k, v in stack.env.items() if k != "SHIPYARD_JWT_SECRET"}
    result = subprocess.run(
        [*STACK, "up"], cwd=stack.workspace, env=no_secret, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "auth on" in result.stderr and "SHIPYARD_JWT_SECRET" in result.stderr
    assert not (stack.state_dir / "state.json").exists()

    if importlib.util.find_spec("psycopg2") is None:  # a PostgreSQL store needs its driver
        result = stack.run("up", "--backend-store-uri", "postgresql://mlflow:hunter2-secret@127.0.0.1/mlflow")
        assert result.returncode == 2 and "psycopg2" in result.stderr, result.stderr
        assert "hunter2" not in result.stdout + result.stderr

    nothing = stack.run("down")
    assert nothing.returncode == 0 and "no stack running" in nothing.stdout


def test_ctrl_c_during_up_stops_what_was_started(stack: Stack) -> None:
    proc = stack.popen("up", "--no-prometheus")
    try:
        # interrupt while the trainer runs: the MLflow server is up by then
        wait_for(lambda: "trainer" in stack.services(), 120, "the trainer starting")
        assert stack.services()["mlflow"].running()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output
    assert "interrupted: stopped what had started:" in output and "mlflow" in output, output
    for pid, ticks in stack.seen.items():
        assert not is_running(pid, ticks), f"pid {pid} still runs"
        assert not group_members(pid), f"process group {pid} still has members"
    assert not port_in_use("127.0.0.1", stack.mlflow_port)
    assert not (stack.state_dir / "state.json").exists()
