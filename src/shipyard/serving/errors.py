"""The one place where exceptions become HTTP answers. No client input reaches the generic 500."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from shipyard.errors import InvalidRequestError, ShipyardError
from shipyard.serving.responses import FastJSONResponse

log = logging.getLogger(__name__)

# Exceptions that are not ours but that only a client's input can cause, should a guard upstream miss
# one (``parsing`` refuses bodies nested deeper than it reads): a 4xx saying what to change, not a 500.
_CLIENT_FAULTS: dict[type[BaseException], tuple[int, str]] = {
    RecursionError: (400, "the request is nested too deeply to read"),
}


def problem_body(path: str, message: str, detail: Any = None) -> dict[str, Any]:
    """OIP V2 routes answer ``{"error": ...}`` as that protocol says; the rest use ``{"detail": ...}``."""
    if path.startswith("/v2"):
        body: dict[str, Any] = {"error": message}
        if isinstance(detail, list):
            body["detail"] = detail
        return body
    return {"detail": detail if detail is not None else message}


def _renderable(value: Any) -> Any:
    """Text a client sent can hold what UTF-8 cannot (a lone surrogate); escape it rather than fail."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_renderable(v) for v in value]
    if isinstance(value, dict):
        return {_renderable(k): _renderable(v) for k, v in value.items()}
    return value


def problem(
    path: str, exc: BaseException, request_id: str = "?"
) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    """Status, body and headers for any exception a request raised; bodies never hold tracebacks."""
    status, body, headers = _problem(path, exc, request_id)
    if body is not None:
        try:
            orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            body = _renderable(body)
    return status, body, headers


def _problem(
    path: str, exc: BaseException, request_id: str
) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
    if isinstance(exc, ShipyardError):
        status = exc.http_status
        if status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, path, exc)
        detail = exc.errors if isinstance(exc, InvalidRequestError) and exc.errors else None
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return status, problem_body(path, str(exc), detail), headers
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code, problem_body(path, str(exc.detail)), dict(getattr(exc, "headers", None) or {})
    for kind, (status, message) in _CLIENT_FAULTS.items():
        if isinstance(exc, kind):
            log.warning("%s on %s (request %s) answered %d", type(exc).__name__, path, request_id, status)
            return status, problem_body(path, message), {}
    if isinstance(exc, ClientDisconnect):
        # the client closed the connection mid-request: nobody reads the answer; 499 as nginx logs it
        log.debug("client disconnected during %s", path)
        return 499, None, {}
    log.error("unexpected error on %s (request %s)", path, request_id, exc_info=exc)
    return 500, problem_body(path, f"internal error (request id {request_id})"), {}


async def _handle(request: Request, exc: Exception) -> Response:
    # the scope's path, not request.url: building a URL decodes the query string, which may not be UTF-8
    path = str(request.scope.get("path", ""))
    status, body, headers = problem(path, exc, str(getattr(request.state, "request_id", "?")))
    if body is None:
        return Response(status_code=status)
    return FastJSONResponse(body, status_code=status, headers=headers or None)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    path = str(request.scope.get("path", ""))
    return FastJSONResponse(problem_body(path, "invalid request", errors), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Every exception goes through ``problem`` (the fast lane calls it too), so both ways answer alike."""
    for kind in (ShipyardError, StarletteHTTPException, ClientDisconnect, Exception):
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(RequestValidationError, _invalid_request)
