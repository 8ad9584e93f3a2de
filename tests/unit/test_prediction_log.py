"""The prediction log: durable, never blocks the request path, counts what it drops, flushes on close."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.store import MonitoringStore
from tests.unit.conftest import IRIS_ROWS, AppFactory


def entry(request_id: str, rows: int = 2) -> Any:
    batch = {"a": np.arange(rows, dtype=float), "b": np.array(["x"] * rows, dtype=object)}
    batch["a"][0] = np.nan
    return (request_id, time.time(), "m", "1", "champion", batch, ["yes"] * rows, 0.5, True)


def store_at(path: Path) -> MonitoringStore:
    return MonitoringStore.open(f"sqlite:///{path}")


def read_log(path: Path, model: str, **options: Any) -> Any:
    store = store_at(path)
    try:
        return store.read_log(model, **options)
    finally:
        store.close()


def test_entries_are_written_and_read_back(tmp_path: Path) -> None:
    log = PredictionLog(store_at(tmp_path / "p.db"))
    log.start()
    for i in range(50):
        assert log.submit(entry(f"r{i}"))
    log.close()
    frame = read_log(tmp_path / "p.db", "m")
    assert len(frame) == 100 and log.written == 100 and log.dropped == 0
    assert frame["_request_id"].iloc[0] == "r0" and frame["_request_id"].iloc[-1] == "r49"
    assert frame["a"].isna().sum() == 50  # NaN stored as null, read back as missing
    assert set(frame["b"]) == {"x"} and set(frame["_prediction"]) == {"yes"}
    assert len(read_log(tmp_path / "p.db", "m", window=10)) == 10
    assert read_log(tmp_path / "p.db", "other").empty


def test_a_stalled_disk_never_blocks_submit_and_drops_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    dropped: list[int] = []
    log = PredictionLog(store_at(path), queue_size=100, interval=0.01, on_drop=dropped.append)
    log.start()
    blocker = sqlite3.connect(path, timeout=60)
    blocker.execute("BEGIN EXCLUSIVE")  # the disk "stalls": the writer cannot commit
    started = time.perf_counter()
    accepted = sum(log.submit(entry(f"r{i}", rows=1)) for i in range(5000))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5  # 5,000 submits while the writer is stuck: no waiting on the request path
    assert accepted <= 100 + 100  # what fits in the buffer (+ one drained batch the writer holds)
    assert sum(dropped) == 5000 - accepted and log.dropped == 5000 - accepted
    blocker.rollback()
    blocker.close()
    closer = threading.Thread(target=log.close)
    closer.start()
    closer.join(30)
    assert not closer.is_alive()
    assert len(read_log(path, "m")) + log.dropped == 5000  # every record is either written or counted


def test_flush_writes_everything_submitted_before_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    idle = PredictionLog(store_at(path), interval=3600)  # the writer would not wake during this test
    idle.start()
    idle.submit(entry("r0"))
    assert read_log(path, "m").empty
    idle.flush()
    assert list(read_log(path, "m")["_request_id"]) == ["r0", "r0"] and idle.written == 2
    idle.close()

    busy = PredictionLog(store_at(tmp_path / "busy.db"), interval=0.001)  # flushes race its own drains
    busy.start()
    reader = sqlite3.connect(tmp_path / "busy.db")
    for i in range(100):
        busy.submit(entry(f"b{i}", rows=1))
        busy.flush()
        assert reader.execute("SELECT SUM(rows) FROM prediction_chunks").fetchone() == (i + 1,)
    reader.close()
    busy.close()


def test_the_service_logs_predictions_and_flushes_on_shutdown(client_for: AppFactory, tmp_path: Path) -> None:
    path = tmp_path / "served.db"
    client = client_for(prediction_log=True, prediction_log_path=path)
    answer = client.post("/predict", json={"records": IRIS_ROWS}, headers={"x-request-id": "req-42"}).json()
    client.post("/invocations", json={"dataframe_records": IRIS_ROWS[:1]})
    client.__exit__(None, None, None)  # graceful shutdown: the writer drains its queue
    frame = read_log(path, "iris")
    assert len(frame) == 4
    first = frame[frame["_request_id"] == "req-42"]
    assert list(first["_prediction"]) == answer["predictions"]
    assert list(first["petal_length"]) == [r["petal_length"] for r in IRIS_ROWS]
    assert set(frame["_version"]) == {"1"}


def test_sampling_logs_a_share_of_requests(client_for: AppFactory, tmp_path: Path) -> None:
    path = tmp_path / "sampled.db"
    client = client_for(prediction_log=True, prediction_log_path=path, prediction_log_sample_rate=0.0)
    for _ in range(5):
        client.post("/predict", json=IRIS_ROWS[0])
    metrics = client.get("/metrics").text
    client.__exit__(None, None, None)
    assert read_log(path, "iris").empty
    assert "shipyard_prediction_log_written_total 0.0" in metrics
