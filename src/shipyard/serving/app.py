"""create_app(settings, holder=None): the service, built around a model holder handed in or loaded.

As in MLflow's scoring server, the app is built around the models it serves; ``serving/asgi.py`` only
calls this. Nothing happens at import: settings are read, models loaded and logging configured when the
app is created and started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from shipyard import __version__
from shipyard.config.settings import Settings, get_settings
from shipyard.monitoring.prediction_log import PredictionLog
from shipyard.monitoring.reports import DriftReference, reference_for
from shipyard.registry.models import ModelRegistry
from shipyard.serving.accesslog import AccessLog
from shipyard.serving.auth import TokenVerifier
from shipyard.serving.deps import Services
from shipyard.serving.drift_watch import DriftWatch, ReferenceLoader
from shipyard.serving.errors import install_error_handlers
from shipyard.serving.fastlane import FastLane
from shipyard.serving.holder import ModelHolder, ServedModel
from shipyard.serving.memory import settle as settle_memory
from shipyard.serving.metrics import ServiceMetrics
from shipyard.serving.middleware import RequestContextMiddleware
from shipyard.serving.responses import FastJSONResponse
from shipyard.serving.routes import batch, feedback, invocations, operations, predict, v2

log = logging.getLogger("shipyard.serving")

DESCRIPTION = """Predictions from the models registered in MLflow (the `champion` alias by default), over
three protocols: Shipyard's own (`/predict`), MLflow's scoring protocol (`/invocations`) and the Open
Inference Protocol V2 (`/v2/...`). Prediction routes need a JWT bearer token with the `predict` scope
when auth is on; `/admin/reload` needs `admin`."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str) -> None:
    """JSON lines to stderr for the service's loggers, once per process."""
    logger = logging.getLogger("shipyard")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    logger.propagate = False


def _docs(app: FastAPI) -> None:
    """Swagger UI served from the package's own copy of its assets: the docs page needs no internet."""
    import fastapi_offline

    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/static-docs", StaticFiles(directory=static), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title="Shipyard — API docs",
            swagger_js_url=f"{root}/static-docs/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/static-docs/swagger-ui.css",
            swagger_favicon_url=f"{root}/static-docs/favicon.png",
        )


async def _flush_every_second(access_log: AccessLog) -> None:
    while True:
        await asyncio.sleep(1.0)
        access_log.flush()


async def _watch_drift(watch: DriftWatch, holder: ModelHolder, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        for model in holder.loaded():
            try:
                await asyncio.to_thread(watch.compute, model)
            except Exception:  # the loop must survive anything; the next round tries again
                log.exception("drift check of %s failed", model.name)


async def _follow_aliases(holder: ModelHolder, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            changes = await holder.refresh()
        except Exception:  # the loop must survive anything; the next round tries again
            log.exception("alias check failed")
            continue
        moved = {k: v for k, v in changes.items() if v.startswith("loaded")}
        if moved:
            log.info("swapped models: %s", moved)
            settle_memory()  # lets the old version's objects go, freezes the new one


def create_app(
    settings: Settings | None = None,
    holder: ModelHolder | None = None,
    drift_references: ReferenceLoader | None = None,
) -> FastAPI:
    """The service. With ``holder`` given, it serves exactly those models and never touches a registry
    (``drift_references`` then says where drift references come from; without it, no drift)."""
    settings = settings or get_settings()
    settings.check_auth()  # refuse to start with auth on and a placeholder secret
    configure_logging(settings.log_level)
    metrics = ServiceMetrics()
    access_log = AccessLog() if settings.access_log else None

    def on_swap(new: ServedModel, old: ServedModel | None) -> None:
        if old is not None:
            with contextlib.suppress(KeyError):
                metrics.model_info.remove(old.name, old.version, old.alias, old.loaded.run_id or "")
        metrics.model_info.labels(new.name, new.version, new.alias, new.loaded.run_id or "").set(1)
        if new.alias == settings.champion_alias:
            metrics.model_loaded_at.labels(new.name).set(new.loaded_at.timestamp())

    def on_retire(old: ServedModel) -> None:
        with contextlib.suppress(KeyError):
            metrics.model_info.remove(old.name, old.version, old.alias, old.loaded.run_id or "")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        served = holder
        follow = settings.reload_interval_seconds > 0
        if served is None:
            served = ModelHolder.from_settings(settings)
        served.bind(
            on_load_failure=lambda name: metrics.load_failures.labels(name).inc(),
            on_check_failure=metrics.registry_check_failures.inc,
            on_swap=on_swap,
            on_retire=on_retire,
        )
        for model in [*served.loaded(), *served.challengers()]:  # handed in already loaded
            on_swap(model, None)
        if holder is None:
            log.info("start-up: %s", await served.refresh())
        settle_memory()
        tasks: list[asyncio.Task[None]] = []
        services = app.state.services
        services.holder = served
        if settings.prediction_log:
            services.prediction_log = PredictionLog(
                settings.prediction_log_file,
                queue_size=settings.prediction_log_queue,
                on_drop=metrics.log_dropped.inc,
                on_write=metrics.log_written.inc,
            )
            services.prediction_log.start()
            references = drift_references
            if references is None and holder is None:
                registry = ModelRegistry(settings)

                def references(name: str, version: str) -> DriftReference:
                    return reference_for(registry, name, version)

            if references is not None:
                services.drift = DriftWatch(settings, metrics, references)
                if settings.drift_interval_seconds > 0:
                    tasks.append(
                        asyncio.create_task(
                            _watch_drift(services.drift, served, settings.drift_interval_seconds)
                        )
                    )
        if follow:
            tasks.append(asyncio.create_task(_follow_aliases(served, settings.reload_interval_seconds)))
        if access_log is not None:
            tasks.append(asyncio.create_task(_flush_every_second(access_log)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if access_log is not None:
                access_log.flush()
            if services.prediction_log is not None:
                services.prediction_log.close()  # writes everything still queued
            log.info("shutdown complete")  # uvicorn runs this after in-flight requests have finished

    app = FastAPI(
        title="Shipyard",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        default_response_class=FastJSONResponse,
    )
    app.state.services = Services(
        settings, metrics, TokenVerifier(settings) if settings.auth_enabled else None, holder
    )
    install_error_handlers(app)
    for router in (
        predict.router,
        invocations.router,
        v2.router,
        operations.router,
        feedback.router,
        batch.router,
    ):
        app.include_router(router)
    _docs(app)
    app.add_middleware(FastLane, services=app.state.services)  # inside the request context below
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        access_log=access_log,
    )
    return app
