"""A throwaway, real PostgreSQL cluster for tests: initdb + pg_ctl on a free port of 127.0.0.1.

PostgreSQL refuses to run as root (CI runs as root), so under root the server runs as an unprivileged
system user created on first use. Host connections need a password (scram-sha-256), as in production;
the local socket (inside the cluster's folder) trusts its user, which is how the cluster administers
itself.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

DEFAULT_USER = "shipyard-pg"
SUPERUSER = "postgres"  # the cluster's own superuser role (initdb -U), reachable on the socket only
HOST = "127.0.0.1"
_BINARIES = ("initdb", "pg_ctl")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, with ".s.PGSQL.NNNNN" appended


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's /usr/lib/postgresql/*/bin (newest
    version first); None when PostgreSQL is not installed."""
    found = [shutil.which(name) for name in _BINARIES]
    if all(found):
        folders = {Path(str(path)).resolve().parent for path in found}
        if len(folders) == 1:  # initdb and pg_ctl of one installation (symlinks resolved)
            return folders.pop()
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: _version_key(Path(p).parent.name), reverse=True
    )
    for candidate in candidates:
        if all(os.access(Path(candidate) / name, os.X_OK) for name in _BINARIES):
            return Path(candidate)
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One cluster in ``base`` (data, socket and log inside it). ``start()`` then ``create_database()``
    per test (names must be unique within the cluster), and ``stop()``, which also removes ``base``."""

    def __init__(self, base: Path, *, bindir: Path | None = None, os_user: str = DEFAULT_USER) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError(
                "PostgreSQL binaries (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql"
            )
        self.bindir = found
        self.base = Path(base).resolve()
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log = self.base / "postgres.log"
        self.port = 0
        self.host = HOST
        # as root, run the server as an unprivileged user; otherwise as ourselves
        self.os_user: str | None = os_user if os.geteuid() == 0 else None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 30, attempts: int = 3) -> PostgresCluster:
        """initdb, then start on a free port and wait until it accepts connections (within ``timeout``
        per attempt; another attempt on a new port if the port was taken in between)."""
        if len(str(self.socket_dir)) > _SOCKET_PATH_MAX:
            raise ValueError(f"socket folder path too long for a Unix socket: {self.socket_dir}")
        self._prepare_folders()
        self._run(
            self.bindir / "initdb",
            "-D", str(self.data),
            "-U", SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            timeout=120,
        )  # fmt: skip
        errors = []
        for _ in range(attempts):
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.socket_dir} -c listen_addresses={HOST} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            result = self._run(
                self.bindir / "pg_ctl",
                "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)),
                "-o", options,
                timeout=timeout + 10,
                check=False,
            )  # fmt: skip
            if result.returncode == 0:
                self._wait_until_accepting(timeout)
                return self
            errors.append(f"port {self.port}: {result.stdout}{result.stderr}")
        raise RuntimeError(f"PostgreSQL did not start: {errors}; log:\n{self._log_tail()}")

    def stop(self) -> None:
        """pg_ctl stop -m fast (if it runs), then remove the whole folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    self.bindir / "pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30",
                    timeout=40, check=False,
                )  # fmt: skip
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------------

    def admin_connect(self, dbname: str = "postgres") -> Any:
        """A psycopg connection as the superuser over the cluster's own socket (autocommit)."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True
        )

    def create_database(self, name: str, user: str, password: str) -> str:
        """A new login role ``user`` (password stored as SCRAM) owning a new database ``name``; returns
        its SQLAlchemy URL over TCP, ``postgresql+psycopg://user:password@127.0.0.1:PORT/name``."""
        from psycopg import sql

        if not password:
            raise ValueError("a password is required: host connections use scram-sha-256")
        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(user))
            )
        return (
            f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@{self.host}:{self.port}/{quote(name, safe='')}"
        )

    # -- internals ---------------------------------------------------------------------------------

    def _prepare_folders(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.os_user is None:
            return
        entry = _ensure_os_user(self.os_user)
        for folder in (self.base, self.socket_dir):
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            folder.chmod(0o700)
        for parent in self.base.parents:  # the server user must be able to reach its folder
            if not parent.stat().st_mode & 0o001:
                raise PermissionError(
                    f"{parent} is not searchable by other users, so {self.os_user} cannot reach "
                    f"{self.base}: put the cluster under a world-searchable folder such as /tmp"
                )

    def _run(self, *argv: object, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(arg) for arg in argv]
        if self.os_user is not None:
            command = ["runuser", "-u", self.os_user, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def _wait_until_accepting(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.admin_connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL not accepting connections: {error}\n{self._log_tail()}"
                    ) from error
                time.sleep(0.2)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """The unprivileged system user the server runs as, created when absent (another test process may
    create it at the same moment: a failed useradd is fine if the user exists afterwards)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"could not create the OS user {name}: {result.stderr.strip()}") from None


@contextmanager
def throwaway_cluster(prefix: str, missing: Callable[[str], Any]) -> Iterator[PostgresCluster]:
    """A started cluster under /tmp (not pytest's tmp folder: the server's user, not root, must reach
    it), stopped and removed afterwards; ``missing`` reports absent binaries (tests: missing_external)."""
    bindir = find_bindir()
    if bindir is None:
        missing("PostgreSQL (apt-get install postgresql)")
        raise RuntimeError("PostgreSQL binaries not found")
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix=prefix)), bindir=bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
