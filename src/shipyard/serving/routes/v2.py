"""Open Inference Protocol V2 (KServe, Triton clients): server and model metadata, health, infer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shipyard import __version__
from shipyard.serving.calls import Call, call_from_request
from shipyard.serving.deps import HolderDep, authorize
from shipyard.serving.parsing import JSON_TYPES, batch_from_v2, parse_json, require_media_type, v2_datatype
from shipyard.serving.responses import FastJSONResponse
from shipyard.serving.routes.scoring import route_for, score

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return {"name": "shipyard", "version": __version__, "extensions": []}


@router.get("/health/live", summary="Server is alive")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", summary="Every model is loaded", responses={503: {"description": "not ready"}})
async def ready(holder: HolderDep) -> FastJSONResponse:
    return FastJSONResponse({"ready": holder.ready}, status_code=200 if holder.ready else 503)


@router.get("/models/{name}", summary="Model metadata")
async def model_metadata(name: str, holder: HolderDep) -> dict[str, Any]:
    model = holder.get(name)
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": "BYTES" if model.is_classifier else "FP64", "shape": [-1]}
    ]
    if model.is_classifier:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.loaded.classes or [])]}
        )
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "scikit-learn",
        "inputs": [
            {"name": c.name, "datatype": v2_datatype(c.type), "shape": [-1]} for c in model.loaded.inputs
        ],
        "outputs": outputs,
    }


@router.get("/models/{name}/ready", summary="Model is loaded", responses={404: {"description": "not served"}})
async def model_ready(name: str, holder: HolderDep) -> dict[str, Any]:
    model = holder.get(name)
    return {"name": model.name, "ready": True}


@router.post("/models/{name}/infer", summary="Inference (scope: predict)", response_class=FastJSONResponse)
async def infer(name: str, request: Request) -> FastJSONResponse:
    call = await call_from_request(request)
    return FastJSONResponse(await handle_infer(call, name), headers=call.response_headers)


async def handle_infer(call: Call, name: str) -> dict[str, Any]:
    svc = call.svc
    authorize(call.authorization, svc, "predict")
    require_media_type(call.content_type, JSON_TYPES)
    body = parse_json(call.body)
    parameters = body.get("parameters") if isinstance(body, dict) else None
    route = route_for(call, name, parameters)
    model = route.model
    batch = batch_from_v2(model.schema, body, svc.settings.max_rows)
    result = await score(route, batch, call)
    rows = len(result.values)
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "datatype": "BYTES" if model.is_classifier else "FP64",
            "shape": [rows],
            "data": result.values,
        }
    ]
    if result.probabilities is not None and result.classes is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [rows, len(result.classes)],
                "data": [p[c] for p in result.probabilities for c in result.classes],
                "parameters": {"classes": result.classes},
            }
        )
    given = body.get("id") if isinstance(body, dict) else None
    return {
        "model_name": model.name,
        "model_version": model.version,
        "id": str(given) if given is not None else call.request_id,
        "parameters": {"variant": route.variant},
        "outputs": outputs,
    }
