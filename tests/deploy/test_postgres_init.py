"""deploy/postgres/init-monitoring.sh, run as the postgres image runs it, against a real throwaway cluster:
it makes the monitoring store's role and database (password from the environment, over TCP with
scram-sha-256 as in the stack), keeps MLflow's database closed to that role, and runs again safely (the
way to add it to an older volume or to change the password)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_external
from tests.pg_cluster import SUPERUSER, PostgresCluster, throwaway_cluster

pytestmark = pytest.mark.deploy

SCRIPT = Path(__file__).resolve().parents[2] / "deploy/postgres/init-monitoring.sh"
MLFLOW_DB = "mlflow"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A cluster of its own: the script makes the fixed role `shipyard`, which must not meet the roles
    other tests make in the shared session cluster."""
    with throwaway_cluster("shipyard-pg-init-", missing_external) as pg:
        with pg.admin_connect() as conn:
            conn.execute(f"CREATE DATABASE {MLFLOW_DB}")
        yield pg


def run_script(cluster: PostgresCluster, **env: str) -> subprocess.CompletedProcess[str]:
    """The script with the environment the postgres image gives it (POSTGRES_USER, POSTGRES_DB, the
    server on its local socket)."""
    environment = {
        "PATH": f"{cluster.bindir}:/usr/bin:/bin",
        "PGHOST": str(cluster.socket_dir),
        "PGPORT": str(cluster.port),
        "POSTGRES_USER": SUPERUSER,
        "POSTGRES_DB": MLFLOW_DB,
        **env,
    }
    return subprocess.run(
        [str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def connect(cluster: PostgresCluster, password: str, dbname: str = "shipyard") -> Any:
    """The store's role over TCP, as the api and the monitor connect (password, scram-sha-256)."""
    import psycopg

    return psycopg.connect(
        host=cluster.host,
        port=cluster.port,
        user="shipyard",
        password=password,
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    )


def test_the_script_is_executable_for_the_image() -> None:
    # the image sources a non-executable *.sh into its own shell; executable, it runs on its own
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")


def test_it_makes_the_store_role_and_database_and_runs_again_safely(cluster: PostgresCluster) -> None:
    import psycopg

    first = secrets.token_hex(16)
    done = run_script(cluster, MONITORING_DB_PASSWORD=first)
    assert done.returncode == 0, done.stdout + done.stderr
    with connect(cluster, first) as conn:
        conn.execute("CREATE TABLE probe (id integer PRIMARY KEY)")  # it owns the database
        conn.execute("INSERT INTO probe VALUES (1)")
        attributes = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'shipyard'"
        ).fetchone()
        assert attributes == (False, False, False)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect(cluster, first, dbname=MLFLOW_DB)

    second = secrets.token_hex(16)
    again = run_script(cluster, MONITORING_DB_PASSWORD=second)
    assert again.returncode == 0, again.stdout + again.stderr
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(cluster, first)
    with connect(cluster, second) as conn:
        assert conn.execute("SELECT id FROM probe").fetchall() == [(1,)]  # nothing was dropped


def test_it_refuses_to_run_without_the_password(cluster: PostgresCluster) -> None:
    for missing in ({}, {"MONITORING_DB_PASSWORD": ""}):
        done = run_script(cluster, **missing)
        assert done.returncode != 0
        assert "set MONITORING_DB_PASSWORD" in done.stderr
