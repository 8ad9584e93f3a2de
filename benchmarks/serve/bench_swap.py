"""Request latency while the champion alias moves: does a hot swap stall the service?

A temporary store gets two iris versions (``shipyard train`` twice, the second with a smaller forest so
the versions differ). ``shipyard serve --models iris --no-auth`` (one uvicorn worker, pinned with
``taskset -c 0``, alias checks every ``--interval`` seconds, everything else as the service's
defaults) is loaded by ``--clients`` threads of this process (pinned to ``--client-cpu``), each
sending one-row ``POST /predict`` requests back to back on a keep-alive connection and recording when
each request started and how long it took. After a steady stretch the alias is moved ``--swaps``
times, ``--gap`` seconds apart, alternating between the two versions.

A swap window runs from the moment the alias moved to ``--margin`` seconds after the first answer
from the new version (the service settles memory right after the swap); every other request after the
warm-up is steady. Reported for both: requests, p50, p99, p99.9 and max latency in milliseconds, and
how long each swap took to show (alias moved -> first answer from the new version).

Run from the repo root: ``.venv/bin/python benchmarks/serve/bench_swap.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import machine_basics, pin_prefix

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCRUBBED_PREFIXES = ("SHIPYARD_", "MLFLOW_")
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic() when the request was sent
    ms: float
    status: int
    version: str


def child_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "SHIPYARD_HOME": str(home)})
    env.update(extra or {})
    return env


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train_two_versions(shipyard: str, home: Path) -> None:
    """Version 1: the iris config as it is; version 2: a 20-tree forest (so the two answer apart)."""
    shutil.copytree(REPO / "configs", home / "configs")
    small = (home / "configs" / "iris.yaml").read_text().replace("n_estimators: 100", "n_estimators: 20")
    (home / "configs" / "iris-small.yaml").write_text(small)
    for config in ("configs/iris.yaml", "configs/iris-small.yaml"):
        proc = subprocess.run(
            [shipyard, "train", "-c", config, "-q"],
            cwd=home,
            env=child_env(home),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise SystemExit(f"training {config} failed:\n{proc.stdout}\n{proc.stderr}")


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, str]:
    conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = response.read()
    version = json.loads(answer).get("version", "?") if response.status == 200 else "?"
    return response.status, str(version)


def client(port: int, stop: threading.Event, out: list[Sample], until: float) -> None:
    body = json.dumps(ROW).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while not stop.is_set() and time.monotonic() < until:
            started = time.monotonic()
            try:
                status, version = post(conn, body)
            except (OSError, http.client.HTTPException):
                status, version = 0, "?"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            out.append(Sample(started, (time.monotonic() - started) * 1e3, status, version))
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"server not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"requests": 0}
    array = np.asarray(values)
    return {
        "requests": len(values),
        "p50_ms": round(float(np.percentile(array, 50)), 2),
        "p99_ms": round(float(np.percentile(array, 99)), 2),
        "p99.9_ms": round(float(np.percentile(array, 99.9)), 2),
        "max_ms": round(float(array.max()), 2),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    venv = Path(sys.executable).parent
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--swaps", type=int, default=8, help="Alias moves.")
    parser.add_argument("--gap", type=float, default=4.0, help="Seconds between alias moves.")
    parser.add_argument("--steady", type=float, default=8.0, help="Steady seconds before the first move.")
    parser.add_argument("--warmup", type=float, default=2.0, help="First seconds of load, not counted.")
    parser.add_argument("--interval", type=float, default=1.0, help="The service's alias-check interval.")
    parser.add_argument(
        "--margin", type=float, default=1.0, help="Seconds a swap window lasts after it shows."
    )
    parser.add_argument("--clients", type=int, default=4, help="Concurrent client threads.")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--no-taskset", action="store_true", help="Do not pin.")
    parser.add_argument("--shipyard", default=str(venv / "shipyard"))
    parser.add_argument("--label", default="", help="A name for this run in the output (e.g. before/after).")
    parser.add_argument("--output", type=Path, default=None, help="Also write the results as JSON here.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_basics()  # before this process pins itself
    pin, pinned = pin_prefix(args.server_cpu, not args.no_taskset)
    if pin and hasattr(os, "sched_setaffinity") and args.client_cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {args.client_cpu})
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="bench-swap-") as tmp:
        home = Path(tmp)
        train_two_versions(args.shipyard, home)
        registry = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
        registry.set_registered_model_alias("iris", "champion", "1")
        port = free_port()
        log = home / "serve.log"
        env = child_env(home, {"SHIPYARD_RELOAD_INTERVAL_SECONDS": str(args.interval)})
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*pin, args.shipyard, "serve", "--port", str(port), "--models", "iris", "--no-auth"],
                cwd=home,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        samples: list[list[Sample]] = [[] for _ in range(args.clients)]
        stop = threading.Event()
        threads: list[threading.Thread] = []
        swaps: list[tuple[float, float | None, str]] = []
        try:
            wait_ready(port, proc, log)
            total = args.warmup + args.steady + args.swaps * args.gap + 30
            began = time.monotonic()
            threads = [
                threading.Thread(target=client, args=(port, stop, samples[i], began + total), daemon=True)
                for i in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            time.sleep(args.warmup + args.steady)
            version = "1"
            for _ in range(args.swaps):
                version = "2" if version == "1" else "1"
                moved = time.monotonic()
                registry.set_registered_model_alias("iris", "champion", version)
                shown: float | None = None
                deadline = moved + args.gap + 10
                while time.monotonic() < deadline:
                    seen = [s for s in samples[0][-50:] if s.started > moved and s.version == version]
                    if seen:
                        shown = seen[0].started
                        break
                    time.sleep(0.02)
                swaps.append((moved, shown, version))
                time.sleep(max(0.0, moved + args.gap - time.monotonic()))
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=35)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        everything = sorted((s for per in samples for s in per), key=lambda s: s.started)
        windows = [(moved, (shown or moved + args.gap) + args.margin) for moved, shown, _ in swaps]
        counted = [s for s in everything if s.started >= began + args.warmup]
        in_swap = [s for s in counted if any(a <= s.started <= b for a, b in windows)]
        steady = [s for s in counted if not any(a <= s.started <= b for a, b in windows)]
        result = {
            "label": args.label,
            "machine": machine,
            "server": pinned,
            "clients": args.clients,
            "interval_s": args.interval,
            "steady": percentiles([s.ms for s in steady]),
            "swap": percentiles([s.ms for s in in_swap]),
            "failed_requests": sum(1 for s in counted if s.status != 200),
            "swap_seen_after_s": [round(shown - moved, 2) if shown else None for moved, shown, _ in swaps],
            "log_errors": [line for line in log.read_text().splitlines() if '"level": "ERROR"' in line][:5],
        }
    print(json.dumps(result, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["failed_requests"] == 0 and all(result["swap_seen_after_s"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
