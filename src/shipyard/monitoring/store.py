"""The monitoring store: every logged prediction, every feedback label and the monitor's results, in one
SQL database that any number of api replicas write to and one monitor reads.

One setting names it, ``SHIPYARD_MONITORING_URL`` (an SQLAlchemy URL): an embedded SQLite file by
default, or a shared PostgreSQL server (``postgresql+psycopg://``). Predictions are stored as chunks (one
JSON document of many requests' features, written by the prediction log's background writer: one
encoding per chunk kept the log's cost near 5 %) plus one small row per request (id, model, version,
variant, outputs) that feedback joins to in SQL, so a label posted to any replica counts. The schema
is versioned (``shipyard_schema``) and upgraded in steps under a lock, so replicas starting together
agree and a store written by one release opens under the next.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard.errors import ConfigError, DataError, StoreUnavailableError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
SHADOW_VARIANT = "shadow"
_LOCK_KEY = 0x5348_4950  # "SHIP": the advisory lock migrations take on PostgreSQL


# One answered request as stored for joins and counts (its features live in its chunk): request id,
# model, version, variant, time, rows, latency (ms), answered by a classifier, outputs (JSON text). A
# plain tuple: the writer makes one per request, and a dataclass cost it several microseconds each.
RequestRow = tuple[str, str, str, str, float, int, float, bool, str]
REQUEST_COLUMNS = "request_id, model, version, variant, ts, rows, latency_ms, classifier, outputs"


@dataclass(frozen=True)
class Chunk:
    """Many requests of one model version and variant, written by one drain of the prediction log."""

    model: str
    version: str
    variant: str
    body: bytes  # JSON: request fields as lists, features as whole columns, predictions flattened
    requests: list[RequestRow]
    rows: int
    first_ts: float
    last_ts: float


def redact(url: str) -> str:
    """The URL without its password, for logs and errors."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


def _id_column() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


metadata = sa.MetaData()
chunks_table = sa.Table(
    "prediction_chunks",
    metadata,
    _id_column(),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("first_ts", sa.Float, nullable=False),
    sa.Column("last_ts", sa.Float, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("version", sa.Text),  # since schema 2 (NULL in chunks written before: read the body)
    sa.Column("variant", sa.Text),
    sa.Index("prediction_chunks_model_ts", "model", "last_ts"),
)
requests_table = sa.Table(
    "prediction_requests",
    metadata,
    _id_column(),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("chunk_id", sa.BigInteger, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("variant", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("classifier", sa.Boolean, nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),  # JSON list, one answer per row
    sa.Index("prediction_requests_request_id", "request_id"),  # the one index: every insert pays for it
)
feedback_table = sa.Table(
    "feedback",
    metadata,
    _id_column(),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("labels", sa.LargeBinary, nullable=False),  # JSON list, one label per predicted row
    sa.Index("feedback_request", "request_id"),
    sa.Index("feedback_ts", "ts"),
)
results_table = sa.Table(
    "monitor_results",
    metadata,
    _id_column(),
    sa.Column("kind", sa.Text, nullable=False),  # drift | quality
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("variant", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # JSON
    sa.Index("monitor_results_kind_model", "kind", "model", "id"),
)
schema_table = sa.Table("shipyard_schema", metadata, sa.Column("version", sa.Integer, nullable=False))


def _step_1(connection: Connection) -> None:
    """The first release's tables (it kept no schema version; a store it wrote is at step 1)."""
    chunks_table.create(connection, checkfirst=True)
    feedback_table.create(connection, checkfirst=True)


def _step_2(connection: Connection) -> None:
    """Request rows for joins, version/variant on chunks, the monitor's results; backfilled from the
    chunks already stored."""
    present = {c["name"] for c in sa.inspect(connection).get_columns(chunks_table.name)}
    for column in ("version", "variant"):
        if column not in present:
            connection.exec_driver_sql(f"ALTER TABLE prediction_chunks ADD COLUMN {column} TEXT")
    for table in (requests_table, results_table):
        table.create(connection, checkfirst=True)
    connection.exec_driver_sql("CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts)")
    backfilled = 0
    for chunk_id, body in connection.execute(sa.select(chunks_table.c.id, chunks_table.c.body)).all():
        document = orjson.loads(body)
        outputs = iter(document["predictions"])
        rows = [
            {
                "request_id": document["request_id"][i],
                "chunk_id": chunk_id,
                "model": "",
                "version": str(document["version"][i]),
                "variant": str(document["variant"][i]),
                "ts": float(document["ts"][i]),
                "rows": int(n),
                "latency_ms": float(document["latency_ms"][i]),
                "classifier": None,
                "outputs": orjson.dumps([next(outputs) for _ in range(int(n))]).decode(),
            }
            for i, n in enumerate(document["rows"])
        ]
        for row in rows:
            outs = orjson.loads(row["outputs"])
            row["classifier"] = any(isinstance(v, str) for v in outs)
        if rows:
            connection.execute(requests_table.insert(), rows)
            backfilled += len(rows)
    connection.exec_driver_sql(
        "UPDATE prediction_requests SET model = (SELECT model FROM prediction_chunks c "
        "WHERE c.id = prediction_requests.chunk_id) WHERE model = ''"
    )
    schema_table.create(connection, checkfirst=True)
    if backfilled:
        log.info("monitoring store: %d logged requests indexed for feedback joins", backfilled)


_STEPS: dict[int, Callable[[Connection], None]] = {1: _step_1, 2: _step_2}


class MonitoringStore:
    """Predictions, feedback and monitor results in one database; thread-safe (a connection pool)."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise ConfigError(
                f"SHIPYARD_MONITORING_URL is not an SQLAlchemy URL: {redact(url)!r} "
                "(expected sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB)"
            ) from None
        self.url = url
        self._schema_ok = False  # upgraded (or found current) by this process
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"SHIPYARD_MONITORING_URL: {self.dialect!r} stores are not supported; "
                "use sqlite:///PATH or postgresql+psycopg://..."
            )
        self.path: Path | None = None
        if self.dialect == "sqlite":
            if not parsed.database or parsed.database == ":memory:":
                raise ConfigError("SHIPYARD_MONITORING_URL: an SQLite store needs a file (sqlite:///PATH)")
            self.path = Path(parsed.database).resolve()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                parsed, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=4
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            try:
                self.engine = sa.create_engine(
                    parsed,
                    pool_pre_ping=True,
                    pool_size=4,
                    connect_args={"connect_timeout": max(1, int(connect_timeout))},
                )
            except ModuleNotFoundError as exc:
                raise ConfigError(
                    f"SHIPYARD_MONITORING_URL needs the {exc.name} driver: pip install 'shipyard[postgres]' "
                    "and use postgresql+psycopg://"
                ) from None

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> MonitoringStore:
        """The store at ``url``, its schema brought up to date (``upgrade``) or checked to be current."""
        store = cls(url)
        version = store.upgrade() if upgrade else store.schema_version()
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"monitoring store {store.where} has schema {version}, this Shipyard needs "
                f"{SCHEMA_VERSION}: run `shipyard monitor --upgrade`"
            )
        return store

    @classmethod
    def for_reading(cls, url: str) -> MonitoringStore:
        """The store a command reads (retrain, A/B report, drift): a clear error when there is none."""
        store = cls(url)
        if store.path is not None and not store.path.is_file():
            raise DataError(
                f"no monitoring store at {store.path} (is the service logging there? "
                "see SHIPYARD_MONITORING_URL)"
            )
        store.close()
        return cls.open(url)

    @property
    def where(self) -> str:
        return redact(self.url)

    def close(self) -> None:
        self.engine.dispose()

    # --- schema -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, what: str, schema: bool = True) -> Iterator[Connection]:
        """A transaction; an unreachable store becomes one clear error naming it (never a traceback).
        The first use in a process brings the schema up to date (``schema``), so a process that started
        while the store was down catches up on its first write after the outage."""
        if schema and not self._schema_ok:
            self.upgrade()
        try:
            with self.engine.begin() as connection:
                yield connection
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise StoreUnavailableError(
                f"monitoring store {self.where} unavailable ({what}): {reason}"
            ) from None

    def schema_version(self) -> int:
        with self._connect("reading its schema version", schema=False) as connection:
            return _current_version(connection)

    def upgrade(self) -> int:
        """Bring the schema up to date, step by step, under a lock (replicas may start together)."""
        with self._migration_lock(), self._connect("upgrading its schema", schema=False) as connection:
            if self.dialect == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
            current = _current_version(connection)
            if current > SCHEMA_VERSION:
                raise ConfigError(
                    f"monitoring store {self.where} has schema {current}, newer than this Shipyard knows "
                    f"({SCHEMA_VERSION}): upgrade Shipyard"
                )
            for step in range(current + 1, SCHEMA_VERSION + 1):
                _STEPS[step](connection)
                log.info("monitoring store %s: schema upgraded to %d", self.where, step)
            if current < SCHEMA_VERSION:
                connection.execute(schema_table.delete())
                connection.execute(schema_table.insert().values(version=SCHEMA_VERSION))
        self._schema_ok = True
        return SCHEMA_VERSION

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.path is None:
            yield  # PostgreSQL: the advisory lock inside the transaction
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # --- writes -------------------------------------------------------------------------------------

    def write_predictions(self, chunks: Sequence[Chunk]) -> int:
        """All chunks and their request rows in one transaction (all stored, or none); rows written."""
        with self._connect("writing predictions") as connection:
            for chunk in chunks:
                chunk_id = connection.execute(
                    chunks_table.insert().returning(chunks_table.c.id),
                    {
                        "model": chunk.model,
                        "version": chunk.version,
                        "variant": chunk.variant,
                        "first_ts": chunk.first_ts,
                        "last_ts": chunk.last_ts,
                        "requests": len(chunk.requests),
                        "rows": chunk.rows,
                        "body": chunk.body,
                    },
                ).scalar_one()
                self._write_requests(connection, chunk_id, chunk)
        return sum(c.rows for c in chunks)

    def _write_requests(self, connection: Connection, chunk_id: int, chunk: Chunk) -> None:
        rows = [(chunk_id, *r) for r in chunk.requests]
        columns = f"chunk_id, {REQUEST_COLUMNS}"
        if self.dialect == "postgresql":  # COPY: the fastest way in, one round trip per chunk
            raw = connection.connection.driver_connection
            assert raw is not None
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY prediction_requests ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        else:
            connection.exec_driver_sql(
                f"INSERT INTO prediction_requests ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def write_feedback(self, items: Sequence[tuple[str, list[Any]]], ts: float | None = None) -> None:
        """Ground truth by request id, stored at once (the answer to POST /feedback waits for it)."""
        now = time.time() if ts is None else ts
        rows = [
            {"request_id": rid, "ts": now, "labels": orjson.dumps(labels, option=orjson.OPT_SERIALIZE_NUMPY)}
            for rid, labels in items
        ]
        with self._connect("storing feedback") as connection:
            connection.execute(feedback_table.insert(), rows)

    def save_result(self, kind: str, model: str, version: str, variant: str, body: dict[str, Any]) -> None:
        with self._connect(f"storing a {kind} result") as connection:
            connection.execute(
                results_table.insert(),
                {
                    "kind": kind,
                    "model": model,
                    "version": version,
                    "variant": variant,
                    "ts": time.time(),
                    "body": orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
                },
            )

    def purge(self, before: float, batch: int = 5000) -> int:
        """Delete predictions, feedback and results older than ``before`` (epoch seconds), ``batch`` rows
        per transaction so a large purge never holds a long lock; how many rows went."""
        deleted = 0
        for table, column in (
            (chunks_table, chunks_table.c.last_ts),
            (requests_table, requests_table.c.ts),
            (feedback_table, feedback_table.c.ts),
            (results_table, results_table.c.ts),
        ):
            while True:
                ids = sa.select(table.c.id).where(column < before).limit(batch).scalar_subquery()
                with self._connect("deleting old rows") as connection:
                    gone = connection.execute(table.delete().where(table.c.id.in_(ids))).rowcount
                deleted += gone
                if gone < batch:
                    break
        return deleted

    # --- reads --------------------------------------------------------------------------------------

    def read_log(
        self,
        model: str,
        since: float | None = None,
        window: int | None = None,
        version: str | None = None,
        include_shadow: bool = False,
    ) -> pd.DataFrame:
        """Logged rows of ``model`` as a frame of features plus ``_prediction``, ``_ts``, ``_version``,
        ``_variant`` and ``_request_id``, oldest first; ``window`` keeps the latest N rows. Shadow answers
        (the same rows again, scored by a challenger) only with ``include_shadow``."""
        c = chunks_table.c
        query = sa.select(c.body).where(c.model == model)
        if since is not None:
            query = query.where(c.last_ts >= since)
        if version is not None:
            query = query.where(sa.or_(c.version.is_(None), c.version == version))
        if not include_shadow:
            query = query.where(sa.or_(c.variant.is_(None), c.variant != SHADOW_VARIANT))
        frames: list[pd.DataFrame] = []
        total = 0
        with self._connect("reading predictions") as connection:
            # newest first along the (model, last_ts) index: no sort of every chunk of the model
            # streamed (a server-side cursor on PostgreSQL): a window stops reading once it has its rows
            newest = query.order_by(c.last_ts.desc(), c.id.desc()).execution_options(yield_per=32)
            for (body,) in connection.execute(newest):
                part = _chunk_frame(orjson.loads(body))
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
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames[::-1], ignore_index=True)
        frame["_ts"] = frame["_ts"].astype(float)
        return (frame.tail(window) if window else frame).reset_index(drop=True)

    def served_versions(self, model: str, since: float | None = None, recent: int = 200) -> list[str]:
        """Versions of ``model`` that answered (not in shadow) in the latest ``recent`` chunks, most
        rows first."""
        c = chunks_table.c
        latest = (
            sa.select(c.version, c.rows)
            .where(c.model == model, c.version.is_not(None), c.variant != SHADOW_VARIANT)
            .where(c.last_ts >= since if since is not None else sa.true())
            .order_by(c.id.desc())
            .limit(recent)
            .subquery()
        )
        query = (
            sa.select(latest.c.version, sa.func.sum(latest.c.rows).label("n"))
            .group_by(latest.c.version)
            .order_by(sa.desc("n"))
        )
        with self._connect("reading served versions") as connection:
            return [str(v) for v, _ in connection.execute(query)]

    def feedback(self, model: str | None = None) -> dict[str, list[Any]]:
        """Ground truth by request id (the latest record wins); only ``model``'s requests when given."""
        f, r = feedback_table.c, requests_table.c
        query = sa.select(f.request_id, f.labels).order_by(f.id)
        if model is not None:
            mine = sa.select(r.request_id).where(r.model == model)
            query = query.where(f.request_id.in_(mine))
        with self._connect("reading feedback") as connection:
            return {rid: orjson.loads(labels) for rid, labels in connection.execute(query)}

    def labelled(self, model: str, since: float | None = None, include_shadow: bool = False) -> pd.DataFrame:
        """Logged rows of ``model`` that received ground truth, with a ``_label`` column: the rows A/B
        reports grade and retraining learns from. Labels join by request id and row order."""
        feedback = self.feedback(model)
        if not feedback:
            return pd.DataFrame()
        rows = self.read_log(model, since=since, include_shadow=include_shadow)
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

    def labelled_pairs(
        self, model: str, window: int, scan: int | None = None
    ) -> dict[tuple[str, str], LabelledPairs]:
        """The latest ``window`` (prediction, truth) pairs per (version, variant) of ``model``: feedback
        joined to the answers, whichever replica answered and whichever received the label. Labels are
        read newest first, a page at a time, until every variant has its window or ``scan`` labels
        (default 20 x window) were read: the cost follows the window, not the size of the store."""
        f, r = feedback_table.c, requests_table.c
        limit = window * 20 if scan is None else scan
        page = min(max(window, 500), 5000)
        pairs: dict[tuple[str, str], LabelledPairs] = {}
        seen: set[tuple[str, str, str]] = set()
        cursor: int | None = None
        read = 0
        with self._connect("joining feedback") as connection:
            while read < limit:
                query = sa.select(f.id, f.request_id, f.labels).order_by(f.id.desc()).limit(page)
                if cursor is not None:
                    query = query.where(f.id < cursor)
                labels = connection.execute(query).all()
                if not labels:
                    break
                cursor, read = labels[-1][0], read + len(labels)
                answers: dict[str, list[tuple[str, str, bool, str]]] = {}
                found = sa.select(r.request_id, r.version, r.variant, r.classifier, r.outputs).where(
                    r.model == model, r.request_id.in_({rid for _, rid, _ in labels})
                )
                for rid, version, variant, classifier, outputs in connection.execute(found):
                    answers.setdefault(rid, []).append(
                        (str(version), str(variant), bool(classifier), outputs)
                    )
                for _, rid, given in labels:
                    for version, variant, classifier, outputs in answers.get(rid, ()):
                        if (rid, version, variant) in seen:
                            continue  # an older label for the same answer: the latest one counts
                        seen.add((rid, version, variant))
                        group = pairs.setdefault((version, variant), LabelledPairs(classifier))
                        room = window - len(group.predicted)
                        truth, predicted = orjson.loads(given), orjson.loads(outputs)
                        if room <= 0 or len(truth) != len(predicted):
                            continue  # full, or counts that cannot be paired (refused when known)
                        group.predicted.extend(predicted[:room])
                        group.truth.extend(truth[:room])
                if pairs and all(len(g.predicted) >= window for g in pairs.values()):
                    break
        return pairs

    def count_requests(self, model: str | None = None) -> pd.DataFrame:
        """How many times each request id was stored (variant by variant): to prove nothing was lost or
        written twice."""
        r = requests_table.c
        query = sa.select(r.request_id, r.variant, sa.func.count().label("n")).group_by(
            r.request_id, r.variant
        )
        if model is not None:
            query = query.where(r.model == model)
        with self._connect("counting requests") as connection:
            return pd.DataFrame(connection.execute(query).all(), columns=["request_id", "variant", "n"])

    def latest_result(self, kind: str, model: str, version: str | None = None) -> dict[str, Any] | None:
        c = results_table.c
        query = sa.select(c.body).where(c.kind == kind, c.model == model)
        if version is not None:
            query = query.where(c.version == version)
        with self._connect(f"reading the latest {kind} result") as connection:
            body = connection.execute(query.order_by(c.id.desc()).limit(1)).scalar_one_or_none()
        return None if body is None else dict(orjson.loads(body))

    def latest_results(self, kind: str, model: str) -> list[dict[str, Any]]:
        """The latest result of ``kind`` per (version, variant) of ``model``."""
        c = results_table.c
        newest = (
            sa.select(sa.func.max(c.id))
            .where(c.kind == kind, c.model == model)
            .group_by(c.version, c.variant)
        )
        query = sa.select(c.body).where(c.id.in_(newest)).order_by(c.version, c.variant)
        with self._connect(f"reading {kind} results") as connection:
            return [dict(orjson.loads(body)) for (body,) in connection.execute(query)]

    def result_history(
        self,
        kind: str,
        model: str,
        *,
        version: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The stored results of ``kind`` for ``model``, newest first (in the order stored: the monitor
        stamps each as it stores it), at most ``limit``; each body with its row's time as ``stored_at``
        (epoch seconds). ``since``/``until`` bound that time (both inclusive), ``version`` the version.
        Read backwards along the (kind, model, id) index: the cost follows ``limit``, not the history."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        c = results_table.c
        query = sa.select(c.ts, c.body).where(c.kind == kind, c.model == model)
        if version is not None:
            query = query.where(c.version == version)
        if since is not None:
            query = query.where(c.ts >= since)
        if until is not None:
            query = query.where(c.ts <= until)
        query = query.order_by(c.id.desc()).limit(limit)
        with self._connect(f"reading the {kind} history") as connection:
            return [{**orjson.loads(body), "stored_at": float(ts)} for ts, body in connection.execute(query)]


@dataclass
class LabelledPairs:
    classifier: bool
    predicted: list[Any]
    truth: list[Any]

    def __init__(self, classifier: bool) -> None:
        self.classifier = classifier
        self.predicted = []
        self.truth = []


def _current_version(connection: Connection) -> int:
    tables = set(sa.inspect(connection).get_table_names())
    if schema_table.name in tables:
        version = connection.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
        return int(version or 0)
    return 1 if chunks_table.name in tables else 0  # the first release kept no version


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _chunk_frame(chunk: dict[str, Any]) -> pd.DataFrame:
    rows = chunk["rows"]
    part = pd.DataFrame(chunk["features"])
    part["_prediction"] = chunk["predictions"]
    for key in ("ts", "version", "variant", "request_id"):
        part[f"_{key}"] = np.repeat(np.asarray(chunk[key], dtype=object), rows)
    return part
