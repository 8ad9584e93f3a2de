"""Shipyard's own protocol: named features, one record or many."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shipyard.serving.calls import Call, call_from_request
from shipyard.serving.deps import authorize
from shipyard.serving.parsing import (
    JSON_TYPES,
    batch_from_records,
    parse_json,
    records_from_predict_body,
    require_media_type,
)
from shipyard.serving.responses import FastJSONResponse
from shipyard.serving.routes.scoring import route_for, score
from shipyard.serving.schemas import IRIS, IRIS_2, PredictRequest, PredictResponse, ok, problems, request_body

router = APIRouter(tags=["predict"])

_BODY = request_body(PredictRequest, examples={"one": IRIS, "many": {"records": [IRIS, IRIS_2]}})
_ANSWERS = {**ok(PredictResponse), **problems(400, 401, 403, 404, 413, 415, 422)}


async def handle_predict(call: Call, name: str | None) -> dict[str, Any]:
    svc = call.svc
    authorize(call.authorization, svc, "predict")
    require_media_type(call.content_type, JSON_TYPES)
    body = parse_json(call.body)
    # the routed variant: this request keeps that version to the end, whatever swaps meanwhile
    route = route_for(call, name or svc.settings.default_model, body)
    model = route.model
    records, loc = records_from_predict_body(body)
    batch = batch_from_records(model.schema, records, loc, svc.settings.max_rows)
    result = await score(route, batch, call)
    answer: dict[str, Any] = {
        "model": model.name,
        "version": model.version,
        "alias": model.alias,
        "variant": route.variant,
        "request_id": call.request_id,
        "predictions": result.values,
    }
    if result.probabilities is not None:
        answer["probabilities"] = result.probabilities
    return answer


@router.post(
    "/predict",
    summary="Predict with the default model (scope: predict)",
    openapi_extra=_BODY,
    response_class=FastJSONResponse,
    responses=_ANSWERS,
)
async def predict_default(request: Request) -> FastJSONResponse:
    call = await call_from_request(request)
    return FastJSONResponse(await handle_predict(call, None), headers=call.response_headers)


@router.post(
    "/models/{name}/predict",
    summary="Predict with a named model (scope: predict)",
    openapi_extra=_BODY,
    response_class=FastJSONResponse,
    responses=_ANSWERS,
)
async def predict_named(name: str, request: Request) -> FastJSONResponse:
    call = await call_from_request(request)
    return FastJSONResponse(await handle_predict(call, name), headers=call.response_headers)
