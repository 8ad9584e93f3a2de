"""Runtime settings from the environment and ``.env`` (never from code).

The default is the embedded store: an SQLite database and an artifact folder under ``home`` (the
working directory), so nothing needs a server. Point ``MLFLOW_TRACKING_URI`` (or
``SHIPYARD_TRACKING_URI``) at an ``mlflow server`` and the same code talks to it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shipyard.errors import ConfigError

# Values people leave in .env files; the service refuses to start with auth on and one of these.
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "change_me", "secret", "changethis", "password", "test"}
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHIPYARD_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    home: Path = Field(
        Path("."), description="Folder that holds the embedded store (mlflow.db, mlartifacts/)."
    )
    tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("SHIPYARD_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI; default sqlite:///<home>/mlflow.db.",
    )
    registry_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("SHIPYARD_REGISTRY_URI", "MLFLOW_REGISTRY_URI"),
        description="Model registry URI; default: the tracking URI.",
    )
    artifact_location: str | None = Field(
        None,
        description="Artifact root for new experiments; default <home>/mlartifacts with a local store, "
        "the server's own setting with a remote one.",
    )
    experiment: str | None = Field(None, description="Experiment override (default: one per config).")
    model_name: str | None = Field(None, description="Registered model name override (default: per config).")
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    log_level: str = "INFO"

    # serving
    host: str = Field("127.0.0.1", description="Address `shipyard serve` binds.")
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes.")
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["iris", "housing"],
        description="Models to serve (comma-separated in the environment); the first is the default.",
    )
    reload_interval_seconds: float = Field(30.0, ge=0, description="How often to check aliases; 0 = never.")
    registry_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="Longest the service waits for the registry to answer an alias check."
    )
    registry_load_timeout_seconds: float = Field(
        120.0, gt=0, description="Longest the service waits for the registry to hand over a model version."
    )
    max_rows: int = Field(10_000, ge=1, description="Rows per request; more is answered 413.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Request body limit; more is 413.")
    access_log: bool = Field(True, description="One JSON log line per request.")
    fast_path: bool = Field(True, description="Serve through ONNX Runtime when it matches scikit-learn.")
    prediction_log: bool = Field(True, description="Log every prediction (features, output) for drift.")
    prediction_log_path: Path | None = Field(
        None, description="SQLite file of the default store when SHIPYARD_MONITORING_URL is unset."
    )
    monitoring_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the monitoring store (predictions, feedback, drift and quality "
        "results): sqlite:///PATH, or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB shared by every "
        "replica; default sqlite:///<home>/predictions.db.",
    )
    monitor_in_process: bool = Field(
        True,
        description="The api computes drift and live quality itself; false on replicas when a "
        "`shipyard monitor` runs (the replicas then only write to the store).",
    )
    monitoring_retention_days: float = Field(
        30.0, ge=0, description="Logged predictions and feedback older than this are deleted (0 = keep)."
    )
    quality_window: int = Field(
        1000, ge=1, description="Latest labelled rows per version and variant that live quality grades."
    )
    monitor_host: str = Field("127.0.0.1", description="Address `shipyard monitor` binds.")
    monitor_port: int = Field(8100, ge=1, le=65535, description="Port `shipyard monitor` listens on.")
    prediction_log_sample_rate: float = Field(1.0, ge=0, le=1, description="Share of requests logged.")
    drift_interval_seconds: float = Field(
        60.0, ge=0, description="How often the service recomputes drift from the log (0 = on request only)."
    )
    drift_window: int = Field(5000, ge=10, description="Latest logged rows the service's drift looks at.")
    prediction_log_queue: int = Field(
        10_000, ge=1, description="Requests buffered for the writer; more are dropped (and counted)."
    )
    ab_mode: Literal["off", "split", "shadow"] = Field(
        "off",
        description="A/B test the challenger alias: 'split' answers a share of requests with it, 'shadow' "
        "scores every request with it too but answers with the champion; 'off' serves the champion only.",
    )
    ab_split: float = Field(
        0.1, ge=0, le=1, description="Share of requests the challenger answers in 'split' mode (0.1 = 90/10)."
    )
    ab_models: Annotated[list[str] | None, NoDecode] = Field(
        None, description="Models under A/B test (comma-separated; default: every served model)."
    )
    ab_key_header: str = Field(
        "X-Shipyard-Key",
        description="Request header whose value routes sticky (same key, same variant); none: random.",
    )
    ab_key_field: str | None = Field(
        None,
        description="Or a request field that routes sticky (e.g. user_id): in the record (one-record "
        "/predict), beside 'records', or in V2 'parameters'; it is not passed to the model.",
    )

    # batch jobs through a queue (POST /batch/jobs, `shipyard batch worker`)
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="Redis that holds the batch queue and the jobs' state."
    )
    batch_root: Path | None = Field(
        None,
        description="The only folder batch jobs may read from and write to (relative job paths are "
        "taken inside it); default: home.",
    )
    batch_queue: str = Field(
        "shipyard-batch",
        pattern=r"^[A-Za-z_][A-Za-z0-9._-]*$",
        description="Queue name batch jobs are sent to and workers take them from.",
    )
    batch_max_attempts: int = Field(
        3, ge=1, le=100, description="Attempts per job (a killed worker's attempt counts) before it is dead."
    )
    batch_retry_backoff_seconds: float = Field(
        15.0, gt=0, description="Wait before the first retry of a failed job; doubles with each retry."
    )
    batch_retry_max_backoff_seconds: float = Field(600.0, gt=0, description="Longest wait between retries.")
    batch_worker_timeout_seconds: float = Field(
        60.0,
        ge=1,
        description="A worker silent this long is taken for dead and its job is handed to another worker.",
    )
    batch_requeue_chance: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Share of a worker's queue polls that also look for dead workers' jobs to hand back.",
    )
    batch_time_limit_seconds: float = Field(
        6 * 3600.0, gt=0, description="A job attempt running longer is stopped and the job failed."
    )
    batch_job_ttl_seconds: int = Field(
        7 * 86400, ge=60, description="How long a job's status is kept after it ended."
    )
    batch_chunk_rows: int = Field(
        100_000, ge=1, description="Rows scored per chunk when a job does not say (memory stays bounded)."
    )
    batch_workers: int | None = Field(
        None,
        ge=1,
        description="Processes that score a batch file's chunks (1: in the calling process); "
        "default: every CPU this process may use.",
    )
    onnx_regression_rtol: float = Field(
        0.0,
        ge=0,
        description="Relative difference from scikit-learn accepted for ONNX regressors (0 = exact).",
    )

    # auth (JWT bearer tokens)
    auth_enabled: bool = Field(True, description="Require JWTs on prediction and admin routes.")
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: SecretStr | None = Field(None, description="HS256 signing secret (32+ characters).")
    jwt_public_key: SecretStr | None = Field(None, description="RS256 public key (PEM text or a file path).")
    jwt_private_key: SecretStr | None = Field(None, description="RS256 private key, only to mint tokens.")
    jwt_audience: str = "shipyard"
    jwt_issuer: str | None = None

    @field_validator("models", "ab_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def monitoring_store_url(self) -> str:
        """The monitoring store: SHIPYARD_MONITORING_URL, else the embedded SQLite file."""
        if self.monitoring_url:
            return self.monitoring_url
        return f"sqlite:///{self.prediction_log_path or (self.home / 'predictions.db').resolve()}"

    def ab_enabled(self, name: str) -> bool:
        """Whether ``name`` is under A/B test (its challenger is loaded and routed to)."""
        return self.ab_mode != "off" and (self.ab_models is None or name in self.ab_models)

    @property
    def default_model(self) -> str:
        return self.models[0]

    def check_auth(self) -> None:
        """Refuse to serve with auth on and no usable key; never print the secret itself."""
        if not self.auth_enabled:
            return
        if self.jwt_algorithm == "HS256":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if secret.strip().lower() in PLACEHOLDER_SECRETS:
                raise ConfigError(
                    "auth is on but SHIPYARD_JWT_SECRET is unset or a placeholder: set a random secret of "
                    f"{MIN_SECRET_LENGTH}+ characters (e.g. `openssl rand -hex 32`), "
                    "or set SHIPYARD_AUTH_ENABLED=false"
                )
            if len(secret) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"SHIPYARD_JWT_SECRET is {len(secret)} characters; use at least {MIN_SECRET_LENGTH}"
                )
        elif self.jwt_public_key is None:
            raise ConfigError("auth is on with RS256 but SHIPYARD_JWT_PUBLIC_KEY is unset")

    @property
    def store_uri(self) -> str:
        """The tracking URI in force."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def is_local_store(self) -> bool:
        return not self.store_uri.startswith(("http://", "https://", "databricks"))

    @property
    def artifact_root(self) -> str | None:
        """Where new experiments keep artifacts; None lets a remote server decide."""
        if self.artifact_location:
            return self.artifact_location
        if self.is_local_store:
            return (self.home / "mlartifacts").resolve().as_uri()
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; tests build ``Settings(...)`` and pass it instead."""
    return Settings()
