"""One prediction call, independent of how it arrived (the FastAPI route or the fast lane)."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.responses import Response

from shipyard.serving.deps import Services, services
from shipyard.serving.responses import FastJSONResponse


@dataclass(slots=True)
class Call:
    svc: Services
    body: bytes
    content_type: str
    authorization: str | None
    request_id: str
    ab_key: str | None = None  # the A/B routing key from the configured header
    header_length: str | None = None  # Inference-Header-Content-Length: V2 binary tensors follow the JSON
    response_headers: dict[str, str] = field(default_factory=dict)  # set by the handler
    # set by a handler that renders its own answer (V2 binary outputs) instead of returning JSON
    encoded: bytes | None = None
    media_type: str = "application/json"
    query: bytes = b""  # the raw query string (explain's top_k)

    def routing_key(self, container: Any) -> str | None:
        """The A/B key: the header's, else the configured field taken out of ``container`` (a record, the
        body beside 'records', V2 parameters) so the model never sees it."""
        name = self.svc.settings.ab_key_field
        found = None
        if name and isinstance(container, MutableMapping) and name in container:
            found = container.pop(name)
        if self.ab_key:
            return self.ab_key
        return None if found is None else str(found)


async def call_from_request(request: Request) -> Call:
    headers = request.headers
    svc = services(request)
    return Call(
        svc,
        await request.body(),
        headers.get("content-type", ""),
        headers.get("authorization"),
        str(getattr(request.state, "request_id", "")),
        headers.get(svc.settings.ab_key_header),
        headers.get("inference-header-content-length"),
        query=request.scope.get("query_string", b""),
    )


def answer(call: Call, payload: dict[str, Any]) -> Response:
    """The FastAPI routes' response: the handler's own bytes when it rendered them, else the JSON."""
    if call.encoded is not None:
        return Response(call.encoded, media_type=call.media_type, headers=call.response_headers)
    return FastJSONResponse(payload, headers=call.response_headers)
