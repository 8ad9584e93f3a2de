"""Batch jobs through a real Redis (a redis-server process) and real `shipyard batch worker` processes:
a job runs and writes what score_file writes; auth and path refusals; a failing job retries then goes
dead; a worker SIGKILLed mid-job has its job finished, once, by another worker."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from shipyard.batch import scoring
from shipyard.batch.jobs import JobSpec
from shipyard.batch.queue import BatchQueue
from shipyard.batch.runner import JobRunner, staging_folder
from shipyard.batch.scoring import score_file
from shipyard.config import Settings
from shipyard.config.loading import parse_config
from shipyard.pipeline import run_training
from shipyard.serving import create_app
from shipyard.serving.auth import mint_token
from shipyard.serving.holder import ModelHolder
from tests.conftest import merge, missing_external, raw_config

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

REDIS_SERVER = shutil.which("redis-server")
SECRET = "s" * 40
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

# Runs `shipyard batch worker` through the CLI's entry point (its error handling included). Registers the
# command if the CLI does not have it yet; TEST_FAULT=oserror makes every scoring attempt fail.
LAUNCHER = """
import os, sys
from shipyard.cli.batch import app as batch_app
from shipyard.cli.batch_worker import worker
from shipyard.cli.main import main
if not any(c.callback is worker for c in batch_app.registered_commands):
    batch_app.command("worker")(worker)
if os.environ.get("TEST_FAULT") == "oserror":
    from shipyard.batch import scoring
    def broken(*args, **kwargs):
        raise OSError("disk on fire (injected by the test)")
    scoring.score_file = broken
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server on 127.0.0.1 (no persistence), stopped after the module."""
    if REDIS_SERVER is None:
        missing_external("needs redis-server (Debian package 'redis-server'), not installed on this machine")
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    command = [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    command += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    log = (folder / "redis.log").open("w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60  # a busy machine can take a while to start a process
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(folder / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server not up after 60 s")
            time.sleep(0.1)
        yield port
    finally:
        stop_group(proc)
        log.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Path:
    """An MLflow store with an iris champion (version 1), trained once for the module."""
    home = tmp_path_factory.mktemp("batch-store")
    shutil.copy(migrated_store, home / "mlflow.db")
    cfg = parse_config(merge(raw_config("iris"), {"model": {"params": {"n_estimators": 20}}}), source="t")
    run_training(cfg, Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}"))
    return home


_databases = iter(range(1, 16))


@pytest.fixture
def env(redis_port: int, store: Path, tmp_path: Path) -> dict[str, str]:
    """Settings for one test, as environment variables: its own Redis database, queue and batch root;
    a worker is taken for dead after 2 s of silence and retries wait 0.2 s, doubling."""
    root = tmp_path / "root"
    root.mkdir()
    return {
        "SHIPYARD_HOME": str(store),
        "SHIPYARD_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "SHIPYARD_REDIS_URL": f"redis://127.0.0.1:{redis_port}/{next(_databases)}",
        "SHIPYARD_BATCH_ROOT": str(root),
        "SHIPYARD_BATCH_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        "SHIPYARD_BATCH_WORKER_TIMEOUT_SECONDS": "2",
        "SHIPYARD_BATCH_REQUEUE_CHANCE": "1",
        "SHIPYARD_BATCH_RETRY_BACKOFF_SECONDS": "0.2",
        "SHIPYARD_BATCH_RETRY_MAX_BACKOFF_SECONDS": "1",
        "SHIPYARD_PREDICTION_LOG": "false",
    }


def settings_from(env: dict[str, str], **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "home": env["SHIPYARD_HOME"],
        "tracking_uri": env["SHIPYARD_TRACKING_URI"],
        "redis_url": env["SHIPYARD_REDIS_URL"],
        "batch_root": env["SHIPYARD_BATCH_ROOT"],
        "batch_queue": env["SHIPYARD_BATCH_QUEUE"],
        "batch_worker_timeout_seconds": float(env["SHIPYARD_BATCH_WORKER_TIMEOUT_SECONDS"]),
        "auth_enabled": True,
        "jwt_secret": SECRET,
        "prediction_log": False,
        "reload_interval_seconds": 0,
    }
    return Settings(**{**values, **changes})


@pytest.fixture
def api(env: dict[str, str]) -> Iterator[Callable[..., TestClient]]:
    """The service (auth on, no models: batch routes need none); ``api(**settings)`` for a variant."""
    clients: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        client = TestClient(create_app(settings_from(env, **changes), holder=ModelHolder.of()))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def bearer(env: dict[str, str], *scopes: str) -> dict[str, str]:
    return {"authorization": f"Bearer {mint_token(settings_from(env), 'tester', list(scopes), 600)}"}


@contextmanager
def worker_process(env: dict[str, str], log: Path, **extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """`shipyard batch worker` in its own process group; yields once it takes jobs; stopped after."""
    full = {**os.environ, **env, **extra}
    handle = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, "batch", "worker", "--stop-timeout", "5"],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=full,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while b"taking jobs" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        stop_group(proc)
        handle.close()


def wait_for(
    client: TestClient,
    env: dict[str, str],
    job_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
    logs: tuple[Path, ...] = (),
) -> dict[str, Any]:
    headers = bearer(env, "batch")
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(f"/batch/jobs/{job_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if until(job):
            return job
        if time.monotonic() > deadline:
            shown = "\n".join(p.read_text()[-2000:] for p in logs if p.exists())
            raise AssertionError(f"job still {job['status']} after {timeout} s: {job}\n{shown}")
        time.sleep(0.1)


def ended(job: dict[str, Any]) -> bool:
    return job["status"] in ("finished", "failed", "dead")


def iris_rows(count: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": np.arange(count)})
    for name, (low, high) in zip(FEATURES, [(4.3, 7.9), (2.0, 4.4), (1.0, 6.9), (0.1, 2.5)], strict=True):
        frame[name] = rng.uniform(low, high, count).round(1)
    return frame


def submit(client: TestClient, env: dict[str, str], **body: Any) -> str:
    answer = client.post("/batch/jobs", json={"model": "iris", **body}, headers=bearer(env, "batch"))
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status_url"] == f"/batch/jobs/{accepted['job_id']}" == answer.headers["location"]
    return str(accepted["job_id"])


def test_a_job_runs_on_a_worker_and_writes_what_score_file_writes(
    env: dict[str, str], api: Callable[..., TestClient], tmp_path: Path
) -> None:
    root = Path(env["SHIPYARD_BATCH_ROOT"])
    rows = iris_rows(500).astype({"petal_width": object})
    rows.loc[[7, 300], "petal_width"] = "n/a"  # two bad rows, skipped into the rejects file
    rows.to_csv(root / "flowers.csv", index=False)
    client = api()
    with worker_process(env, tmp_path / "worker.log"):
        job_id = submit(
            client,
            env,
            input="flowers.csv",
            output="scores/flowers.csv",
            keep=["id"],
            on_error="skip",
            chunk_rows=100,
        )
        unknown_model = submit(client, env, model="no-such-model", input="flowers.csv", output="x.csv")
        job = wait_for(client, env, job_id, ended, logs=(tmp_path / "worker.log",))
        failed = wait_for(client, env, unknown_model, ended, logs=(tmp_path / "worker.log",))

    assert job["status"] == "finished", job
    assert (job["rows_in"], job["rows_out"], job["rows_rejected"]) == (500, 498, 2)
    assert job["progress"]["rows_done"] == 500
    assert job["attempts"] == 1 and job["error"] is None and job["version"] == "1"
    assert [h["outcome"] for h in job["history"]] == ["finished"]
    output = root / "scores" / "flowers.csv"
    assert job["output"] == str(output) and job["rejects"] == str(output) + ".rejects.csv"
    assert sorted(p.name for p in output.parent.iterdir()) == ["flowers.csv", "flowers.csv.rejects.csv"]

    direct = score_file(
        settings_from(env),
        "iris",
        None,
        root / "flowers.csv",
        tmp_path / "direct.csv",
        chunk_rows=100,
        keep=("id",),
        on_error="skip",
    )
    assert direct.rows_out == 498
    assert output.read_bytes() == (tmp_path / "direct.csv").read_bytes()
    assert Path(job["rejects"]).read_bytes() == (tmp_path / "direct.csv.rejects.csv").read_bytes()

    # an error no retry can mend fails the job at once, naming the cause
    assert failed["status"] == "failed" and failed["attempts"] == 1, failed
    assert "no-such-model" in failed["error"]
    assert not (root / "x.csv").exists()
    # an admin token reads jobs too (admin implies batch)
    assert client.get(f"/batch/jobs/{job_id}", headers=bearer(env, "admin")).status_code == 200


def test_auth_bad_bodies_and_paths_are_refused_before_anything_is_queued(
    env: dict[str, str], api: Callable[..., TestClient], tmp_path: Path
) -> None:
    root = Path(env["SHIPYARD_BATCH_ROOT"])
    iris_rows(10).to_csv(root / "in.csv", index=False)
    (root / "done.csv").write_text("x\n")
    (tmp_path / "secret.csv").write_text("a\n1\n")
    (root / "link.csv").symlink_to(tmp_path / "secret.csv")
    client = api()
    good = {"model": "iris", "input": "in.csv", "output": "out.csv"}
    some_id = "0" * 32

    assert client.post("/batch/jobs", json=good).status_code == 401
    assert client.get(f"/batch/jobs/{some_id}").status_code == 401
    predict_only = bearer(env, "predict")
    refused = client.post("/batch/jobs", json=good, headers=predict_only)
    assert refused.status_code == 403 and "lacks the 'batch' scope" in refused.json()["detail"]
    assert client.get(f"/batch/jobs/{some_id}", headers=predict_only).status_code == 403

    headers = bearer(env, "batch")
    for field, value in [
        ("input", "/etc/passwd"),
        ("input", "../secret.csv"),
        ("input", "link.csv"),  # a symbolic link inside the root that leads out of it
        ("input", "file:///etc/hosts"),
        ("output", str(tmp_path / "stolen.csv")),
        ("output", "sub/../../stolen.csv"),
    ]:
        answer = client.post("/batch/jobs", json={**good, field: value}, headers=headers)
        assert answer.status_code == 403, (field, value, answer.text)
        assert answer.json()["detail"].startswith(f"{field}: ") and "outside the batch root" in answer.text

    for body, loc, words in [
        ({**good, "input": "s3://bucket/in.csv"}, ["body", "input"], "unsupported URI scheme"),
        ({**good, "input": "missing.csv"}, ["body", "input"], "not found"),
        ({**good, "input": "a" * 300 + ".csv"}, ["body", "input"], "cannot be checked"),
        ({**good, "output": "out.txt"}, ["body", "output"], ".csv or .parquet"),
        ({**good, "output": "in.csv"}, ["body", "output"], "must not be the input"),
        ({"input": "in.csv", "output": "o.csv"}, ["body", "model"], "Field required"),
        ({**good, "on_error": "maybe"}, ["body", "on_error"], "'fail' or 'skip'"),
        ({**good, "chunk_rows": 0}, ["body", "chunk_rows"], "greater than or equal to 1"),
        ({**good, "priority": 9}, ["body", "priority"], "Extra inputs"),
    ]:
        answer = client.post("/batch/jobs", json=body, headers=headers)
        assert answer.status_code == 422, (body, answer.text)
        [error] = answer.json()["detail"]
        assert error["loc"] == loc and words in error["msg"], (body, error)

    exists = client.post("/batch/jobs", json={**good, "output": "done.csv"}, headers=headers)
    assert exists.status_code == 409 and "overwrite" in exists.json()["detail"]
    queue = BatchQueue(settings_from(env))
    assert queue.redis.dbsize() == 0  # nothing refused was stored or queued

    assert client.get(f"/batch/jobs/{some_id}", headers=headers).status_code == 404
    assert client.get("/batch/jobs/not-an-id", headers=headers).status_code == 422

    # Redis down: a clear 503 for the client, a clear one-line error (exit 10) for the worker
    down = f"redis://127.0.0.1:{free_port()}/0"
    offline = api(redis_url=down)
    answer = offline.post("/batch/jobs", json=good, headers=headers)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["detail"].startswith("the batch queue is unavailable")
    assert offline.get(f"/batch/jobs/{some_id}", headers=headers).status_code == 503
    cli = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "batch", "worker"],
        env={**os.environ, **env, "SHIPYARD_REDIS_URL": down},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 10, cli.stderr
    assert "cannot reach Redis at redis://127.0.0.1" in cli.stderr and "Traceback" not in cli.stderr


def test_a_job_that_keeps_failing_is_retried_with_backoff_then_dead(
    env: dict[str, str], api: Callable[..., TestClient], tmp_path: Path
) -> None:
    root = Path(env["SHIPYARD_BATCH_ROOT"])
    iris_rows(20).to_csv(root / "in.csv", index=False)
    client = api()
    log = tmp_path / "worker.log"
    with worker_process(env, log, TEST_FAULT="oserror"):
        job_id = submit(client, env, input="in.csv", output="out.csv")
        job = wait_for(client, env, job_id, ended, logs=(log,))
        queue = BatchQueue(settings_from(env))
        deadline = time.monotonic() + 10  # the worker rejects the message just after the job ends
        while queue.dead_letters() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        dead_letters = queue.dead_letters()

    assert job["status"] == "dead", job
    assert job["attempts"] == job["max_attempts"] == 3
    assert [h["outcome"] for h in job["history"]] == ["retrying", "retrying", "dead"]
    assert "disk on fire" in job["error"] and "attempt 3/3" in job["error"]
    assert dead_letters == 1  # Dramatiq's dead-letter set holds the message
    assert sorted(p.name for p in root.iterdir()) == ["in.csv"]  # no output, no staging leftovers
    text = log.read_text()
    assert text.count("failed, will retry") == 2 and "Traceback" not in text


def test_a_job_on_a_killed_worker_is_finished_once_by_another_worker(
    env: dict[str, str], api: Callable[..., TestClient], tmp_path: Path
) -> None:
    root = Path(env["SHIPYARD_BATCH_ROOT"])
    count = 300_000
    iris_rows(count).to_csv(root / "big.csv", index=False)
    client = api()
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with worker_process(env, first_log) as first:
        job_id = submit(client, env, input="big.csv", output="out/big.csv", keep=["id"], chunk_rows=1000)
        running = wait_for(client, env, job_id, lambda j: j["progress"]["rows_done"] > 0, logs=(first_log,))
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    assert running["status"] == "running" and running["attempts"] == 1
    assert running["progress"]["rows_done"] < count, "the job ended before the worker was killed"
    assert not (root / "out" / "big.csv").exists()  # the killed attempt left no output

    with worker_process(env, second_log):
        job = wait_for(client, env, job_id, ended, timeout=90, logs=(first_log, second_log))

    assert job["status"] == "finished", job
    assert job["attempts"] == 2 and (job["rows_in"], job["rows_out"]) == (count, count)
    assert [h["outcome"] for h in job["history"]] == ["lost", "finished"]
    assert job["history"][0]["worker"] != job["history"][1]["worker"]
    assert sorted(p.name for p in (root / "out").iterdir()) == ["big.csv"]  # no partial or staged file
    scored = pd.read_csv(root / "out" / "big.csv")
    assert len(scored) == count and scored["id"].tolist() == list(range(count))
    assert second_log.read_text().count("finished:") == 1


def test_a_stale_attempt_cannot_write_and_an_interrupted_move_is_finished_without_scoring_again(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(env)
    queue = BatchQueue(settings)
    root = Path(env["SHIPYARD_BATCH_ROOT"])
    (root / "in.csv").write_text("x\n1\n")
    output = root / "out.csv"
    job_id = uuid.uuid4().hex
    queue.store.create(job_id, JobSpec("iris", None, str(root / "in.csv"), str(output)), 3, "tester")
    first = queue.store.start_attempt(job_id, "w1")
    second = queue.store.start_attempt(job_id, "w2")
    # a worker only thought dead (attempt 1) can no longer write once attempt 2 has started
    assert not queue.store.progress(job_id, first, 10, None)
    assert not queue.store.committing(job_id, first, {}, root / "elsewhere")
    assert queue.store.progress(job_id, second, 10, None)

    # attempt 2 scored, marked the job committing, and died before moving its output into place
    staging = staging_folder(output, job_id, second)
    staging.mkdir()
    (staging / "out.csv").write_text("scored\n")
    summary = {"rows_in": 1, "rows_out": 1, "rows_rejected": 0, "rejects": None, "seconds": 0.1}
    assert queue.store.committing(job_id, second, summary, staging)

    def must_not_score(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the job was scored again")

    monkeypatch.setattr(scoring, "score_file", must_not_score)
    runner = JobRunner(settings, queue.redis, queue.store, "w3")
    runner.run(job_id)
    state = queue.store.get(job_id)
    assert state is not None and state.status == "finished" and state.attempts == 3
    assert [h["outcome"] for h in state.history] == ["lost", "lost", "finished"]
    assert output.read_text() == "scored\n" and sorted(p.name for p in root.iterdir()) == [
        "in.csv",
        "out.csv",
    ]

    runner.run(job_id)  # delivered once more: the job has ended, nothing happens
    assert not queue.store.end(job_id, "dead", None, error="late")  # and it stays finished
    state = queue.store.get(job_id)
    assert state is not None and (state.status, state.attempts) == ("finished", 3)
