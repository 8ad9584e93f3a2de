"""What ``shipyard stack up`` starts, and with which settings: the Compose services that run without
Docker, as commands with their environment, ports and health checks.

The variable names and defaults are the Compose file's (``MLFLOW_PORT`` 5000, ``API_PORT`` 8000,
``PROMETHEUS_PORT`` 9090, ``SHIPYARD_JWT_SECRET``...), read from the environment and ``.env`` as Compose
reads them; everything listens on 127.0.0.1 and keeps its data under the state folder (``.stack/``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shipyard.config.loading import load_config
from shipyard.config.settings import Settings
from shipyard.errors import ConfigError

HOST = "127.0.0.1"
DEFAULT_CONFIGS = (Path("configs/iris.yaml"), Path("configs/housing.yaml"))
RULES_SUBDIR = Path("deploy/prometheus/rules")
_DURATION = re.compile(r"^[1-9]\d*(ms|s|m|h)$")
# drivers SQLAlchemy needs for each PostgreSQL URL scheme (mlflow does not install them)
_PG_DRIVERS = {"postgresql": "psycopg2", "postgresql+psycopg2": "psycopg2", "postgresql+psycopg": "psycopg"}


class StackSettings(BaseSettings):
    """The Compose file's variables, from the environment or ``.env``."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mlflow_port: int = Field(5000, ge=1, le=65535, validation_alias="MLFLOW_PORT")
    api_port: int = Field(8000, ge=1, le=65535, validation_alias="API_PORT")
    prometheus_port: int = Field(9090, ge=1, le=65535, validation_alias="PROMETHEUS_PORT")
    backend_store_uri: str | None = Field(
        None,
        validation_alias="MLFLOW_BACKEND_STORE_URI",
        description="The MLflow server's store (e.g. postgresql://...); default SQLite in the state folder.",
    )
    state_dir: Path = Field(Path(".stack"), validation_alias="SHIPYARD_STACK_DIR")


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
    prometheus_port: int | None = None
    backend_store_uri: str | None = None
    configs: tuple[Path, ...] = DEFAULT_CONFIGS
    train: bool = True
    retrain: bool = False  # train models that already have a champion too
    prometheus: bool | None = None  # None: start it when the binary is installed
    rules_dir: Path | None = None
    scrape_interval: str = "15s"
    timeout: float = 300.0
    train_timeout: float = 1800.0


@dataclass(frozen=True)
class ServiceSpec:
    """One service: a long-running ``server`` (healthy when ``health_url`` answers 200) or a one-shot
    ``job`` (done when each of its commands exits 0, in order)."""

    name: str
    kind: Literal["server", "job"]
    commands: tuple[tuple[str, ...], ...]
    env: dict[str, str] = field(repr=False)
    timeout: float
    port: int | None = None
    url: str | None = None
    health_url: str | None = None
    files: dict[Path, str] = field(default_factory=dict, repr=False)  # written just before it starts
    steps: tuple[JobStep, ...] = ()  # a job's commands, described
    ran_text: str = "ran"  # "<ran_text> a, b; <skipped_text> c" sums up a finished job
    skipped_text: str = "skipped (already done)"


@dataclass(frozen=True)
class JobStep:
    """What one command of a job is about (``label``, e.g. the model) and when it is not needed: when
    ``skip_if_ok`` answers 200 (e.g. the model already has a champion)."""

    label: str
    skip_if_ok: str | None = None


@dataclass(frozen=True)
class StackPlan:
    cwd: Path
    state_dir: Path
    services: tuple[ServiceSpec, ...]
    notes: tuple[str, ...]

    def log(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"


def build_plan(options: StackOptions, cwd: Path | None = None) -> StackPlan:
    """Resolve settings and check everything that can be checked before a process starts: the JWT
    secret, the configs, the database driver, Prometheus and its rules. Starts and writes nothing."""
    cwd = (cwd or Path.cwd()).resolve()
    env_settings = load_stack_settings()
    state_dir = _absolute(options.state_dir or env_settings.state_dir, cwd)
    ports = {
        "mlflow": options.mlflow_port or env_settings.mlflow_port,
        "api": options.api_port or env_settings.api_port,
        "prometheus": options.prometheus_port or env_settings.prometheus_port,
    }
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

    base = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    mlflow = _mlflow_service(options, env_settings, state_dir, ports["mlflow"], base)
    server = f"http://{HOST}:{ports['mlflow']}"
    client_env = {
        **base,
        # both spellings, so neither the user's environment nor .env points the clients elsewhere
        "MLFLOW_TRACKING_URI": server,
        "SHIPYARD_TRACKING_URI": server,
        "MLFLOW_REGISTRY_URI": server,
        "SHIPYARD_REGISTRY_URI": server,
        "SHIPYARD_ARTIFACT_LOCATION": "",  # the server decides: artifacts go through it
    }
    services = [mlflow]
    if options.train:
        # like the Compose trainer: train, register and gate each model that has no champion yet
        alias = Settings().champion_alias
        services.append(
            ServiceSpec(
                name="trainer",
                kind="job",
                commands=tuple(
                    (sys.executable, "-m", "shipyard", "train", "-c", str(c)) for c in options.configs
                ),
                env=client_env,
                timeout=options.train_timeout,
                steps=tuple(
                    JobStep(
                        label=model,
                        skip_if_ok=None
                        if options.retrain
                        else f"{server}/api/2.0/mlflow/registered-models/alias?"
                        + urlencode({"name": model, "alias": alias}),
                    )
                    for model in models
                ),
                ran_text="trained and registered",
                skipped_text="a champion exists, not retrained (--retrain trains anyway)",
            )
        )
    api_url = f"http://{HOST}:{ports['api']}"
    api_env = {
        **client_env,
        "SHIPYARD_HOST": HOST,
        "SHIPYARD_PORT": str(ports["api"]),
        "SHIPYARD_AUTH_ENABLED": "true",
        "SHIPYARD_PREDICTION_LOG_PATH": os.environ.get(
            "SHIPYARD_PREDICTION_LOG_PATH", str(state_dir / "api" / "predictions.db")
        ),
    }
    services.append(
        ServiceSpec(
            name="api",
            kind="server",
            commands=((sys.executable, "-m", "shipyard", "serve"),),
            env=api_env,
            timeout=options.timeout,
            port=ports["api"],
            url=api_url,
            health_url=f"{api_url}/ready",
        )
    )
    notes = []
    binary = shutil.which("prometheus")
    if options.prometheus is not False and binary is None:
        if options.prometheus:
            raise ConfigError(
                "--prometheus: no `prometheus` binary on PATH (Debian: apt-get install prometheus)"
            )
        notes.append("prometheus is not installed (Debian: apt-get install prometheus): not started")
    elif options.prometheus is not False and binary is not None:
        rules = _rules_dir(options.rules_dir, cwd)
        config = state_dir / "prometheus" / "prometheus.yml"
        prometheus_url = f"http://{HOST}:{ports['prometheus']}"
        services.append(
            ServiceSpec(
                name="prometheus",
                kind="server",
                commands=(
                    (
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={state_dir / 'prometheus' / 'data'}",
                        f"--web.listen-address={HOST}:{ports['prometheus']}",
                    ),
                ),
                env=dict(base),
                timeout=options.timeout,
                port=ports["prometheus"],
                url=prometheus_url,
                health_url=f"{prometheus_url}/-/ready",
                files={config: prometheus_config(rules, ports["api"], options.scrape_interval)},
            )
        )
    return StackPlan(cwd=cwd, state_dir=state_dir, services=tuple(services), notes=tuple(notes))


def _mlflow_service(
    options: StackOptions, env_settings: StackSettings, state_dir: Path, port: int, env: dict[str, str]
) -> ServiceSpec:
    store = options.backend_store_uri or env_settings.backend_store_uri
    if store is None:
        store = f"sqlite:///{state_dir / 'mlflow' / 'mlflow.db'}"
    else:
        scheme = store.split(":", 1)[0]
        driver = _PG_DRIVERS.get(scheme)
        if driver and importlib.util.find_spec(driver) is None:
            raise ConfigError(
                f"the MLflow store {scheme}://... needs the {driver} driver: "
                f"pip install {'psycopg2-binary' if driver == 'psycopg2' else 'psycopg[binary]'}"
            )
    url = f"http://{HOST}:{port}"
    command = (
        sys.executable, "-m", "mlflow", "server",
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
        env={**env, "MLFLOW_BACKEND_STORE_URI": store},
        timeout=options.timeout,
        port=port,
        url=url,
        health_url=f"{url}/health",
    )


def _rules_dir(given: Path | None, cwd: Path) -> Path:
    """The alert rules: ``--rules``, else ``deploy/prometheus/rules`` of the working directory or of
    the source checkout Shipyard runs from."""
    if given is not None:
        candidates = [_absolute(given, cwd)]
    else:
        candidates = [cwd / RULES_SUBDIR, Path(__file__).resolve().parents[4] / RULES_SUBDIR]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.yml")):
            return candidate
    raise ConfigError(
        f"no Prometheus rules (*.yml) in {' or '.join(str(c) for c in candidates)}: pass --rules DIR"
    )


def prometheus_config(rules: Path, api_port: int, interval: str) -> str:
    """deploy/prometheus/prometheus.yml, pointed at the api on 127.0.0.1 (no Alertmanager here)."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "shipyard",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{HOST}:{api_port}"]}],
            }
        ],
    }
    header = "# Written by `shipyard stack up`: scrapes the api on 127.0.0.1, loads the repo's rules.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def _absolute(path: Path, cwd: Path) -> Path:
    return path if path.is_absolute() else cwd / path
