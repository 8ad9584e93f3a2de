"""The prediction log: every prediction, appended to SQLite (WAL) by a background writer.

The request path only appends to a bounded in-memory buffer (a deque: no lock hand-off, no thread
wake-up per request), so a slow disk never slows a request: when the buffer is full the entry is
dropped and counted, never silently. The writer wakes every ``interval`` seconds, drains the buffer and
writes one row per model per drain: a chunk of that model's requests as one JSON document (features as
columns). One insert and one JSON encoding per chunk instead of per request kept the log's cost on a
saturated core near 5% (it was ~12% with a row per request). ``close`` writes what is left; ``flush``
writes what is buffered now, for a reader that must see it at once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS prediction_chunks (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    first_ts REAL NOT NULL,
    last_ts REAL NOT NULL,
    requests INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    body BLOB NOT NULL  -- JSON list of requests: request_id, ts, version, variant, features, ...
);
CREATE INDEX IF NOT EXISTS prediction_chunks_model_ts ON prediction_chunks (model, last_ts);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    ts REAL NOT NULL,
    labels BLOB NOT NULL  -- JSON list, one ground-truth label per predicted row
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id);
"""

# request id, time, model, version, variant, features (name -> array, one item per row), predictions,
# latency (ms). Features stay the request's arrays; JSON is made in the writer thread.
Entry = tuple[str, float, str, str, str, dict[str, Any], list[Any], float]

_JSON = orjson.OPT_SERIALIZE_NUMPY


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(SCHEMA)
    return connection


class PredictionLog:
    def __init__(
        self,
        path: Path,
        queue_size: int = 10_000,
        interval: float = 0.1,
        on_drop: Callable[[int], None] | None = None,
        on_write: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.queue_size = queue_size
        self.interval = interval
        self._buffer: deque[Entry] = deque()
        self._feedback: deque[tuple[str, float, list[Any]]] = deque()
        self._on_drop = on_drop or (lambda n: None)
        self._on_write = on_write or (lambda n: None)
        self._stop = threading.Event()
        self._draining = threading.Lock()  # one drain at a time: the writer's or a flush's
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0

    def start(self) -> None:
        connect(self.path).close()  # fail at start-up, not in the thread, if the path is unusable
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, entry: Entry) -> bool:
        """Never blocks: False (and counted) when the buffer is full."""
        if len(self._buffer) >= self.queue_size:
            rows = len(entry[6])
            self.dropped += rows
            self._on_drop(rows)
            return False
        self._buffer.append(entry)
        return True

    def submit_feedback(self, request_id: str, labels: list[Any]) -> None:
        """Ground truth for a logged request, written with the next drain (kept for retraining)."""
        self._feedback.append((request_id, time.time(), labels))

    def flush(self) -> None:
        """Write everything submitted before this call, then return (waits for a drain in progress)."""
        with self._draining:
            connection = connect(self.path)
            try:
                self._drain(connection)
            finally:
                connection.close()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything buffered, then stop the writer."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        connection = connect(self.path)
        try:
            while not self._stop.wait(self.interval):
                with self._draining:
                    self._drain(connection)
            with self._draining:
                self._drain(connection)
        finally:
            connection.close()

    def _drain(self, connection: sqlite3.Connection) -> None:
        # what is buffered now, no more: a submit racing this loop waits for the next drain, so the
        # writer never holds more than one buffer's worth (the memory bound the queue size promises)
        batch = [self._buffer.popleft() for _ in range(len(self._buffer))]
        if batch:
            self._write(connection, batch)
        feedback = []
        while self._feedback:
            request_id, ts, labels = self._feedback.popleft()
            feedback.append((request_id, ts, orjson.dumps(labels, option=_JSON)))
        if feedback:
            try:
                with connection:
                    connection.executemany(
                        "INSERT INTO feedback (request_id, ts, labels) VALUES (?, ?, ?)", feedback
                    )
            except sqlite3.OperationalError as exc:
                log.warning("%d feedback records not logged: %s", len(feedback), exc)

    def _write(self, connection: sqlite3.Connection, batch: list[Entry]) -> None:
        groups: dict[tuple[str, tuple[str, ...]], list[Entry]] = {}
        for entry in batch:
            groups.setdefault((entry[2], tuple(entry[5])), []).append(entry)
        chunks = []
        for (model, names), entries in groups.items():
            rows = sum(len(e[6]) for e in entries)
            try:
                body = orjson.dumps(_columnar(entries, names), option=_JSON)
            except (TypeError, ValueError) as exc:  # an unserialisable value must not stop the writer
                log.warning("%d predictions of %s not logged: %s", rows, model, exc)
                self.dropped += rows
                self._on_drop(rows)
                continue
            chunks.append((model, entries[0][1], entries[-1][1], len(entries), rows, body))
        rows = sum(c[4] for c in chunks)
        for attempt in range(3):
            try:
                with connection:
                    connection.executemany(
                        "INSERT INTO prediction_chunks (model, first_ts, last_ts, requests, rows, body) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        chunks,
                    )
                self.written += rows
                self._on_write(rows)
                return
            except sqlite3.OperationalError as exc:  # e.g. locked: retry, then count as dropped
                log.warning("prediction log write failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.2 * (attempt + 1))
        self.dropped += rows
        self._on_drop(rows)


def _columnar(entries: list[Entry], names: tuple[str, ...]) -> dict[str, Any]:
    """One JSON document for many requests: request fields as lists, features as whole columns (one
    numpy concatenation each instead of many tiny arrays), predictions flattened."""
    return {
        "request_id": [e[0] for e in entries],
        "ts": [e[1] for e in entries],
        "version": [e[3] for e in entries],
        "variant": [e[4] for e in entries],
        "rows": [len(e[6]) for e in entries],
        "latency_ms": [e[7] for e in entries],
        "features": {name: _column(np.concatenate([e[5][name] for e in entries])) for name in names},
        "predictions": [value for e in entries for value in e[6]],
    }


def _column(values: Any) -> Any:
    """numpy numbers go to orjson as they are (fast; NaN becomes null); text columns as lists."""
    if values.dtype.kind in "fiub":
        return values
    return [None if isinstance(v, float) and v != v else v for v in values.tolist()]


SHADOW_VARIANT = "shadow"


def read_log(
    path: Path,
    model: str,
    since: float | None = None,
    window: int | None = None,
    version: str | None = None,
    include_shadow: bool = False,
) -> pd.DataFrame:
    """Logged rows of ``model`` as a frame of features plus ``_prediction``, ``_ts``, ``_version``,
    ``_variant`` and ``_request_id``, oldest first; ``window`` keeps the latest N rows. Shadow answers
    (the same rows again, scored by a challenger) only with ``include_shadow``."""
    if not path.is_file():
        return pd.DataFrame()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        query = "SELECT body FROM prediction_chunks WHERE model = ?"
        params: list[Any] = [model]
        if since is not None:
            query += " AND last_ts >= ?"
            params.append(since)
        frames: list[pd.DataFrame] = []
        total = 0
        for (body,) in connection.execute(query + " ORDER BY id DESC", params):
            chunk = orjson.loads(body)
            rows = chunk["rows"]
            part = pd.DataFrame(chunk["features"])
            part["_prediction"] = chunk["predictions"]
            for key in ("ts", "version", "variant", "request_id"):
                part[f"_{key}"] = np.repeat(np.asarray(chunk[key], dtype=object), rows)
            if since is not None:
                part = part[part["_ts"].astype(float) >= since]
            if version is not None:
                part = part[part["_version"] == version]
            if not include_shadow:
                part = part[part["_variant"] != SHADOW_VARIANT]
            frames.append(part)
            total += len(part)
            if window and total >= window:
                break
    finally:
        connection.close()
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames[::-1], ignore_index=True)
    frame["_ts"] = frame["_ts"].astype(float)
    return (frame.tail(window) if window else frame).reset_index(drop=True)


def read_feedback(path: Path) -> dict[str, list[Any]]:
    """Logged ground truth by request id (the latest record wins)."""
    if not path.is_file():
        return {}
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return {
            rid: orjson.loads(labels)
            for rid, labels in connection.execute("SELECT request_id, labels FROM feedback ORDER BY id")
        }
    finally:
        connection.close()


def read_labelled(
    path: Path, model: str, since: float | None = None, include_shadow: bool = False
) -> pd.DataFrame:
    """Logged rows of ``model`` that received ground truth through /feedback, with a ``_label`` column:
    the rows A/B reports grade and retraining learns from. Labels join by request id and row order."""
    feedback = read_feedback(path)
    if not feedback:
        return pd.DataFrame()
    rows = read_log(path, model, since=since, include_shadow=include_shadow)
    if rows.empty:
        return rows
    rows = rows[rows["_request_id"].isin(feedback.keys())].reset_index(drop=True)
    position = rows.groupby(["_request_id", "_variant"], sort=False).cumcount().to_numpy()
    labels = []
    for request_id, index in zip(rows["_request_id"], position, strict=True):
        given = feedback[request_id]
        labels.append(given[index] if index < len(given) else None)
    rows["_label"] = labels
    return rows[rows["_label"].notna()].reset_index(drop=True)
