"""What the steps receive as parameters, and back: the config as its JSON mapping, and the few settings
the register and promote steps use. ZenML stores step parameters in its database, so no secret goes in:
Settings' SecretStr fields are never passed, and a tracking or registry URI that carries a password
travels in the process environment instead (see ``uri_environment``). Importing this does not import
ZenML."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shipyard.config.loading import parse_config
from shipyard.config.pipeline import PipelineConfig
from shipyard.config.settings import Settings

# What register_model and promote_model read from Settings (directly or through the registry layer).
STEP_SETTINGS = (
    "home",
    "tracking_uri",
    "registry_uri",
    "artifact_location",
    "experiment",
    "model_name",
    "champion_alias",
    "challenger_alias",
)
# Where a URI with a password goes instead of the step parameters (Settings reads these names).
_URI_ENV = {"tracking_uri": "SHIPYARD_TRACKING_URI", "registry_uri": "SHIPYARD_REGISTRY_URI"}


def config_param(config: PipelineConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def config_from_param(raw: dict[str, Any]) -> PipelineConfig:
    return parse_config(raw, source="zenml step parameter 'config'")


def has_password(uri: str | None) -> bool:
    if not uri:
        return False
    try:
        return urlsplit(uri).password is not None
    except ValueError:
        return False


def settings_param(settings: Settings) -> dict[str, Any]:
    """The settings the steps need, JSON-ready; secrets left out."""
    out: dict[str, Any] = {}
    for name in STEP_SETTINGS:
        value = getattr(settings, name)
        if name in _URI_ENV and has_password(value):
            continue  # read from the environment in the step: see uri_environment
        out[name] = str(value.resolve()) if isinstance(value, Path) else value
    return out


def uri_environment(settings: Settings) -> dict[str, str]:
    """Environment variables that carry the URIs ``settings_param`` left out (they hold a password).
    The local orchestrator runs steps in this process, so setting them for the run is enough."""
    return {
        env: getattr(settings, name)
        for name, env in _URI_ENV.items()
        if has_password(getattr(settings, name))
    }


def settings_from_param(raw: dict[str, Any]) -> Settings:
    """Settings for a step: the passed fields win; anything left out (a URI with a password) comes from
    the environment, as for any Settings."""
    return Settings(**raw)
