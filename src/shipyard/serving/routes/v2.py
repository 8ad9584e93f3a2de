"""Open Inference Protocol V2 (KServe, Triton clients): server and model metadata, health, infer."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from shipyard import __version__
from shipyard.errors import ModelNotFoundError
from shipyard.serving import v2_binary
from shipyard.serving.ab import CHALLENGER, CHAMPION, Route
from shipyard.serving.calls import Call, answer, call_from_request
from shipyard.serving.deps import HolderDep, authorize
from shipyard.serving.holder import ModelHolder, ServedModel
from shipyard.serving.parsing import JSON_TYPES, batch_from_v2, require_media_type, v2_datatype
from shipyard.serving.responses import FastJSONResponse
from shipyard.serving.routes.scoring import VARIANT_HEADER, route_for, score
from shipyard.serving.schemas import request_body

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])

# The protocol's messages, as /docs shows them and schemathesis checks them. The infer route reads its
# body itself (JSON or binary tensors, ``parsing`` and ``v2_binary``); these models only document it.
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BF16", "BYTES",
]  # fmt: skip


class _Message(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


class ServerMetadata(_Message):
    name: str
    version: str
    extensions: list[str]


class Live(_Message):
    live: bool


class Ready(_Message):
    ready: bool


class TensorMetadata(_Message):
    name: str
    datatype: Datatype
    shape: list[int]


class ModelMetadata(_Message):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ModelReady(_Message):
    name: str
    ready: bool
    version: str | None = None


class RequestInput(_Message):
    name: str = Field(description="A feature of the model (see the model's metadata).")
    shape: list[int] = Field(description="[N] or [N, 1] for N rows.")
    datatype: Datatype
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_size: the tensor's bytes follow the JSON header (no 'data')."
    )
    data: list[Any] | None = Field(None, description="The values, row-major (nested lists allowed).")


class RequestOutput(_Message):
    name: Literal["predict", "predict_proba"]
    parameters: dict[str, Any] | None = Field(None, description="binary_data: true to get raw bytes back.")


class InferenceRequest(_Message):
    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        None, description="binary_data_output: true for every output as raw bytes."
    )
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(None, description="Default: every output of the model.")


class ResponseOutput(_Message):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(None, description="Absent when the output was sent as raw bytes.")


class InferenceResponse(_Message):
    model_name: str
    model_version: str
    id: str
    parameters: dict[str, Any]
    outputs: list[ResponseOutput]


class V2Error(_Message):
    error: str
    detail: list[dict[str, Any]] | None = None


def _request_body() -> dict[str, Any]:
    """The JSON body as named components (``schemas.request_body``), or binary tensors after a header."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return request_body(InferenceRequest, more_content={v2_binary.OCTET_STREAM: binary})


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": V2Error, "description": text}
    for status, text in {
        400: "malformed body or binary framing",
        401: "missing or invalid token",
        403: "token lacks the predict scope",
        404: "model or version not served",
        413: "too many rows",
        415: "unsupported content type",
        422: "inputs the model cannot take",
    }.items()
}
_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": InferenceResponse,
        "content": {v2_binary.OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
        "description": "JSON, or with binary outputs a JSON header of Inference-Header-Content-Length "
        "bytes followed by the tensors' bytes",
    },
    **_ERRORS,
}
_NOT_SERVED: dict[int | str, dict[str, Any]] = {404: _ERRORS[404]}


@router.get("", summary="Server metadata", response_model=ServerMetadata)
async def server_metadata() -> dict[str, Any]:
    return {"name": "shipyard", "version": __version__, "extensions": ["binary_tensor_data"]}


@router.get("/health/live", summary="Server is alive", response_model=Live)
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get(
    "/health/ready",
    summary="Every model is loaded",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "not ready"}},
)
async def ready(holder: HolderDep) -> FastJSONResponse:
    return FastJSONResponse({"ready": holder.ready}, status_code=200 if holder.ready else 503)


def _outputs(model: ServedModel) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": "BYTES" if model.is_classifier else "FP64", "shape": [-1]}
    ]
    if model.is_classifier:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.loaded.classes or [])]}
        )
    return outputs


def _pinned(holder: ModelHolder, name: str, version: str | None) -> ServedModel:
    """The served model, or the served variant (champion or challenger) with this exact version."""
    model = holder.get(name)
    if version is None or version == model.version:
        return model
    challenger = holder.challenger(name)
    if challenger is not None and challenger.version == version:
        return challenger
    raise ModelNotFoundError(f"version {version[:40]!r} of {name!r} is not served (serving {model.version})")


@router.get("/models/{name}", summary="Model metadata", response_model=ModelMetadata, responses=_NOT_SERVED)
async def model_metadata(name: str, holder: HolderDep) -> dict[str, Any]:
    return _metadata(_pinned(holder, name, None))


@router.get(
    "/models/{name}/versions/{version}",
    summary="Model metadata of one served version",
    response_model=ModelMetadata,
    responses=_NOT_SERVED,
)
async def version_metadata(name: str, version: str, holder: HolderDep) -> dict[str, Any]:
    return _metadata(_pinned(holder, name, version))


def _metadata(model: ServedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "scikit-learn",
        "inputs": [
            {"name": c.name, "datatype": v2_datatype(c.type), "shape": [-1]} for c in model.loaded.inputs
        ],
        "outputs": _outputs(model),
    }


@router.get(
    "/models/{name}/ready",
    summary="Model is loaded",
    response_model=ModelReady,
    response_model_exclude_none=True,
    responses=_NOT_SERVED,
)
async def model_ready(name: str, holder: HolderDep) -> dict[str, Any]:
    model = holder.get(name)
    return {"name": model.name, "ready": True}


@router.get(
    "/models/{name}/versions/{version}/ready",
    summary="One served version is loaded",
    response_model=ModelReady,
    response_model_exclude_none=True,
    responses=_NOT_SERVED,
)
async def version_ready(name: str, version: str, holder: HolderDep) -> dict[str, Any]:
    model = _pinned(holder, name, version)
    return {"name": model.name, "version": model.version, "ready": True}


_INFER_DOC = (
    "JSON tensors, or the binary tensor data extension: a JSON header of the length given in "
    "`Inference-Header-Content-Length`, then each input's raw bytes (`parameters.binary_data_size`); "
    "outputs asked for with `parameters.binary_data` come back the same way."
)


@router.post(
    "/models/{name}/infer",
    summary="Inference (scope: predict)",
    response_class=FastJSONResponse,
    description=_INFER_DOC,
    responses=_INFER_RESPONSES,
    openapi_extra=_request_body(),
)
async def infer(name: str, request: Request) -> Response:
    call = await call_from_request(request)
    return answer(call, await handle_infer(call, name))


@router.post(
    "/models/{name}/versions/{version}/infer",
    summary="Inference on one served version (scope: predict)",
    response_class=FastJSONResponse,
    description=_INFER_DOC,
    responses=_INFER_RESPONSES,
    openapi_extra=_request_body(),
)
async def infer_version(name: str, version: str, request: Request) -> Response:
    call = await call_from_request(request)
    return answer(call, await handle_infer(call, name, version))


_MEDIA_TYPES = (*JSON_TYPES, v2_binary.OCTET_STREAM)


async def handle_infer(call: Call, name: str, version: str | None = None) -> dict[str, Any]:
    svc = call.svc
    authorize(call.authorization, svc, "predict")
    if call.content_type:  # Triton's clients send none: the protocol's body is JSON by definition
        require_media_type(call.content_type, _MEDIA_TYPES if call.header_length is not None else JSON_TYPES)
    body = v2_binary.parse_request(call.body, call.header_length, svc.settings.max_rows)
    parameters = body.get("parameters") if isinstance(body, dict) else None
    if version is None:
        route = route_for(call, name, parameters)
    else:
        assert svc.plane.holder is not None
        call.routing_key(parameters)  # the A/B key is not a model parameter, even when unused
        pinned = _pinned(svc.plane.holder, name, version)
        route = Route(pinned, CHAMPION if pinned is svc.plane.holder.get(name) else CHALLENGER)
        call.response_headers[VARIANT_HEADER] = route.variant
    model = route.model
    names, binary = v2_binary.requested_outputs(body, [o["name"] for o in _outputs(model)])
    batch = batch_from_v2(model.schema, body, svc.settings.max_rows)
    result = await score(route, batch, call, probabilities="predict_proba" in names)
    rows = len(result.values)
    outputs: list[dict[str, Any]] = []
    if "predict" in names:
        outputs.append(
            {
                "name": "predict",
                "datatype": "BYTES" if model.is_classifier else "FP64",
                "shape": [rows],
                "data": result.values,
            }
        )
    if "predict_proba" in names and result.probabilities is not None and result.classes is not None:
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
    response: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "id": str(given) if given is not None else call.request_id,
        "parameters": {"variant": route.variant},
        "outputs": outputs,
    }
    if binary:
        call.encoded, length = v2_binary.encode_response(response, binary)
        call.media_type = v2_binary.OCTET_STREAM
        call.response_headers[v2_binary.HEADER_LENGTH] = str(length)
    return response
