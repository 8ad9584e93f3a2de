"""The fast lane: the prediction routes and explain, answered straight from ASGI before FastAPI's router.

Profiled under load, FastAPI's routing, exception and dependency layers cost more per request than
reading, validating and predicting a single row. The prediction handlers are plain functions
(``handle_predict``, ``handle_invocations``, ``handle_infer``) that the FastAPI routes also call, so
both ways give the same answers and errors; FastAPI still documents the routes (``/docs``) and serves
everything else. The request-context middleware around this layer still gives every request its id,
body limit, metrics and access-log line. V2's binary tensor extension passes through untouched: the raw
body and its ``Inference-Header-Content-Length`` go into the ``Call``, and an answer the handler rendered
as bytes (``Call.encoded``) goes out as it is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.serving.calls import Call
from shipyard.serving.deps import Services
from shipyard.serving.errors import problem
from shipyard.serving.routes.explain import handle_explain
from shipyard.serving.routes.invocations import handle_invocations
from shipyard.serving.routes.predict import handle_predict
from shipyard.serving.routes.v2 import handle_infer

Handler = Callable[[Call, str | None], Awaitable[dict[str, Any]]]


class _Route:
    """What the metrics middleware reads as the route label (``scope["route"].path``)."""

    def __init__(self, path: str) -> None:
        self.path = path


def _invocations(call: Call, _: str | None) -> Awaitable[dict[str, Any]]:
    return handle_invocations(call)


def _explain(call: Call, name: str | None) -> Awaitable[dict[str, Any]]:
    assert name is not None
    return handle_explain(call, name)


def _infer(call: Call, name: str | None) -> Awaitable[dict[str, Any]]:
    assert name is not None
    return handle_infer(call, name)


_EXACT: dict[str, tuple[Handler, _Route]] = {
    "/predict": (handle_predict, _Route("/predict")),
    "/invocations": (_invocations, _Route("/invocations")),
}
_PATTERNS: list[tuple[re.Pattern[str], Handler, _Route]] = [
    (re.compile(r"^/models/([^/]+)/predict$"), handle_predict, _Route("/models/{name}/predict")),
    (re.compile(r"^/models/([^/]+)/explain$"), _explain, _Route("/models/{name}/explain")),
    (re.compile(r"^/v2/models/([^/]+)/infer$"), _infer, _Route("/v2/models/{name}/infer")),
]


class FastLane:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    def _match(self, path: str) -> tuple[Handler, _Route, str | None] | None:
        exact = _EXACT.get(path)
        if exact is not None:
            return exact[0], exact[1], None
        for pattern, handler, route in _PATTERNS:
            found = pattern.match(path)
            if found:
                return handler, route, found.group(1)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = (
            self._match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        )
        if matched is None or self.services.plane.holder is None:
            await self.app(scope, receive, send)
            return
        handler, route, name = matched
        scope["route"] = route
        content_type, authorization, ab_key, header_length = "", None, None, None
        key_header = self.services.plane.router.header
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == key_header:
                ab_key = value.decode("latin-1")
            elif key == b"inference-header-content-length":
                header_length = value.decode("latin-1")
        request_id = str(scope.get("state", {}).get("request_id", ""))
        headers: dict[str, str] = {}
        media_type, encoded = b"application/json", None
        try:
            body = await _read_body(receive)
            call = Call(
                self.services,
                body,
                content_type,
                authorization,
                request_id,
                ab_key,
                header_length,
                query=scope.get("query_string", b""),
            )
            status, payload = 200, await handler(call, name)
            headers = call.response_headers
            encoded = call.encoded  # set when the handler rendered its own bytes (V2 binary outputs)
            if encoded is not None:
                media_type = call.media_type.encode("latin-1")
        except Exception as exc:  # every failure becomes the same answer the FastAPI routes give
            status, answer, headers = problem(scope["path"], exc, request_id)
            if answer is None:  # the client is gone
                return
            payload = answer
        content = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY) if encoded is None else encoded
        raw = [
            (b"content-type", media_type),
            (b"content-length", str(len(content)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Receive) -> bytes:
    from starlette.requests import ClientDisconnect

    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
