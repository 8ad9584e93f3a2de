"""The MLflow scoring protocol, so clients of `mlflow models serve` work unchanged."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shipyard.serving.calls import Call, call_from_request
from shipyard.serving.deps import authorize
from shipyard.serving.parsing import (
    CSV_TYPES,
    JSON_TYPES,
    batch_from_csv,
    batch_from_mlflow_json,
    parse_json,
    require_media_type,
)
from shipyard.serving.responses import FastJSONResponse
from shipyard.serving.routes.scoring import route_for, score
from shipyard.serving.schemas import (
    CSV_BODY,
    IRIS,
    InvocationsRequest,
    InvocationsResponse,
    ok,
    problems,
    request_body,
)

router = APIRouter(tags=["mlflow"])

_BODY = request_body(
    InvocationsRequest,
    examples={
        "dataframe_split": {"dataframe_split": {"columns": list(IRIS), "data": [list(IRIS.values())]}},
        "dataframe_records": {"dataframe_records": [IRIS]},
        "instances": {"instances": [IRIS]},
        "inputs (columns)": {"inputs": {k: [v] for k, v in IRIS.items()}},
    },
    more_content={media: CSV_BODY for media in CSV_TYPES},
)
_ANSWERS = {**ok(InvocationsResponse), **problems(400, 401, 403, 404, 413, 415, 422)}


@router.post(
    "/invocations",
    summary="MLflow scoring protocol, default model (scope: predict)",
    response_class=FastJSONResponse,
    description="dataframe_split, dataframe_records, instances or inputs as JSON, or a CSV body; "
    'answers {"predictions": [...]} like `mlflow models serve`.',
    openapi_extra=_BODY,
    responses=_ANSWERS,
)
async def invocations(request: Request) -> FastJSONResponse:
    call = await call_from_request(request)
    return FastJSONResponse(await handle_invocations(call), headers=call.response_headers)


async def handle_invocations(call: Call) -> dict[str, Any]:
    svc = call.svc
    authorize(call.authorization, svc, "predict")
    kind = require_media_type(call.content_type, (*JSON_TYPES, *CSV_TYPES))
    body = None if kind in CSV_TYPES else parse_json(call.body)
    route = route_for(call, svc.settings.default_model)  # the key: header only (the body is MLflow's)
    model = route.model
    if body is None:
        batch = batch_from_csv(model.schema, call.body, svc.settings.max_rows)
    else:
        batch = batch_from_mlflow_json(model.schema, body, svc.settings.max_rows)
    result = await score(route, batch, call, probabilities=False)
    return {"predictions": result.values}
