"""Health, readiness (also as MLflow's ``/ping``), version, model metadata, Prometheus metrics and the
admin reload."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from shipyard import __version__
from shipyard.monitoring.quality_history import MAX_LIMIT, Check, parse_moment, read_quality_history
from shipyard.serving.deps import AdminScope, HolderDep, MetricsDep, services
from shipyard.serving.memory import settle as _settle_memory
from shipyard.serving.responses import FastJSONResponse
from shipyard.serving.schemas import (
    TEXT,
    DriftReportBody,
    Health,
    ModelDetail,
    ModelList,
    QualityHistoryBody,
    Readiness,
    ReloadOutcome,
    ok,
    problems,
)

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Alive (Kubernetes liveness)", response_model=None, responses=ok(Health))
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ping",
    summary="MLflow's health check: 200 once every model is loaded, 404 before (as `mlflow models serve`)",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": 'a bare newline ("\\n", not JSON)'},
        404: {"description": "a model is not loaded"},
    },
)
async def ping(holder: HolderDep) -> Response:
    # MLflow's scoring server answers a bare newline, 200 when its model is loaded and 404 otherwise;
    # its clients and SageMaker-style probes read only the status
    return Response(content="\n", status_code=200 if holder.ready else 404, media_type="application/json")


@router.get(
    "/version",
    summary="The Shipyard version, as text (as MLflow's `/version` answers its own)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {**TEXT, "example": __version__}}}},
)
async def version() -> Response:
    return Response(content=__version__, media_type="text/plain")


@router.get(
    "/ready",
    summary="Every model loaded and warmed (Kubernetes readiness)",
    responses={**ok(Readiness), 503: {"model": Readiness, "description": "a model is not loaded yet"}},
)
async def ready(holder: HolderDep) -> FastJSONResponse:
    body = {
        "ready": holder.ready,
        "models": {name: (name in {m.name for m in holder.loaded()}) for name in holder.names},
    }
    return FastJSONResponse(body, status_code=200 if holder.ready else 503)


@router.get("/models", summary="Served models", response_model=None, responses=ok(ModelList))
async def list_models(holder: HolderDep) -> dict[str, Any]:
    loaded = {m.name: m.describe() for m in holder.loaded()}
    return {
        "models": [
            loaded.get(
                name, {"name": name, "loaded": False, "error": holder.errors.get(name, "not loaded yet")}
            )
            for name in holder.names
        ]
    }


@router.get(
    "/models/{name}",
    summary="One served model: version, alias, run, metrics, signature, lineage",
    response_model=None,
    responses={**ok(ModelDetail), **problems(404)},
)
async def model_detail(name: str, request: Request, holder: HolderDep) -> dict[str, Any]:
    model = holder.get(name)
    status = holder.registry
    settings = services(request).settings
    challenger = holder.challenger(name)
    return {
        **model.describe(),
        "ab_test": {
            "mode": settings.ab_mode if settings.ab_enabled(name) else "off",
            "split": settings.ab_split,
            "key": {"header": settings.ab_key_header, "field": settings.ab_key_field},
            "challenger": challenger.describe() if challenger else None,
        },
        "registry": {
            "reachable": status.reachable,
            "error": status.error,
            "checked_at": status.checked_at.isoformat(timespec="seconds") if status.checked_at else None,
        },
    }


@router.get(
    "/models/{name}/drift",
    summary="The latest drift report of a served model's version (refresh=true recomputes it now)",
    response_model=None,
    responses={
        **ok(DriftReportBody),
        **problems(
            404, 409, 422, 503, said={404: "not served, or no report yet", 409: "a monitor computes it"}
        ),
    },
)
async def model_drift(
    name: str, request: Request, holder: HolderDep, refresh: bool = False
) -> dict[str, Any]:
    """The report the monitor (in-process, or `shipyard monitor` on the same store) computed last for
    the version this replica serves."""
    model = holder.get(name)
    plane = services(request).plane
    monitor = plane.monitor
    if refresh:
        if monitor is None:
            raise HTTPException(
                409,
                "drift is computed by the monitor here (SHIPYARD_MONITOR_IN_PROCESS=false): "
                f"ask it, GET /models/{name}/drift?refresh=true on `shipyard monitor`",
            )
        if not monitor.watches_drift:
            raise HTTPException(404, "drift is not watched here (it needs a registry for the references)")
        if plane.prediction_log is not None:
            await asyncio.to_thread(plane.prediction_log.flush)
        reports = await asyncio.to_thread(monitor.drift, name, model.version)
        if reports:
            return reports[0].to_dict()
    elif plane.store is not None:
        stored = await asyncio.to_thread(plane.store.latest_result, "drift", name, model.version)
        if stored is not None:
            return stored
    raise HTTPException(
        404, f"no drift report for '{name}' yet: no logged predictions of version {model.version}"
    )


@router.get(
    "/models/{name}/quality/history",
    summary="Data quality per monitoring window of a served model, newest first (from the stored drift "
    "reports)",
    response_model=None,
    responses={**ok(QualityHistoryBody), **problems(404, 422, 503, said={404: "not served"})},
)
async def model_quality_history(
    name: str,
    request: Request,
    holder: HolderDep,
    since: Annotated[str | None, Query(description="From this time: epoch seconds or ISO-8601.")] = None,
    until: Annotated[str | None, Query(description="Up to this time: epoch seconds or ISO-8601.")] = None,
    version: Annotated[str | None, Query(description="Only this version's windows.")] = None,
    feature: Annotated[str | None, Query(description="Only this feature's rows.")] = None,
    check: Annotated[Check | None, Query(description="Only rows where this check is above zero.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many windows.")] = 100,
) -> dict[str, Any]:
    """Missing values, values outside the training range, unseen categories and refused values, per
    feature and window, as the monitor (in-process, or `shipyard monitor` on the same store) stored them
    with each drift report; an empty list before the first report."""
    holder.get(name)
    store = services(request).plane.store
    if store is None:
        raise HTTPException(503, "the monitoring store is not open yet")
    start = None if since is None else parse_moment(since, "since")
    end = None if until is None else parse_moment(until, "until")
    history = await asyncio.to_thread(
        read_quality_history,
        store,
        name,
        version=version,
        since=start,
        until=end,
        limit=limit,
        feature=feature,
        check=check,
    )
    return history.to_dict()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: TEXT}}},
)
async def metrics(service_metrics: MetricsDep) -> Response:
    return Response(service_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/admin/reload",
    summary="Check every alias now and swap what moved (scope: admin)",
    response_model=None,
    responses={
        **ok(ReloadOutcome),
        **problems(401, 403, 503, said={503: "the registry is unreachable; the served models stay served"}),
    },
)
async def reload(holder: HolderDep, _: AdminScope) -> dict[str, Any]:
    """While the registry does not answer: 503 naming it within SHIPYARD_REGISTRY_TIMEOUT_SECONDS + 1 s
    (6 s by default), the served models untouched. A version it hands over is loaded and swapped before
    the answer (a load waits at most SHIPYARD_REGISTRY_LOAD_TIMEOUT_SECONDS for the registry)."""
    outcome = await holder.reload()
    if any(v.startswith("loaded") for v in outcome.values()):
        _settle_memory()
    return {
        "models": outcome,
        "registry": {"reachable": holder.registry.reachable, "error": holder.registry.error},
    }
