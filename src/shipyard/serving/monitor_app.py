"""The monitor role's HTTP face: ``shipyard monitor`` serves this app (one per deployment).

It opens the shared monitoring store (upgrading its schema), runs a monitoring round at start and
every ``SHIPYARD_DRIFT_INTERVAL_SECONDS``, and answers: ``/health`` (the process is up), ``/ready`` (the
store answered the last round), ``/metrics`` (drift and live quality gauges, round timings),
``GET /models/{name}/drift``, ``GET /models/{name}/quality`` and ``GET /models/{name}/quality/history``
(data quality per window). The api replicas write to the store and never compute any of this
themselves (``SHIPYARD_MONITOR_IN_PROCESS=false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shipyard import __version__
from shipyard.config.settings import Settings, get_settings
from shipyard.errors import ShipyardError
from shipyard.monitoring.gauges import MonitorGauges
from shipyard.monitoring.monitor import Monitor, ReferenceLoader
from shipyard.monitoring.quality_history import MAX_LIMIT, Check, parse_moment, read_quality_history
from shipyard.monitoring.reports import DriftReference, reference_for
from shipyard.monitoring.store import MonitoringStore
from shipyard.registry.models import ModelRegistry
from shipyard.serving.app import configure_logging
from shipyard.serving.errors import install_error_handlers
from shipyard.serving.responses import FastJSONResponse

log = logging.getLogger("shipyard.monitor")


def registry_references(settings: Settings) -> ReferenceLoader:
    registry = ModelRegistry(settings)

    def references(name: str, version: str) -> DriftReference:
        return reference_for(registry, name, version)

    return references


class MonitorState:
    def __init__(self, settings: Settings, references: ReferenceLoader | None) -> None:
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        self.gauges = MonitorGauges(self.registry)
        self.references = references
        self.monitor: Monitor | None = None
        self.last_round: float | None = None
        self.last_error: str | None = None

    def round(self) -> None:
        assert self.monitor is not None
        outcome = self.monitor.run_once()
        self.last_round = time.time()
        self.last_error = "; ".join(outcome.errors) or None
        shown = {m: [r.version for r in reports] for m, reports in outcome.drift.items()}
        log.info("monitoring round: drift of %s; %d error(s)", shown, len(outcome.errors))


async def _loop(state: MonitorState, interval: float) -> None:
    while True:
        try:
            await asyncio.to_thread(state.round)
        except Exception as exc:  # the loop must survive anything; the next round tries again
            state.last_error = str(exc)
            log.exception("monitoring round failed")
        await asyncio.sleep(interval)


def create_monitor_app(
    settings: Settings | None = None, references: ReferenceLoader | None = None
) -> FastAPI:
    """The monitor; ``references`` says where drift references come from (default: the registry)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    state = MonitorState(settings, references or registry_references(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = MonitoringStore(settings.monitoring_store_url)
        log.info("monitor: store %s, models %s", store.where, ", ".join(settings.models))
        try:
            await asyncio.to_thread(store.upgrade)
        except ShipyardError as exc:  # not ready until a round reaches the store; rounds retry
            log.error("%s; retrying every round", exc)
        state.monitor = Monitor(settings, store, state.gauges, state.references)
        interval = settings.drift_interval_seconds or 60.0
        task = asyncio.create_task(_loop(state, interval))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            store.close()

    app = FastAPI(
        title="Shipyard monitor",
        version=__version__,
        description="Drift per served version and live quality, from the shared monitoring store.",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    install_error_handlers(app)

    def monitor() -> Monitor:
        if state.monitor is None:
            raise HTTPException(503, "the monitor is starting")
        return state.monitor

    def known(name: str) -> None:
        if name not in settings.models:
            raise HTTPException(
                404, f"'{name}' is not monitored here (SHIPYARD_MODELS: {', '.join(settings.models)})"
            )

    @app.get("/health", summary="The process is up")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/ready", summary="The store answered the last round (503 until the first round is done)")
    async def ready() -> Response:
        if state.monitor is None or state.last_round is None:
            return FastJSONResponse({"ready": False, "reason": "no monitoring round finished yet"}, 503)
        try:
            await asyncio.to_thread(state.monitor.store.schema_version)
        except Exception as exc:
            return FastJSONResponse({"ready": False, "reason": str(exc)}, 503)
        return FastJSONResponse(
            {
                "ready": True,
                "last_round": state.last_round,
                "last_error": state.last_error,
                "store": state.monitor.store.where,
            }
        )

    @app.get("/metrics", summary="Prometheus metrics: drift and live quality gauges, round timings")
    async def metrics() -> Response:
        return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/models/{name}/drift", summary="The latest drift report of a model (a version, or the main one)"
    )
    async def drift(name: str, version: str | None = None, refresh: bool = False) -> dict[str, Any]:
        known(name)
        m = monitor()
        if refresh:
            reports = await asyncio.to_thread(m.drift, name, version)
            if reports:
                return reports[0].to_dict()
        else:
            if version is None and name in m.reports:
                return m.reports[name].to_dict()
            stored = await asyncio.to_thread(m.store.latest_result, "drift", name, version)
            if stored is not None:
                return stored
        what = f"version {version} of '{name}'" if version else f"'{name}'"
        raise HTTPException(404, f"no drift report for {what} yet: no logged predictions")

    @app.get(
        "/models/{name}/quality/history",
        summary="Data quality per monitoring window, newest first (from the stored drift reports)",
    )
    async def quality_history(
        name: str,
        since: Annotated[str | None, Query(description="From this time: epoch seconds or ISO-8601.")] = None,
        until: Annotated[str | None, Query(description="Up to this time: epoch seconds or ISO-8601.")] = None,
        version: Annotated[str | None, Query(description="Only this version's windows.")] = None,
        feature: Annotated[str | None, Query(description="Only this feature's rows.")] = None,
        check: Annotated[Check | None, Query(description="Only rows where this check is above zero.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many windows.")] = 100,
    ) -> dict[str, Any]:
        known(name)
        m = monitor()
        start = None if since is None else parse_moment(since, "since")
        end = None if until is None else parse_moment(until, "until")
        history = await asyncio.to_thread(
            read_quality_history,
            m.store,
            name,
            version=version,
            since=start,
            until=end,
            limit=limit,
            feature=feature,
            check=check,
        )
        return history.to_dict()

    @app.get("/models/{name}/quality", summary="Live quality per version and variant (labels via /feedback)")
    async def quality(name: str, refresh: bool = False) -> dict[str, Any]:
        known(name)
        m = monitor()
        if refresh:
            results = await asyncio.to_thread(m.quality, name)
            rows = [{"version": v, "variant": var, "metrics": values} for (v, var), values in results.items()]
        else:
            rows = await asyncio.to_thread(m.store.latest_results, "quality", name)
        return {"model": name, "window": settings.quality_window, "results": rows}

    return app
