"""The MLflow server behind its built-in basic-auth app, and the users Shipyard's roles log in as.

Every deployment runs ``mlflow server --app-name basic-auth`` (an open tracking server is an attack
target: MLflow's own tracker has reports of exposed servers abused). The admin password comes from the
environment (``MLFLOW_AUTH_ADMIN_PASSWORD``, read by MLflow itself when it first creates the admin), the
CSRF key from ``MLFLOW_FLASK_SERVER_SECRET_KEY``; every other user has ``READ`` by default
(``default_permission`` in the auth config). Two users serve the roles:

    shipyard-trainer   the trainer, the retrain job and tuning: creates experiments and registered models
                       (MLflow gives a resource's creator MANAGE on it), so it can write what it made
    shipyard-reader    the api, the monitor and the batch worker: read only

Each client gets its own pair as ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``. This
module writes the auth config and creates (or re-keys) the two users through MLflow's REST API as the
admin: ``python -m shipyard.orchestration.mlflow_users`` is the one-shot job Compose, Kubernetes and
``shipyard stack up`` run once the server answers; it reads the server from ``MLFLOW_TRACKING_URI`` and
the passwords from ``MLFLOW_AUTH_ADMIN_PASSWORD``, ``SHIPYARD_MLFLOW_TRAINER_PASSWORD`` and
``SHIPYARD_MLFLOW_READER_PASSWORD``. ``python -m shipyard.orchestration.mlflow_users --write-config PATH``
writes the auth config for a container about to run ``mlflow server`` (MLflow reads the users' database
URL only from that file; it comes from ``MLFLOW_AUTH_DATABASE_URI``, e.g. the tracking store's own
PostgreSQL database: the auth tables and their migration table have their own names).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ADMIN_USER = "admin"
TRAINER_USER = "shipyard-trainer"
READER_USER = "shipyard-reader"
PASSWORD_ENV = {
    ADMIN_USER: "MLFLOW_AUTH_ADMIN_PASSWORD",
    TRAINER_USER: "SHIPYARD_MLFLOW_TRAINER_PASSWORD",
    READER_USER: "SHIPYARD_MLFLOW_READER_PASSWORD",
}
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
MIN_PASSWORD = 12


class UserSetupError(RuntimeError):
    """The users could not be set up: the server refused the admin, or answered something else."""


def auth_config(database_uri: str) -> str:
    """The auth app's config (``MLFLOW_AUTH_CONFIG_PATH``): users in ``database_uri``, READ by default,
    no admin password in the file (MLflow reads it from MLFLOW_AUTH_ADMIN_PASSWORD)."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {ADMIN_USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def check_password(user: str, password: str | None) -> str:
    """The password, or a clear error naming the variable that should hold it."""
    variable = PASSWORD_ENV[user]
    if not password:
        raise UserSetupError(f"{variable} is not set: the MLflow user '{user}' needs a password")
    if len(password) < MIN_PASSWORD:
        raise UserSetupError(f"{variable}: at least {MIN_PASSWORD} characters, got {len(password)}")
    return password


def _call(server: str, path: str, body: dict[str, str], admin_password: str, method: str = "POST") -> int:
    token = base64.b64encode(f"{ADMIN_USER}:{admin_password}".encode()).decode()
    request = urllib.request.Request(
        f"{server.rstrip('/')}{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def ensure_users(server: str, admin_password: str, users: dict[str, str]) -> dict[str, str]:
    """Create each user with its password, or set the password of one that exists (so a rotated secret
    takes effect on the next run); what was done per user. Passwords never appear in errors."""
    done = {}
    for user, password in users.items():
        status = _call(
            server, "/api/2.0/mlflow/users/create", {"username": user, "password": password}, admin_password
        )
        if status == 200:
            done[user] = "created"
            continue
        if status in (401, 403):
            raise UserSetupError(
                f"{server} refused the admin (HTTP {status}): is MLFLOW_AUTH_ADMIN_PASSWORD the password "
                "the server's admin was created with?"
            )
        if status != 400:  # 400: RESOURCE_ALREADY_EXISTS
            raise UserSetupError(f"{server}: creating MLflow user '{user}' answered HTTP {status}")
        status = _call(
            server,
            "/api/2.0/mlflow/users/update-password",
            {"username": user, "password": password},
            admin_password,
            method="PATCH",
        )
        if status != 200:
            raise UserSetupError(
                f"{server}: updating the password of MLflow user '{user}' answered HTTP {status}"
            )
        done[user] = "password set"
    return done


def wait_for(server: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{server.rstrip('/')}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise UserSetupError(f"{server}/health did not answer 200 in {timeout:.0f} s")
        time.sleep(1)


def main(environ: dict[str, str] | None = None, argv: list[str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--write-config"] and len(args) == 2:
        database = env.get("MLFLOW_AUTH_DATABASE_URI", "")
        if not database:
            print(
                "error: MLFLOW_AUTH_DATABASE_URI is not set: where the MLflow users are kept", file=sys.stderr
            )
            return 2
        write_private(Path(args[1]), auth_config(database))
        return 0
    if args:
        print("usage: python -m shipyard.orchestration.mlflow_users [--write-config PATH]", file=sys.stderr)
        return 2
    server = env.get("MLFLOW_TRACKING_URI", "")
    try:
        if not server.startswith(("http://", "https://")):
            raise UserSetupError(f"MLFLOW_TRACKING_URI: expected the server's http(s) URL, got '{server}'")
        admin = check_password(ADMIN_USER, env.get(PASSWORD_ENV[ADMIN_USER]))
        users = {u: check_password(u, env.get(PASSWORD_ENV[u])) for u in (TRAINER_USER, READER_USER)}
        wait_for(server)
        done = ensure_users(server, admin, users)
    except UserSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for user, what in done.items():
        print(f"MLflow user {user}: {what}")
    return 0


def write_private(path: Path, text: str) -> None:
    """A file only its owner can read (credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


if __name__ == "__main__":
    raise SystemExit(main())
