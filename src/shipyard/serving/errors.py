"""The one place where exceptions become HTTP answers. No client input reaches the generic 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from shipyard.errors import (
    AuthError,
    ForbiddenError,
    ModelNotFoundError,
    PredictionInputError,
    RegistryError,
    RequestTooLargeError,
    ShipyardError,
)
from shipyard.serving.responses import FastJSONResponse

log = logging.getLogger(__name__)


def _status(exc: ShipyardError) -> int:
    if isinstance(exc, PredictionInputError):
        return 422
    if isinstance(exc, RequestTooLargeError):
        return 413
    if isinstance(exc, ModelNotFoundError):
        return 404
    if isinstance(exc, ForbiddenError):
        return 403
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, RegistryError):
        return 503
    return 500


def _answer(
    request: Request, status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> FastJSONResponse:
    """OIP V2 routes answer ``{"error": ...}`` as that protocol says; the rest use ``{"detail": ...}``."""
    if request.url.path.startswith("/v2"):
        body: dict[str, Any] = {"error": message}
        if isinstance(detail, list):
            body["detail"] = detail
    else:
        body = {"detail": detail if detail is not None else message}
    return FastJSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ShipyardError)
    async def shipyard_error(request: Request, exc: ShipyardError) -> FastJSONResponse:
        status = _status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        detail = exc.errors if isinstance(exc, PredictionInputError) and exc.errors else None
        return _answer(request, status, str(exc), detail, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        return _answer(request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> FastJSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return _answer(request, 422, "invalid request", errors)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # the client closed the connection mid-request: nobody reads the answer; 499 as nginx logs it
        log.debug("client disconnected during %s", request.url.path)
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> FastJSONResponse:
        request_id = getattr(request.state, "request_id", "?")
        log.exception("unexpected error on %s (request %s)", request.url.path, request_id)
        return _answer(request, 500, f"internal error (request id {request_id})")
