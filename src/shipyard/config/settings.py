"""Runtime settings from the environment and ``.env`` (never from code).

The default is the embedded store: an SQLite database and an artifact folder under ``home`` (the
working directory), so nothing needs a server. Point ``MLFLOW_TRACKING_URI`` (or
``SHIPYARD_TRACKING_URI``) at an ``mlflow server`` and the same code talks to it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
