"""Turn request bodies of each protocol into a validated batch (feature -> array) for one model.

Bodies are parsed here (not by pydantic models) so that every client mistake gets the right status:
400 for a body that is not JSON, 415 for a content type we do not read, 413 for too many rows, 422 with
the field named for anything the model cannot take.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pandas as pd
from fastapi import HTTPException

from shipyard.errors import PredictionInputError, RequestTooLargeError
from shipyard.inference.records import Batch, InputSchema

JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")


def require_media_type(content_type: str, allowed: Sequence[str]) -> str:
    """The media type of a Content-Type header value, or 415 when it is not one we read."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in allowed and not (kind.endswith("+json") and "application/json" in allowed):
        got = f"'{kind}'" if kind else "no Content-Type"
        raise HTTPException(415, f"unsupported media type: {got} (send {' or '.join(allowed)})")
    return kind


def parse_json(body: bytes) -> Any:
    """orjson for speed; the standard library as a fallback only to read NaN/Infinity literals, which
    are then refused field by field (422) instead of as malformed JSON (400)."""
    if not body:
        raise HTTPException(400, "empty request body (expected JSON)")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HTTPException(400, f"malformed JSON: {exc}") from None


def check_rows(count: int, limit: int) -> None:
    if count > limit:
        raise RequestTooLargeError(f"{count} rows in one request; the limit is {limit} (split the request)")


def _invalid(loc: list[Any], msg: str, kind: str = "value_error") -> PredictionInputError:
    return PredictionInputError(
        f"invalid input: {'.'.join(map(str, loc))}: {msg}", [{"loc": loc, "msg": msg, "type": kind}]
    )


def records_from_predict_body(body: Any) -> tuple[list[Any], list[Any]]:
    """Shipyard's own protocol: one record (an object) or ``{"records": [...]}``; returns (records, loc)."""
    if isinstance(body, Mapping):
        if "records" in body:
            records = body["records"]
            if not isinstance(records, list):
                raise _invalid(["records"], "expected a list of objects", "list_type")
            if len(body) > 1:
                extra = sorted(set(body) - {"records"})
                raise _invalid([extra[0]], "unexpected key next to 'records'", "extra_forbidden")
            return records, ["records"]
        return [body], []
    if isinstance(body, list):
        return body, []
    raise _invalid([], 'expected an object (one record) or {"records": [...]}', "dict_type")


def batch_from_records(schema: InputSchema, records: list[Any], prefix: list[Any], max_rows: int) -> Batch:
    check_rows(len(records), max_rows)
    return schema.batch_from_records(records, prefix)


_MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def batch_from_mlflow_json(schema: InputSchema, body: Any, max_rows: int) -> Batch:
    """The MLflow scoring protocol (``mlflow models serve``): exactly one of the four input keys."""
    if not isinstance(body, Mapping):
        raise _invalid([], f"expected an object with one of: {', '.join(_MLFLOW_KEYS)}", "dict_type")
    keys = [k for k in _MLFLOW_KEYS if k in body]
    unknown = sorted(set(body) - set(_MLFLOW_KEYS) - {"params"})
    if unknown:
        raise _invalid(
            [unknown[0]], f"unknown key (expected one of: {', '.join(_MLFLOW_KEYS)})", "extra_forbidden"
        )
    if len(keys) != 1:
        raise _invalid([], f"expected exactly one of: {', '.join(_MLFLOW_KEYS)}; got {len(keys)}", "missing")
    if body.get("params"):
        raise _invalid(["params"], "this model takes no inference params", "extra_forbidden")
    key = keys[0]
    payload = body[key]
    if key == "dataframe_split":
        if (
            not isinstance(payload, Mapping)
            or not isinstance(payload.get("columns"), list)
            or not isinstance(payload.get("data"), list)
        ):
            raise _invalid([key], 'expected {"columns": [...], "data": [[...], ...]}', "dict_type")
        check_rows(len(payload["data"]), max_rows)
        return schema.batch_from_rows(payload["columns"], payload["data"], [key, "data"])
    if isinstance(payload, list):
        return batch_from_records(schema, payload, [key], max_rows)
    if isinstance(payload, Mapping) and key in ("instances", "inputs"):
        lengths = [len(v) for v in payload.values() if isinstance(v, list)]
        check_rows(max(lengths, default=0), max_rows)
        return schema.batch_from_columns(payload, [key])
    raise _invalid(
        [key],
        "expected a list of records" + (" or an object of columns" if key != "dataframe_records" else ""),
        "list_type",
    )


def batch_from_csv(schema: InputSchema, body: bytes, max_rows: int) -> Batch:
    """A CSV body with a header row, as `mlflow models serve` reads it."""
    if not body.strip():
        raise HTTPException(400, "empty CSV body")
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"malformed CSV: {str(exc).splitlines()[0]}") from None
    check_rows(len(frame), max_rows)
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]
    return schema.batch_from_records(records, ["csv"])


_V2_TYPES = {
    "double": "FP64",
    "float": "FP64",
    "long": "INT64",
    "integer": "INT64",
    "string": "BYTES",
    "boolean": "BOOL",
}


def v2_datatype(mlflow_type: str) -> str:
    return _V2_TYPES.get(mlflow_type, "BYTES")


def batch_from_v2(schema: InputSchema, body: Any, max_rows: int) -> Batch:
    """Open Inference Protocol V2: one named input tensor per feature, each of shape [N] or [N, 1]."""
    if not isinstance(body, Mapping) or not isinstance(body.get("inputs"), list):
        raise _invalid(
            ["inputs"], 'expected {"inputs": [{"name", "shape", "datatype", "data"}, ...]}', "missing"
        )
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(body["inputs"]):
        if not isinstance(tensor, Mapping) or not isinstance(tensor.get("name"), str):
            raise _invalid(["inputs", i], "expected a tensor with a 'name'", "dict_type")
        data = tensor.get("data")
        if not isinstance(data, list):
            raise _invalid(["inputs", i, "data"], "expected a list", "list_type")
        if data and isinstance(data[0], list):  # [[x], [y]] for shape [N, 1]
            if any(not isinstance(d, list) or len(d) != 1 for d in data):
                raise _invalid(["inputs", i, "data"], "expected shape [N] or [N, 1]", "shape")
            data = [d[0] for d in data]
        shape = tensor.get("shape")
        if isinstance(shape, list) and shape and isinstance(shape[0], int) and shape[0] != len(data):
            raise _invalid(
                ["inputs", i, "shape"], f"shape {shape} does not match {len(data)} values", "shape"
            )
        columns[tensor["name"]] = data
    check_rows(max((len(v) for v in columns.values()), default=0), max_rows)
    return schema.batch_from_columns(columns, ["inputs"])
