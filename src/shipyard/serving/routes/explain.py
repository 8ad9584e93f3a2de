"""``POST /models/{name}/explain``: the answer for each record and why, per input feature (TreeSHAP)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from shipyard.errors import InvalidRequestError
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
from shipyard.serving.routes.scoring import route_for
from shipyard.serving.schemas import IRIS, IRIS_2, ExplainResponse, PredictRequest, ok, problems, request_body

router = APIRouter(tags=["predict"])

MAX_EXPLAIN_ROWS = 100  # TreeSHAP on a deep forest costs tens of ms a row: explanations are for a few
TOP_K = 5
MAX_TOP_K = 100

_BODY = request_body(PredictRequest, examples={"one": IRIS, "many": {"records": [IRIS, IRIS_2]}})


@router.post(
    "/models/{name}/explain",
    summary="Explain a named model's answers per input feature with TreeSHAP (scope: predict)",
    description=(
        "The same body as `POST /models/{name}/predict` (at most 100 records). For each record: the "
        "answer, what is explained (the predicted class's probability, or the predicted value), the "
        "base value (the model's average output on its training data), one attribution per input "
        "feature (one-hot columns summed back to their feature) and the top_k features by absolute "
        "attribution. base_value + the sum of the attributions = the output explained "
        "(additivity_error says how far from exactly). 409 for a model with no tree model."
    ),
    openapi_extra=_BODY,
    response_class=FastJSONResponse,
    responses={**ok(ExplainResponse), **problems(400, 401, 403, 404, 409, 413, 415, 422)},
)
async def explain_named(
    name: str,
    request: Request,
    top_k: Annotated[int, Query(ge=1, le=100, description="How many features to list first.")] = TOP_K,
) -> FastJSONResponse:
    # the fast lane answers this route in front of FastAPI; this one documents it (and answers the same)
    call = await call_from_request(request)
    return FastJSONResponse(await handle_explain(call, name), headers=call.response_headers)


def _top_k(query: bytes) -> int:
    values = parse_qs(query.decode("latin-1")).get("top_k")
    if not values:
        return TOP_K
    try:
        found = int(values[-1])
    except ValueError:
        found = 0
    if not 1 <= found <= MAX_TOP_K:
        msg = f"expected a whole number from 1 to {MAX_TOP_K}, got {values[-1][:20]!r}"
        raise InvalidRequestError(
            f"invalid query: top_k: {msg}", [{"loc": ["query", "top_k"], "msg": msg, "type": "int_range"}]
        )
    return found


async def handle_explain(call: Call, name: str) -> dict[str, Any]:
    svc = call.svc
    authorize(call.authorization, svc, "predict")
    top_k = _top_k(call.query)
    require_media_type(call.content_type, JSON_TYPES)
    body = parse_json(call.body)
    route = route_for(call, name, body)
    model = route.model
    records, loc = records_from_predict_body(body)
    if len(records) > MAX_EXPLAIN_ROWS:
        raise InvalidRequestError(
            f"invalid input: at most {MAX_EXPLAIN_ROWS} records per explain request, got {len(records)}",
            [{"loc": loc, "msg": f"at most {MAX_EXPLAIN_ROWS} records", "type": "too_long"}],
        )
    batch = batch_from_records(model.schema, records, loc, svc.settings.max_rows)
    if model.explain_inline(len(records)):
        explanations = model.explain(batch, top_k)
    else:  # the first call builds the explainer; a deep forest takes tens of ms a row
        explanations = await run_in_threadpool(model.explain, batch, top_k)
    return {
        "model": model.name,
        "version": model.version,
        "variant": route.variant,
        "request_id": call.request_id,
        "explanations": [
            {
                "prediction": e.prediction,
                "explained": e.explained,
                "output": e.output,
                "base_value": e.base_value,
                "attributions": e.attributions,
                "top": e.top,
                "additivity_error": e.additivity_error,
            }
            for e in explanations
        ],
    }
