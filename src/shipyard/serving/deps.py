"""Dependencies the routes declare: settings, the model holder, metrics and the auth check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from shipyard.config.settings import Settings
from shipyard.serving.auth import Principal, TokenVerifier
from shipyard.serving.holder import ModelHolder
from shipyard.serving.metrics import ServiceMetrics

ANONYMOUS = Principal("anonymous", frozenset({"predict", "admin", "batch"}))


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def require(scope: str) -> Callable[[Request], Principal]:
    """A dependency that lets the request through only with a valid token holding ``scope``."""

    def check(request: Request) -> Principal:
        verifier: TokenVerifier | None = request.app.state.verifier
        if verifier is None:  # auth off (local demo)
            return ANONYMOUS
        principal = verifier.verify(request.headers.get("authorization"))
        verifier.require(principal, scope)
        return principal

    return check


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
PredictScope = Annotated[Principal, Depends(require("predict"))]
AdminScope = Annotated[Principal, Depends(require("admin"))]


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))
