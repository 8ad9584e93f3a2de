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


def problem_body(path: str, message: str, detail: Any = None) -> dict[str, Any]:
    """OIP V2 routes answer ``{"error": ...}`` as that protocol says; the rest use ``{"detail": ...}``."""
    if path.startswith("/v2"):
        body: dict[str, Any] = {"error": message}
        if isinstance(detail, list):
            body["detail"] = detail
        return body
    return {"detail": detail if detail is not None else message}


def problem(
    path: str, exc: BaseException, request_id: str = "?"
) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    """Status, body and headers for any exception a request raised; bodies never hold tracebacks."""
    if isinstance(exc, ShipyardError):
        status = _status(exc)
        if status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, path, exc)
        detail = exc.errors if isinstance(exc, PredictionInputError) and exc.errors else None
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return status, problem_body(path, str(exc), detail), headers
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code, problem_body(path, str(exc.detail)), dict(getattr(exc, "headers", None) or {})
    if isinstance(exc, ClientDisconnect):
        # the client closed the connection mid-request: nobody reads the answer; 499 as nginx logs it
        log.debug("client disconnected during %s", path)
        return 499, None, {}
    log.error("unexpected error on %s (request %s)", path, request_id, exc_info=exc)
    return 500, problem_body(path, f"internal error (request id {request_id})"), {}


async def _handle(request: Request, exc: Exception) -> Response:
    status, body, headers = problem(request.url.path, exc, str(getattr(request.state, "request_id", "?")))
    if body is None:
        return Response(status_code=status)
    return FastJSONResponse(body, status_code=status, headers=headers or None)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return FastJSONResponse(problem_body(request.url.path, "invalid request", errors), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Every exception goes through ``problem`` (the fast lane calls it too), so both ways answer alike."""
    for kind in (ShipyardError, StarletteHTTPException, ClientDisconnect, Exception):
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(RequestValidationError, _invalid_request)
