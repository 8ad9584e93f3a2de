"""create_app(settings, holder=None): the service, built around a model holder handed in or loaded.

As in MLflow's scoring server, the app is built around the models it serves; ``serving/asgi.py`` only
calls this. Nothing happens at import: settings are read, models loaded and logging configured when the
app is created and started.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from shipyard import __version__
from shipyard.config.settings import Settings, get_settings
from shipyard.monitoring.monitor import ReferenceLoader
from shipyard.serving.accesslog import AccessLog
from shipyard.serving.auth import TokenVerifier
from shipyard.serving.dataplane import DataPlane
from shipyard.serving.deps import Services
from shipyard.serving.errors import install_error_handlers
from shipyard.serving.fastlane import FastLane
from shipyard.serving.holder import ModelHolder
from shipyard.serving.lifespan import make_lifespan
from shipyard.serving.metrics import ServiceMetrics
from shipyard.serving.middleware import RequestContextMiddleware
from shipyard.serving.responses import FastJSONResponse
from shipyard.serving.routes import batch, explain, feedback, invocations, operations, predict, v2
from shipyard.serving.schemas import install_openapi

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
    plane = DataPlane(settings, metrics, holder)

    app = FastAPI(
        title="Shipyard",
        version=__version__,
        description=DESCRIPTION,
        lifespan=make_lifespan(plane, access_log, holder, drift_references),
        docs_url=None,
        redoc_url=None,
        default_response_class=FastJSONResponse,
    )
    app.state.services = Services(
        settings, metrics, TokenVerifier(settings) if settings.auth_enabled else None, plane
    )
    install_error_handlers(app)
    for router in (
        predict.router,
        explain.router,
        invocations.router,
        v2.router,
        operations.router,
        feedback.router,
        batch.router,
    ):
        app.include_router(router)
    install_openapi(app)  # the hand-parsed bodies' schemas as components of /openapi.json
    _docs(app)
    app.add_middleware(FastLane, services=app.state.services)  # inside the request context below
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        access_log=access_log,
    )
    return app
