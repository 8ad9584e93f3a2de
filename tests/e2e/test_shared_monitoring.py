"""The monitoring loop as deployed, on real processes: PostgreSQL, an `mlflow server` on it, three
`shipyard serve` replicas and one `shipyard monitor`, all on one shared monitoring store.

A client sends 30,000+ predictions spread over the replicas and labels for a sample of them to *other*
replicas than the ones that answered. Then: every acknowledged prediction is in the store exactly once;
the labels are joined; the monitor's live accuracy is the accuracy of the stored rows; the unshifted
phase keeps the drift gauge at 0 and a shifted phase moves it to 1 within two monitor intervals; a
replica stopped with SIGTERM under load loses nothing it acknowledged, one killed with SIGKILL loses at
most its unflushed buffer; and `shipyard retrain --if-drift` learns from the labels in the store.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.config.loading import load_config
from shipyard.data import DataLoader
from shipyard.monitoring.store import MonitoringStore
from tests.conftest import shifted_iris_rows
from tests.e2e.conftest import SHIPYARD
from tests.e2e.test_serve import Server
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
INTERVAL = 4.0  # the monitor's round interval in this test
WRITER_INTERVAL = 0.1  # the prediction log's drain interval (PredictionLog default)
# What a SIGKILL may lose: the entries buffered since the writer's last drain began, i.e. answers given
# in the last WRITER_INTERVAL plus the time one write to PostgreSQL takes (a second is generous here).
KILL_LOSS_SECONDS = 1.0


@dataclass
class Ack:
    replica: int
    at: float  # time.monotonic() when the answer arrived
    prediction: str
    truth: str | None


@dataclass
class Traffic:
    """Answers the client received, by request id; replicas the client saw go away."""

    acks: dict[str, Ack] = field(default_factory=dict)
    down: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_mlflow(root: Path, backend: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", backend,
        "--artifacts-destination", (root / "artifacts").as_uri(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = (root / "mlflow.log").open("w")
    proc = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(root / 'mlflow.log').read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server not up in 120 s: {(root / 'mlflow.log').read_text()[-3000:]}")


def send(
    traffic: Traffic,
    replicas: list[Server],
    rows: list[tuple[dict[str, float], str | None]],
    prefix: str,
    start: int,
    on_progress: Any = None,
) -> None:
    """One client thread: single-row requests, round robin over the replicas still up; a request a
    replica did not answer is not acknowledged (and is sent again, under a new id, elsewhere)."""
    connections: dict[int, http.client.HTTPConnection] = {}
    for i, (row, truth) in enumerate(rows):
        body = json.dumps(row).encode()
        attempt = 0
        while True:
            live = [k for k in range(len(replicas)) if k not in traffic.down]
            k = live[(start + i + attempt) % len(live)]
            rid = f"{prefix}-{i}-{attempt}"
            try:
                connection = connections.get(k) or http.client.HTTPConnection(
                    "127.0.0.1", replicas[k].port, timeout=10
                )
                connections[k] = connection
                connection.request(
                    "POST", "/predict", body, {"content-type": "application/json", "x-request-id": rid}
                )
                response = connection.getresponse()
                payload = response.read()
            except OSError:
                connections.pop(k, None)
                if replicas[k].proc.poll() is not None or attempt > 3:
                    with traffic.lock:
                        traffic.down.add(k)
                attempt += 1
                continue
            if response.status != 200:  # a replica shutting down answers 503: not acknowledged
                connections.pop(k, None)
                attempt += 1
                continue
            at = time.monotonic()
            prediction = json.loads(payload)["predictions"][0]
            with traffic.lock:
                traffic.acks[rid] = Ack(k, at, prediction, truth)
            break
        if on_progress is not None:
            on_progress(i)


def run_clients(
    traffic: Traffic,
    replicas: list[Server],
    rows: list[tuple[dict[str, float], str | None]],
    prefix: str,
    threads: int = 6,
    on_progress: Any = None,
) -> None:
    parts = [rows[t::threads] for t in range(threads)]
    workers = [
        threading.Thread(
            target=send,
            args=(traffic, replicas, part, f"{prefix}{t}", t),
            kwargs={"on_progress": on_progress if t == 0 else None},
        )
        for t, part in enumerate(parts)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(600)
        assert not w.is_alive(), "a client thread did not finish in 10 minutes"


def get(server: Server, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


def gauge(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = re.escape(f"{name}{{{wanted}}}" if labels else name)
    match = re.search(rf"^{series} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def rounds(monitor: Server) -> float:
    return gauge(get(monitor, "/metrics")[1], "shipyard_monitor_runs_total") or 0.0  # type: ignore[arg-type]


def test_replicas_share_one_store_and_the_monitor_closes_the_loop(workspace: Path, postgres: Any) -> None:
    backend = postgres.create_database("e2e_mlflow", "e2e_mlflow", secrets.token_hex(16))
    store_url = postgres.create_database("e2e_shipyard", "e2e_shipyard", secrets.token_hex(16))
    mlflow, tracking = start_mlflow(workspace, backend)
    common = {"MLFLOW_TRACKING_URI": tracking, "SHIPYARD_MONITORING_URL": store_url}
    servers: list[Server] = []
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING"))}
        trained = subprocess.run(
            [SHIPYARD, "train", "-c", "configs/iris.yaml", "-q"],
            cwd=workspace,
            env={**env, **common, "MLFLOW_DISABLE_TELEMETRY": "true"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert trained.returncode == 0, trained.stderr
        replica_env = {
            **common,
            "SHIPYARD_AUTH_ENABLED": "false",
            "SHIPYARD_MONITOR_IN_PROCESS": "false",
            "SHIPYARD_ACCESS_LOG": "false",
            "SHIPYARD_LOG_LEVEL": "INFO",
        }
        replicas = [Server(workspace, replica_env) for _ in range(3)]
        monitor = Server(
            workspace,
            {
                **common,
                "SHIPYARD_DRIFT_INTERVAL_SECONDS": str(INTERVAL),
                "SHIPYARD_DRIFT_WINDOW": "3000",
                "SHIPYARD_QUALITY_WINDOW": "100000",
            },
            role="monitor",
        )
        servers = [*replicas, monitor]
        for server in servers:
            server.wait_ready(timeout=180)

        rng = np.random.default_rng(5)
        iris = DataLoader(load_config(workspace / "configs/iris.yaml").dataset.source).load().frame
        picks = iris.sample(21_000, replace=True, random_state=5)
        calm = [({c: float(r[c]) for c in FEATURES}, str(r["species"])) for _, r in picks.iterrows()]
        traffic = Traffic()

        # phase 1: traffic like the training data, spread over the three replicas
        run_clients(traffic, replicas, calm, "calm")
        assert len(traffic.acks) == 21_000 and not traffic.down
        first = rounds(monitor)
        deadline = time.monotonic() + 4 * INTERVAL + 30
        while rounds(monitor) < first + 2 and time.monotonic() < deadline:  # two full rounds on calm data
            time.sleep(0.5)
        assert rounds(monitor) >= first + 2, "the monitor did not run two rounds"
        text = get(monitor, "/metrics")[1]
        assert gauge(text, "shipyard_dataset_drift", model="iris") == 0.0, text

        # labels for a sample, each posted to another replica than the one that answered
        ids = sorted(traffic.acks)
        sample = [ids[i] for i in rng.choice(len(ids), 3000, replace=False)]
        for start in range(0, len(sample), 100):
            batch = sample[start : start + 100]
            target = (traffic.acks[batch[0]].replica + 1) % 3
            items = [
                {"request_id": rid, "label": traffic.acks[rid].truth}
                for rid in batch
                if traffic.acks[rid].replica != target
            ]
            connection = http.client.HTTPConnection("127.0.0.1", replicas[target].port, timeout=30)
            connection.request(
                "POST", "/feedback", json.dumps({"feedback": items}), {"content-type": "application/json"}
            )
            answer = json.loads(connection.getresponse().read())
            assert answer["stored_rows"] == len(items) and answer["matched_rows"] == 0, answer
        labelled = {
            rid for start in range(0, 3000, 100) for rid in sample[start : start + 100]
            if traffic.acks[rid].replica != (traffic.acks[sample[start]].replica + 1) % 3
        }  # fmt: skip
        now = rounds(monitor)
        while rounds(monitor) < now + 1 and time.monotonic() < deadline + 60:
            time.sleep(0.5)
        store = MonitoringStore.open(store_url)
        pairs = store.labelled_pairs("iris", window=100_000)[("1", "champion")]
        joined = len(pairs.truth)
        assert joined >= 0.999 * len(labelled), f"{joined} of {len(labelled)} labels joined"
        direct = float(np.mean([p == t for p, t in zip(pairs.predicted, pairs.truth, strict=True)]))
        expected = np.mean([traffic.acks[r].prediction == traffic.acks[r].truth for r in labelled])
        assert direct == pytest.approx(expected)  # the store holds what the client was told
        text = get(monitor, "/metrics")[1]
        live = gauge(
            text, "shipyard_live_quality", metric="accuracy", model="iris", variant="champion", version="1"
        )
        assert live == pytest.approx(direct), text
        quality = json.loads(get(monitor, "/models/iris/quality")[1])
        assert quality["results"][0]["metrics"]["n"] == joined

        # phase 2: shifted traffic; one replica stopped with SIGTERM, another killed with SIGKILL
        shifted = [(row, None) for row in shifted_iris_rows(np.random.default_rng(9), 10_500)]
        kills: dict[str, float] = {}

        def stop_replicas(i: int) -> None:
            if i == 400 and "term" not in kills:
                kills["term"] = time.monotonic()
                os.killpg(replicas[2].proc.pid, signal.SIGTERM)
            if i == 1000 and "kill" not in kills:
                kills["kill"] = time.monotonic()
                os.killpg(replicas[1].proc.pid, signal.SIGKILL)

        run_clients(traffic, replicas, shifted, "shift", on_progress=stop_replicas)
        ended = time.monotonic()
        assert {"term", "kill"} <= set(kills) and traffic.down == {1, 2}
        replicas[2].proc.wait(60)  # uvicorn re-raises SIGTERM after its graceful shutdown
        assert "shutdown complete" in replicas[2].logfile.read_text()  # the log was drained
        assert len(traffic.acks) >= 31_500  # predictions acknowledged, one row each

        while time.monotonic() < ended + 2 * INTERVAL + 3:  # two intervals (+ one round's own time)
            if gauge(get(monitor, "/metrics")[1], "shipyard_dataset_drift", model="iris") == 1.0:
                break
            time.sleep(0.25)
        drift_seconds = time.monotonic() - ended
        assert drift_seconds <= 2 * INTERVAL + 3, f"drift gauge not 1 after {drift_seconds:.1f} s"
        report = json.loads(get(monitor, "/models/iris/drift")[1])
        assert report["dataset_drift"] and {"petal_length", "petal_width"} <= set(report["drifted_features"])

        # every acknowledged prediction exactly once; the SIGKILLed replica within its stated bound
        replicas[0].stop()
        counts = store.count_requests("iris").set_index("request_id")["n"]
        assert counts.max() == 1, counts[counts > 1].head()  # nothing written twice
        lost = [rid for rid in traffic.acks if rid not in counts.index]
        for rid in lost:
            ack = traffic.acks[rid]
            assert ack.replica == 1, f"{rid} answered by replica {ack.replica} is not in the store"
            assert ack.at >= kills["kill"] - KILL_LOSS_SECONDS, f"{rid} was acknowledged long before the kill"
        assert len(lost) <= 10_000  # and never more than the buffer holds (SHIPYARD_PREDICTION_LOG_QUEUE)
        print(f"\n[shared store] acknowledged {len(traffic.acks)}, lost to SIGKILL {len(lost)}, "
              f"drift gauge after {drift_seconds:.1f} s, {joined} labels joined")  # fmt: skip

        # retraining learns from the labels in the shared store
        retrained = subprocess.run(
            [SHIPYARD, "retrain", "iris", "--if-drift", "-o", "retrain.json"],
            cwd=workspace,
            env={**env, **common, "MLFLOW_DISABLE_TELEMETRY": "true"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert retrained.returncode == 0, retrained.stdout + retrained.stderr
        outcome = json.loads((workspace / "retrain.json").read_text())
        assert outcome["ran"] and outcome["feedback_rows"] == joined
        store.close()
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.stop()
        os.killpg(mlflow.pid, signal.SIGTERM)
        try:
            mlflow.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(mlflow.pid, signal.SIGKILL)
