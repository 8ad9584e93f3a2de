"""One prediction call, independent of how it arrived (the FastAPI route or the fast lane)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shipyard.serving.deps import Services, services


@dataclass(frozen=True)
class Call:
    svc: Services
    body: bytes
    content_type: str
    authorization: str | None
    request_id: str


async def call_from_request(request: Request) -> Call:
    headers = request.headers
    return Call(
        services(request),
        await request.body(),
        headers.get("content-type", ""),
        headers.get("authorization"),
        str(getattr(request.state, "request_id", "")),
    )
