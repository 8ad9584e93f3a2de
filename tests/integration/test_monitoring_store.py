"""The monitoring store: one interface over SQLite and PostgreSQL, versioned schema, exact counts, joins
of feedback to answers whichever process wrote them, bounded retention, clear errors."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipyard.errors import ConfigError, DataError, StoreUnavailableError
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.store import SCHEMA_VERSION, MonitoringStore
from tests.unit.test_prediction_log import entry

pytestmark = pytest.mark.integration

# the first release's layout, exactly as it created it (a SQLite file, no schema version)
V1_SCHEMA = """
CREATE TABLE prediction_chunks (
    id INTEGER PRIMARY KEY, model TEXT NOT NULL, first_ts REAL NOT NULL, last_ts REAL NOT NULL,
    requests INTEGER NOT NULL, rows INTEGER NOT NULL, body BLOB NOT NULL
);
CREATE INDEX prediction_chunks_model_ts ON prediction_chunks (model, last_ts);
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, ts REAL NOT NULL, labels BLOB NOT NULL
);
CREATE INDEX feedback_request ON feedback (request_id);
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitoring.db'}"
    import secrets

    cluster = request.getfixturevalue("postgres")
    name = f"store_{time.monotonic_ns()}"
    return str(cluster.create_database(name, name, secrets.token_hex(16)))


def write(store: MonitoringStore, entries: list[Any]) -> None:
    log = PredictionLog(store, interval=3600)
    log.start()
    for e in entries:
        assert log.submit(e)
    log.close()


def test_every_request_is_stored_once_and_labels_join_from_anywhere(store_url: str) -> None:
    writers = [MonitoringStore.open(store_url) for _ in range(3)]  # three "replicas"
    threads = [
        threading.Thread(target=write, args=(s, [entry(f"w{k}-{i}", rows=1) for i in range(300)]))
        for k, s in enumerate(writers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    reader = MonitoringStore.open(store_url)
    counts = reader.count_requests("m")
    assert len(counts) == 900 and set(counts["n"]) == {1}  # none lost, none twice
    # labels arrive at another "replica" than the one that answered
    writers[2].write_feedback([(f"w0-{i}", ["yes" if i % 4 else "no"]) for i in range(100)])
    pairs = reader.labelled_pairs("m", window=1000)[("1", "champion")]
    assert len(pairs.truth) == 100 and pairs.truth.count("no") == 25 and set(pairs.predicted) == {"yes"}
    assert len(reader.read_log("m", window=50)) == 50
    for s in [*writers, reader]:
        s.close()


def test_a_store_of_the_first_release_opens_and_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    body = {
        "request_id": ["a", "b"],
        "ts": [1e9, 1e9 + 1],
        "version": ["3", "3"],
        "variant": ["champion", "champion"],
        "rows": [2, 1],
        "latency_ms": [1.0, 2.0],
        "features": {"x": [1.0, 2.0, 3.0]},
        "predictions": ["p", "q", "r"],
    }
    old.execute(
        "INSERT INTO prediction_chunks (model, first_ts, last_ts, requests, rows, body) VALUES (?,?,?,?,?,?)",
        ("m", 1e9, 1e9 + 1, 2, 3, orjson.dumps(body)),
    )
    old.execute("INSERT INTO feedback (request_id, ts, labels) VALUES ('a', 1e9, ?)", (b'["p", "x"]',))
    old.commit()
    old.close()
    store = MonitoringStore.open(f"sqlite:///{path}")
    assert store.schema_version() == SCHEMA_VERSION
    frame = store.read_log("m")
    assert frame["x"].tolist() == [1.0, 2.0, 3.0] and frame["_request_id"].tolist() == ["a", "a", "b"]
    pairs = store.labelled_pairs("m", window=10)[("3", "champion")]  # old answers join new feedback
    assert pairs.predicted == ["p", "q"] and pairs.truth == ["p", "x"] and pairs.classifier
    assert store.labelled("m")["_label"].tolist() == ["p", "x"]
    assert MonitoringStore.open(f"sqlite:///{path}").upgrade() == SCHEMA_VERSION  # again: no change
    assert len(store.count_requests()) == 2  # the backfill ran once
    store.close()


def test_replicas_starting_together_agree_on_the_schema(store_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            MonitoringStore.open(store_url).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert MonitoringStore.open(store_url).schema_version() == SCHEMA_VERSION


def test_a_newer_store_is_refused_not_damaged(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    MonitoringStore.open(url).close()
    with sqlite3.connect(tmp_path / "new.db") as raw:
        raw.execute("UPDATE shipyard_schema SET version = 99")
    with pytest.raises(ConfigError, match="schema 99, newer than this Shipyard knows"):
        MonitoringStore.open(url)
    with sqlite3.connect(tmp_path / "new.db") as raw:
        assert raw.execute("SELECT version FROM shipyard_schema").fetchall() == [(99,)]


def test_retention_deletes_old_rows_in_batches_and_keeps_the_rest(store_url: str) -> None:
    store = MonitoringStore.open(store_url)
    old = [(*entry(f"old{i}", rows=1)[:1], 1000.0, *entry("x", rows=1)[2:]) for i in range(7)]
    write(store, old)
    write(store, [entry(f"new{i}", rows=1) for i in range(3)])
    store.write_feedback([("old0", ["yes"])], ts=1000.0)
    store.write_feedback([("new0", ["yes"])])
    gone = store.purge(before=time.time() - 86400, batch=2)  # many small transactions
    assert set(store.count_requests()["request_id"]) == {"new0", "new1", "new2"}
    assert store.feedback() == {"new0": ["yes"]}
    assert gone >= 7 + 1  # the old requests and the old label (and their chunk)
    store.close()


def test_bad_urls_and_an_unreachable_server_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an SQLAlchemy URL"):
        MonitoringStore("not a url")
    with pytest.raises(ConfigError, match="'mysql' stores are not supported"):
        MonitoringStore("mysql://u:p@127.0.0.1/db")
    with pytest.raises(ConfigError, match="needs a file"):
        MonitoringStore("sqlite://")
    with pytest.raises(DataError, match="no monitoring store at"):
        MonitoringStore.for_reading(f"sqlite:///{tmp_path / 'absent.db'}")
    secret = f"pw{time.monotonic_ns()}"
    down = MonitoringStore(f"postgresql+psycopg://shipyard:{secret}@127.0.0.1:9/shipyard")
    with pytest.raises(StoreUnavailableError) as caught:
        down.schema_version()
    assert "monitoring store postgresql+psycopg://shipyard:***@127.0.0.1:9/shipyard unavailable" in str(
        caught.value
    )
    assert secret not in str(caught.value)
