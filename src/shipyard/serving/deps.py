"""Dependencies the routes declare: settings, the model holder, metrics and the auth check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from shipyard.config.settings import Settings
from shipyard.serving.auth import Principal, TokenVerifier
from shipyard.serving.dataplane import DataPlane
from shipyard.serving.holder import ModelHolder
from shipyard.serving.metrics import ServiceMetrics

ANONYMOUS = Principal("anonymous", frozenset({"predict", "admin", "batch"}))


async def get_holder(request: Request) -> ModelHolder:
    holder = services(request).plane.holder
    assert holder is not None  # set before the app takes requests
    return holder


async def get_metrics(request: Request) -> ServiceMetrics:
    return services(request).metrics


@dataclass
class Services:
    """What a request needs, reached with one attribute lookup on the prediction routes (no dependency
    injection there: FastAPI's resolution cost ~150 µs a request, more than the prediction): the
    settings, the token check, the metrics and the data plane that owns everything a prediction
    touches."""

    settings: Settings
    metrics: ServiceMetrics
    verifier: TokenVerifier | None
    plane: DataPlane


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def authorize(authorization: str | None, svc: Services, scope: str) -> Principal:
    """The auth check, called directly by the prediction handlers with the Authorization header."""
    if svc.verifier is None:
        return ANONYMOUS
    principal = svc.verifier.verify(authorization)
    svc.verifier.require(principal, scope)
    return principal


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that lets the request through only with a valid token holding ``scope``.

    Dependencies are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in its thread
    pool, a thread hop per dependency per request (profiled: it cost more than the prediction)."""

    async def check(request: Request) -> Principal:
        return authorize(request.headers.get("authorization"), services(request), scope)

    return check


HolderDep = Annotated[ModelHolder, Depends(get_holder)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
AdminScope = Annotated[Principal, Depends(require("admin"))]
