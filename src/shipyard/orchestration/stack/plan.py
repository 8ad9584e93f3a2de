"""What ``shipyard stack up`` starts, and with which settings: the Compose services that run without
Docker, as commands with their environment, ports and health checks.

The variable names and defaults are the Compose file's (``MLFLOW_PORT`` 5000, ``API_PORT`` 8000,
``MONITOR_PORT`` 8100, ``PROMETHEUS_PORT`` 9090, ``API_REPLICAS`` 1, ``SHIPYARD_JWT_SECRET``...), read from
the environment and ``.env`` as Compose reads them; everything listens on 127.0.0.1 and keeps its data
under the state folder (``.stack/``). The api processes and the monitor share one monitoring store
(``SHIPYARD_MONITORING_URL``, default an SQLite file in the state folder).
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipyard.config.loading import load_config
from shipyard.config.settings import Settings
from shipyard.errors import ConfigError
from shipyard.orchestration.mlflow_users import (
    ADMIN_USER,
    MIN_PASSWORD,
    PASSWORD_ENV,
    READER_USER,
    SECRET_KEY_ENV,
    TRAINER_USER,
    auth_config,
)
from shipyard.orchestration.stack.prometheus import prometheus_service, rules_dir
from shipyard.orchestration.stack.specs import HOST, JobStep, ServiceSpec, StackPlan

DEFAULT_CONFIGS = (Path("configs/iris.yaml"), Path("configs/housing.yaml"))
_DURATION = re.compile(r"^[1-9]\d*(ms|s|m|h)$")
MAX_REPLICAS = 32
# drivers SQLAlchemy needs for each PostgreSQL URL scheme (mlflow does not install them)
_PG_DRIVERS = {"postgresql": "psycopg2", "postgresql+psycopg2": "psycopg2", "postgresql+psycopg": "psycopg"}
_MONITORING_DRIVERS = {"postgresql+psycopg": "psycopg"}  # the monitoring store speaks psycopg 3 only
_PIP = {"psycopg2": "pip install psycopg2-binary", "psycopg": "pip install 'psycopg[binary]'"}
CREDENTIALS_FILE = Path("mlflow") / "credentials.env"  # under the state folder, mode 0600
_CREDENTIAL_VARIABLES = (*PASSWORD_ENV.values(), SECRET_KEY_ENV)


class StackSettings(BaseSettings):
    """The Compose file's variables, from the environment or ``.env``."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mlflow_port: int = Field(5000, ge=1, le=65535, validation_alias="MLFLOW_PORT")
    api_port: int = Field(8000, ge=1, le=65535, validation_alias="API_PORT")
    api_replicas: int = Field(
        1, ge=1, le=MAX_REPLICAS, validation_alias="API_REPLICAS", description="`shipyard serve` processes."
    )
    monitor_port: int = Field(8100, ge=1, le=65535, validation_alias="MONITOR_PORT")
    prometheus_port: int = Field(9090, ge=1, le=65535, validation_alias="PROMETHEUS_PORT")
    backend_store_uri: str | None = Field(
        None,
        validation_alias="MLFLOW_BACKEND_STORE_URI",
        description="The MLflow server's store (e.g. postgresql://...); default SQLite in the state folder.",
    )
    monitoring_url: str | None = Field(
        None,
        validation_alias="SHIPYARD_MONITORING_URL",
        description="The monitoring store the api processes and the monitor share; default "
        "sqlite:///<state>/monitoring.db.",
    )
    state_dir: Path = Field(Path(".stack"), validation_alias="SHIPYARD_STACK_DIR")
    # the MLflow server's credentials (default: generated on the first `up`, kept in the state folder)
    mlflow_admin_password: str | None = Field(None, validation_alias="MLFLOW_AUTH_ADMIN_PASSWORD")
    mlflow_trainer_password: str | None = Field(None, validation_alias="SHIPYARD_MLFLOW_TRAINER_PASSWORD")
    mlflow_reader_password: str | None = Field(None, validation_alias="SHIPYARD_MLFLOW_READER_PASSWORD")
    mlflow_secret_key: str | None = Field(None, validation_alias="MLFLOW_FLASK_SERVER_SECRET_KEY")


def load_stack_settings() -> StackSettings:
    try:
        return StackSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"stack settings (environment or .env): {problems}") from None


@dataclass(frozen=True)
class StackOptions:
    """Everything ``up`` needs; ``None`` means "from StackSettings"."""

    state_dir: Path | None = None
    mlflow_port: int | None = None
    api_port: int | None = None
    api_replicas: int | None = None
    monitor_port: int | None = None
    prometheus_port: int | None = None
    backend_store_uri: str | None = None
    monitoring_url: str | None = None
    configs: tuple[Path, ...] = DEFAULT_CONFIGS
    train: bool = True
    retrain: bool = False  # train models that already have a champion too
    monitor: bool = True  # False: no monitor, each api process computes drift and quality itself
    prometheus: bool | None = None  # None: start it when the binary is installed
    rules_dir: Path | None = None
    scrape_interval: str = "15s"
    timeout: float = 300.0
    train_timeout: float = 1800.0


@dataclass(frozen=True)
class _Ports:
    mlflow: int
    api: tuple[int, ...]  # one per api process: API_PORT, API_PORT+1, ...
    monitor: int
    prometheus: int


def build_plan(options: StackOptions, cwd: Path | None = None) -> StackPlan:
    """Resolve settings and check everything that can be checked before a process starts: the ports,
    the JWT secret, the configs, the database drivers, Prometheus and its rules. Starts and writes
    nothing."""
    cwd = (cwd or Path.cwd()).resolve()
    env_settings = load_stack_settings()
    state_dir = _absolute(options.state_dir or env_settings.state_dir, cwd)
    ports = _ports(options, env_settings)
    # the api runs with auth on, exactly like the Compose service: refuse before starting anything
    try:
        Settings(auth_enabled=True).check_auth()
    except ConfigError as exc:
        reason = str(exc).replace(", or set SHIPYARD_AUTH_ENABLED=false", "")
        raise ConfigError(f"the stack's api runs with auth on, as in Compose: {reason}") from None
    # the configs are parsed now, so a mistake in one stops `up` before anything starts
    models = [load_config(_absolute(c, cwd)).model_name for c in options.configs] if options.train else []
    if not _DURATION.match(options.scrape_interval):
        raise ConfigError(
            f"--scrape-interval: expected a duration like 1s, 15s or 1m, got '{options.scrape_interval}'"
        )
    monitoring_url = _monitoring_url(options, env_settings, state_dir, cwd)

    base = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    credentials, credential_files = stack_credentials(state_dir, env_settings)
    mlflow = _mlflow_service(
        options, env_settings, state_dir, ports.mlflow, base, credentials, credential_files
    )
    server = f"http://{HOST}:{ports.mlflow}"
    client_env = {
        **base,
        # both spellings, so neither the user's environment nor .env points the clients elsewhere
        "MLFLOW_TRACKING_URI": server,
        "SHIPYARD_TRACKING_URI": server,
        "MLFLOW_REGISTRY_URI": server,
        "SHIPYARD_REGISTRY_URI": server,
        "SHIPYARD_ARTIFACT_LOCATION": "",  # the server decides: artifacts go through it
    }
    # the api processes and the monitor read and write one store, named the same way for each (whichever
    # opens it first brings its schema up to date, under a lock)
    # every client logs in to MLflow as its role: the trainer writes, the api and the monitor read
    users_env = {**client_env, **{v: credentials[v] for v in PASSWORD_ENV.values()}}
    trainer = (TRAINER_USER, credentials[PASSWORD_ENV[TRAINER_USER]])
    trainer_env = {
        **client_env,
        "MLFLOW_TRACKING_USERNAME": trainer[0],
        "MLFLOW_TRACKING_PASSWORD": trainer[1],
    }
    client_env = {
        **client_env,
        "MLFLOW_TRACKING_USERNAME": READER_USER,
        "MLFLOW_TRACKING_PASSWORD": credentials[PASSWORD_ENV[READER_USER]],
    }
    store_env = {**client_env, "SHIPYARD_MONITORING_URL": monitoring_url}
    services = [mlflow, _users_service(options, users_env)]
    if options.train:
        services.append(_trainer_service(options, models, trainer_env, server, trainer))
    if options.monitor:
        services.append(_monitor_service(options, ports.monitor, store_env))
    services.extend(_api_services(options, ports, store_env))
    notes = []
    if not options.monitor and len(ports.api) > 1:
        notes.append(
            f"no monitor: each of the {len(ports.api)} api processes computes drift and quality itself "
            "from the shared store"
        )
    binary = shutil.which("prometheus")
    if options.prometheus is not False and binary is None:
        if options.prometheus:
            raise ConfigError(
                "--prometheus: no `prometheus` binary on PATH (Debian: apt-get install prometheus)"
            )
        notes.append("prometheus is not installed (Debian: apt-get install prometheus): not started")
    elif options.prometheus is not False and binary is not None:
        services.append(
            prometheus_service(
                binary,
                rules_dir(options.rules_dir, cwd),
                state_dir,
                ports.prometheus,
                ports.api,
                ports.monitor if options.monitor else None,
                options.scrape_interval,
                options.timeout,
                base,
            )
        )
    _refuse_shared_ports(services, len(ports.api))
    return StackPlan(cwd=cwd, state_dir=state_dir, services=tuple(services), notes=tuple(notes))


def _ports(options: StackOptions, env_settings: StackSettings) -> _Ports:
    """Every port the plan may use: API_PORT, API_PORT+1, ... for the api processes."""
    api_port = options.api_port or env_settings.api_port
    replicas = options.api_replicas or env_settings.api_replicas
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ConfigError(f"--api-replicas: expected 1 to {MAX_REPLICAS}, got {replicas}")
    if api_port + replicas - 1 > 65535:
        raise ConfigError(
            f"{replicas} api processes take ports {api_port}..{api_port + replicas - 1}: past 65535; "
            "lower API_PORT (--api-port)"
        )
    return _Ports(
        mlflow=options.mlflow_port or env_settings.mlflow_port,
        api=tuple(range(api_port, api_port + replicas)),
        monitor=options.monitor_port or env_settings.monitor_port,
        prometheus=options.prometheus_port or env_settings.prometheus_port,
    )


def _refuse_shared_ports(services: list[ServiceSpec], replicas: int) -> None:
    """Two services set to one port: refused, naming both and the port."""
    taken: dict[int, list[str]] = {}
    for spec in services:
        if spec.port is not None:
            taken.setdefault(spec.port, []).append(spec.name)
    clashes = [f"{' and '.join(names)} on {port}" for port, names in taken.items() if len(names) > 1]
    if clashes:
        spread = f" (the api processes take API_PORT..API_PORT+{replicas - 1})" if replicas > 1 else ""
        raise ConfigError(f"two services on one port: {'; '.join(clashes)}{spread}; choose other ports")


def api_names(replicas: int) -> list[str]:
    """``api`` for one process (as before), ``api-1`` .. ``api-N`` for several."""
    return ["api"] if replicas == 1 else [f"api-{i}" for i in range(1, replicas + 1)]


def _default_monitoring_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'monitoring.db'}"


def _monitoring_url(options: StackOptions, env_settings: StackSettings, state_dir: Path, cwd: Path) -> str:
    """``--monitoring-url``, else SHIPYARD_MONITORING_URL, else the file SHIPYARD_PREDICTION_LOG_PATH
    names (as before), else ``monitoring.db`` in the state folder; its driver must be installed."""
    url = options.monitoring_url or env_settings.monitoring_url
    if not url:
        log_path = os.environ.get("SHIPYARD_PREDICTION_LOG_PATH")
        return (
            f"sqlite:///{_absolute(Path(log_path), cwd)}" if log_path else _default_monitoring_url(state_dir)
        )
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme == "sqlite":
        return url
    if scheme in _MONITORING_DRIVERS:
        driver = _MONITORING_DRIVERS[scheme]
        if importlib.util.find_spec(driver) is None:
            raise ConfigError(
                f"the monitoring store {scheme}://... needs the {driver} driver: {_PIP[driver]}"
            )
        return url
    # the URL may hold a password: name its scheme only
    raise ConfigError(
        "--monitoring-url / SHIPYARD_MONITORING_URL: expected sqlite:///FILE or "
        f"postgresql+psycopg://USER:PASSWORD@HOST:5432/DB, got a URL with scheme '{scheme or '(none)'}'"
    )


def stack_credentials(state_dir: Path, env_settings: StackSettings) -> tuple[dict[str, str], dict[Path, str]]:
    """The MLflow admin's and the roles' passwords and the server's CSRF key: each from the environment
    (or .env) when set there, else from the state folder's credentials file, else generated now (and
    that file, mode 0600, to write). The same values on every ``up``: MLflow keeps the admin password it
    first started with."""
    from dotenv import dotenv_values

    path = state_dir / CREDENTIALS_FILE
    kept = {k: v for k, v in dotenv_values(path).items() if v} if path.exists() else {}
    set_here = {
        PASSWORD_ENV[ADMIN_USER]: env_settings.mlflow_admin_password,
        PASSWORD_ENV[TRAINER_USER]: env_settings.mlflow_trainer_password,
        PASSWORD_ENV[READER_USER]: env_settings.mlflow_reader_password,
        SECRET_KEY_ENV: env_settings.mlflow_secret_key,
    }
    values: dict[str, str] = {}
    for variable in _CREDENTIAL_VARIABLES:
        given = set_here[variable]
        values[variable] = given or kept.get(variable) or secrets.token_urlsafe(24)
        if given and variable in PASSWORD_ENV.values() and len(given) < MIN_PASSWORD:
            raise ConfigError(f"{variable}: at least {MIN_PASSWORD} characters, got {len(given)}")
    if all(kept.get(v) == values[v] for v in _CREDENTIAL_VARIABLES):
        return values, {}
    text = "# MLflow credentials of this stack (shipyard stack up): keep private\n" + "".join(
        f"{variable}={values[variable]}\n" for variable in _CREDENTIAL_VARIABLES
    )
    return values, {path: text}


def _users_service(options: StackOptions, env: dict[str, str]) -> ServiceSpec:
    """Creates (or re-keys) the roles' MLflow users as the admin, once the server answers."""
    return ServiceSpec(
        name="mlflow-users",
        kind="job",
        commands=((sys.executable, "-m", "shipyard.orchestration.mlflow_users"),),
        env=env,
        timeout=options.timeout,
        steps=(JobStep(label=f"{TRAINER_USER}, {READER_USER}"),),
        ran_text="set up MLflow users",
    )


def _trainer_service(
    options: StackOptions,
    models: list[str],
    env: dict[str, str],
    server: str,
    login: tuple[str, str] | None = None,
) -> ServiceSpec:
    """Like the Compose trainer: train, register and gate each model that has no champion yet."""
    alias = Settings().champion_alias
    return ServiceSpec(
        name="trainer",
        kind="job",
        commands=tuple((sys.executable, "-m", "shipyard", "train", "-c", str(c)) for c in options.configs),
        env=env,
        timeout=options.train_timeout,
        steps=tuple(
            JobStep(
                label=model,
                skip_if_ok=None
                if options.retrain
                else f"{server}/api/2.0/mlflow/registered-models/alias?"
                + urlencode({"name": model, "alias": alias}),
                login=login,
            )
            for model in models
        ),
        ran_text="trained and registered",
        skipped_text="a champion exists, not retrained (--retrain trains anyway)",
    )


def _monitor_service(options: StackOptions, port: int, env: dict[str, str]) -> ServiceSpec:
    """The one monitor: drift and live quality from the shared store, on its own /metrics."""
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="monitor",
        kind="server",
        commands=((sys.executable, "-m", "shipyard", "monitor", "--host", HOST, "--port", str(port)),),
        env={**env, "SHIPYARD_MONITOR_HOST": HOST, "SHIPYARD_MONITOR_PORT": str(port)},
        timeout=options.timeout,
        port=port,
        url=url,
        health_url=f"{url}/ready",
        port_setting="MONITOR_PORT or --monitor-port",
    )


def _api_services(options: StackOptions, ports: _Ports, env: dict[str, str]) -> list[ServiceSpec]:
    """``shipyard serve`` on API_PORT, API_PORT+1, ...; with a monitor they only answer and write."""
    services = []
    for name, port in zip(api_names(len(ports.api)), ports.api, strict=True):
        url = f"http://{HOST}:{port}"
        services.append(
            ServiceSpec(
                name=name,
                kind="server",
                commands=((sys.executable, "-m", "shipyard", "serve"),),
                env={
                    **env,
                    "SHIPYARD_HOST": HOST,
                    "SHIPYARD_PORT": str(port),
                    "SHIPYARD_AUTH_ENABLED": "true",
                    "SHIPYARD_MONITOR_IN_PROCESS": "false" if options.monitor else "true",
                },
                timeout=options.timeout,
                port=port,
                url=url,
                health_url=f"{url}/ready",
                port_setting="API_PORT or --api-port"
                + (
                    f"; the api processes take API_PORT..API_PORT+{len(ports.api) - 1}"
                    if len(ports.api) > 1
                    else ""
                ),
            )
        )
    return services


def _mlflow_service(
    options: StackOptions,
    env_settings: StackSettings,
    state_dir: Path,
    port: int,
    env: dict[str, str],
    credentials: dict[str, str],
    credential_files: dict[Path, str],
) -> ServiceSpec:
    store = options.backend_store_uri or env_settings.backend_store_uri
    if store is None:
        store = f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}"
    else:
        scheme = store.split(":", 1)[0]
        driver = _PG_DRIVERS.get(scheme)
        if driver and importlib.util.find_spec(driver) is None:
            raise ConfigError(f"the MLflow store {scheme}://... needs the {driver} driver: {_PIP[driver]}")
    url = f"http://{HOST}:{port}"
    auth_ini = state_dir / "mlflow" / "basic_auth.ini"
    command = (
        sys.executable, "-m", "mlflow", "server",
        "--app-name", "basic-auth",
        "--artifacts-destination", (state_dir / "mlflow" / "artifacts").as_uri(),
        "--serve-artifacts",
        "--host", HOST,
        "--port", str(port),
        "--workers", "1",
        "--allowed-hosts", f"{HOST},{HOST}:{port},localhost,localhost:{port}",
    )  # fmt: skip
    return ServiceSpec(
        name="mlflow",
        kind="server",
        commands=(command,),
        # read by `mlflow server` like --backend-store-uri, but a password stays out of `ps` and state.json
        env={
            **env,
            "MLFLOW_BACKEND_STORE_URI": store,
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
            PASSWORD_ENV[ADMIN_USER]: credentials[PASSWORD_ENV[ADMIN_USER]],
            SECRET_KEY_ENV: credentials[SECRET_KEY_ENV],
        },
        files={
            auth_ini: auth_config(f"sqlite:///{state_dir / 'mlflow' / 'basic_auth.db'}"),
            **credential_files,
        },
        timeout=options.timeout,
        port=port,
        url=url,
        health_url=f"{url}/health",
        port_setting="MLFLOW_PORT or --mlflow-port",
    )


def _absolute(path: Path, cwd: Path) -> Path:
    return path if path.is_absolute() else cwd / path
