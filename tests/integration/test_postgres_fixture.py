"""The `postgres` fixture itself: a real cluster that other tests trust to behave like a production one
(password authentication over TCP, a database its user owns)."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.conftest import missing_external
from tests.pg_cluster import PostgresCluster, find_bindir

pytestmark = pytest.mark.integration


def _connect(url: str, password: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    parts = urlsplit(url)
    return psycopg.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=parts.password if password is None else password,
        dbname=parts.path.lstrip("/"),
        connect_timeout=5,
    )


def test_a_new_database_takes_its_owner_over_tcp(postgres: PostgresCluster) -> None:
    password = secrets.token_urlsafe(16)
    url = postgres.create_database("fixture_check", "fixture_user", password)

    parts = urlsplit(url)
    assert parts.scheme == "postgresql+psycopg"
    assert (parts.hostname, parts.port, parts.path) == ("127.0.0.1", postgres.port, "/fixture_check")
    with psycopg.connect(
        host=parts.hostname, port=parts.port, user="fixture_user", password=password, dbname="fixture_check"
    ) as conn:
        conn.execute("CREATE TABLE readings (id serial PRIMARY KEY, value double precision NOT NULL)")
        conn.execute("INSERT INTO readings (value) VALUES (%s), (%s)", (1.5, 2.5))
        conn.commit()
        assert conn.execute("SELECT sum(value), current_user FROM readings").fetchone() == (
            4.0,
            "fixture_user",
        )
        method = conn.execute("SELECT setting FROM pg_settings WHERE name = 'password_encryption'").fetchone()
        assert method == ("scram-sha-256",)


def test_a_wrong_password_is_refused(postgres: PostgresCluster) -> None:
    url = postgres.create_database("fixture_refusal", "fixture_refused", secrets.token_urlsafe(16))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _connect(url, password=secrets.token_urlsafe(16))
    with _connect(url) as conn:  # the right one, same role and database: the password made the difference
        assert conn.execute("SELECT current_database()").fetchone() == ("fixture_refusal",)


def test_the_cluster_is_gone_after_stop() -> None:
    """A cluster of its own (not the session's): stop() ends the server and removes its folder."""
    if find_bindir() is None:
        missing_external("PostgreSQL (apt-get install postgresql)")
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="shipyard-pg-")))
    try:
        cluster.start()
        password = secrets.token_urlsafe(16)
        url = cluster.create_database("short_lived", "short_lived", password)
        _connect(url).close()
    finally:
        cluster.stop()
    assert not cluster.base.exists()
    with pytest.raises(psycopg.OperationalError):
        _connect(url)
