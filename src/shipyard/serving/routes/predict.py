"""Shipyard's own protocol: named features, one record or many."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shipyard.serving.deps import HolderDep, MetricsDep, PredictScope, SettingsDep, request_id
from shipyard.serving.parsing import (
    JSON_TYPES,
    batch_from_records,
    parse_json,
    records_from_predict_body,
    require_media_type,
)
from shipyard.serving.routes.scoring import score

router = APIRouter(tags=["predict"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "object", "description": "one record: feature name -> value"},
                        {
                            "type": "object",
                            "properties": {"records": {"type": "array", "items": {"type": "object"}}},
                            "required": ["records"],
                        },
                    ]
                },
                "examples": {
                    "one": {
                        "value": {
                            "sepal_length": 5.1,
                            "sepal_width": 3.5,
                            "petal_length": 1.4,
                            "petal_width": 0.2,
                        }
                    },
                    "many": {
                        "value": {
                            "records": [
                                {
                                    "sepal_length": 5.1,
                                    "sepal_width": 3.5,
                                    "petal_length": 1.4,
                                    "petal_width": 0.2,
                                },
                                {
                                    "sepal_length": 6.5,
                                    "sepal_width": 3.0,
                                    "petal_length": 5.5,
                                    "petal_width": 2.0,
                                },
                            ]
                        }
                    },
                },
            }
        },
    }
}


async def _predict(
    name: str, request: Request, holder: HolderDep, metrics: MetricsDep, settings: SettingsDep
) -> dict[str, Any]:
    require_media_type(request, JSON_TYPES)
    body = parse_json(await request.body())
    model = holder.get(name)  # this request keeps this version to the end, whatever swaps meanwhile
    records, loc = records_from_predict_body(body)
    batch = batch_from_records(model.schema, records, loc, settings.max_rows)
    result = await score(model, batch, metrics)
    answer: dict[str, Any] = {
        "model": model.name,
        "version": model.version,
        "alias": model.alias,
        "request_id": request_id(request),
        "predictions": result.values,
    }
    if result.probabilities is not None:
        answer["probabilities"] = result.probabilities
    return answer


@router.post("/predict", summary="Predict with the default model", openapi_extra=_BODY)
async def predict_default(
    request: Request, holder: HolderDep, metrics: MetricsDep, settings: SettingsDep, _: PredictScope
) -> dict[str, Any]:
    return await _predict(settings.default_model, request, holder, metrics, settings)


@router.post("/models/{name}/predict", summary="Predict with a named model", openapi_extra=_BODY)
async def predict_named(
    name: str,
    request: Request,
    holder: HolderDep,
    metrics: MetricsDep,
    settings: SettingsDep,
    _: PredictScope,
) -> dict[str, Any]:
    return await _predict(name, request, holder, metrics, settings)
