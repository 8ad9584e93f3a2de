"""A pure ASGI middleware: request id, body size limit, content encoding, Prometheus timing, one JSON
access-log line."""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.errors import RequestTooLargeError
from shipyard.serving.accesslog import AccessLog
from shipyard.serving.errors import problem_body
from shipyard.serving.metrics import ServiceMetrics

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class RequestIds:
    """Unique ids without a system call per request: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int, access_log: AccessLog | None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        declared = encoding = None
        for key, value in scope.get("headers") or ():
            if key == _REQUEST_ID_KEY:
                given = value.decode("latin-1")
            elif key == b"content-length":
                declared = value
            elif key == b"content-encoding":
                encoding = value
        request_id = given if given and _CLIENT_ID.match(given) else self.ids.next()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            message = f"request body of {int(declared)} bytes is over the {self.max_body_bytes}-byte limit"
            await self._reject(scope, send, request_id, 413, message)
            self._record(scope, 413, started, request_id)
            return
        query = scope.get("query_string", b"")
        if query and not query.isascii() and not _utf8(query):
            # servers pass the query's raw bytes; Starlette's URL and query parsing assume UTF-8
            message = "the query string is not valid UTF-8 (percent-encode it)"
            await self._reject(scope, send, request_id, 400, message)
            self._record(scope, 400, started, request_id)
            return
        if encoding is not None and scope.get("method") not in _NO_BODY:
            name = encoding.decode("latin-1").strip().lower()
            if name not in ("", "identity"):
                # a compressed body would be read as garbage (or inflate past the size limit): say so
                message = f"unsupported Content-Encoding '{name[:40]}': send the body uncompressed"
                await self._reject(scope, send, request_id, 415, message)
                self._record(scope, 415, started, request_id)
                return

        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLargeError(f"request body over the {limit}-byte limit")
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (_REQUEST_ID_KEY, request_id.encode())]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            self._record(scope, status, started, request_id)

    def _record(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope.get("method", "")
        self.metrics.request_done(route, method, status, elapsed)
        if self.access_log is not None:
            self.access_log.write(
                {
                    "request_id": request_id,
                    "method": method,
                    "path": scope.get("path"),
                    "route": route,
                    "status": status,
                    "ms": round(elapsed * 1e3, 2),
                }
            )

    async def _reject(self, scope: Scope, send: Send, request_id: str, status: int, message: str) -> None:
        """Answered before the app runs, in the same problem shape the error handlers use."""
        body = orjson.dumps(problem_body(str(scope.get("path", "")), message))
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
