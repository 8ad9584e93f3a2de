"""Turn request bodies of each protocol into a validated batch (feature -> array) for one model.

Bodies are parsed here (not by pydantic models), the one place every route reads a body, so that every
client mistake gets the right status from the project's own errors (``shipyard.errors``, each carrying
its HTTP status): 400 for a body that cannot be read (empty, not JSON, not UTF-8, nested deeper than
``MAX_DEPTH``), 415 for a content type we do not read, 413 for too many rows, 422 with the field named
for anything the model cannot take.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, TypeVar

import orjson
import pandas as pd
from pydantic import BaseModel, ValidationError

from shipyard.errors import (
    InvalidRequestError,
    MalformedRequestError,
    PredictionInputError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)
from shipyard.inference.columns import KINDS, STRING
from shipyard.inference.records import Batch, InputSchema

JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv", "application/csv")

# No protocol here nests deeper than 5 (V2: body, inputs, tensor, data, [x]); far deeper bodies are
# attacks on recursive code (the standard library's parser, repr, serialisers), refused before any runs.
MAX_DEPTH = 32
_CONTAINERS = frozenset({dict, list})
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')  # what translate() deletes
M = TypeVar("M", bound=BaseModel)


def require_media_type(content_type: str, allowed: Sequence[str]) -> str:
    """The media type of a Content-Type header value, or 415 when it is not one we read."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in allowed and not (kind.endswith("+json") and "application/json" in allowed):
        got = f"'{kind[:100]}'" if kind else "no Content-Type"
        raise UnsupportedMediaTypeError(f"unsupported media type: {got} (send {' or '.join(allowed)})")
    return kind


def parse_json(body: bytes) -> Any:
    """orjson for speed; the standard library as a fallback only to read what orjson refuses but a
    client may fairly send (NaN/Infinity literals, 1e400, a UTF-8 BOM, UTF-16), whose values are then
    refused field by field (422) instead of as malformed JSON (400)."""
    if not body or body.isspace():
        raise MalformedRequestError("empty request body (expected JSON)")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        value = _parse_lenient(body, exc)
    else:
        # orjson stops at 1024 levels; a body with few brackets cannot be deep, so one row costs nothing
        if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
            _check_depth(body, value)
    return value


def parse_model(model: type[M], body: bytes, content_type: str) -> M:
    """A JSON body validated into ``model``, through the same guards as every other body; called by a
    route after its auth check, so a client without a token learns nothing about the body's rules."""
    require_media_type(content_type, JSON_TYPES)
    data = parse_json(body)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()[:20]]
        first = errors[0]
        raise InvalidRequestError(
            f"invalid request: {'.'.join(map(str, first['loc']))}: {first['msg']}", errors
        ) from None


def _parse_lenient(body: bytes, first: orjson.JSONDecodeError) -> Any:
    if "depth limit" in str(first):
        raise _too_deep()
    try:
        value = json.loads(body)
    except RecursionError:
        raise _too_deep() from None
    except UnicodeDecodeError as exc:
        raise MalformedRequestError(
            f"malformed JSON: the body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON"
        ) from None
    except ValueError:
        raise MalformedRequestError(f"malformed JSON: {first}") from None
    _check_lenient(value)
    return value


def _too_deep() -> MalformedRequestError:
    return MalformedRequestError(f"malformed JSON: nested more than {MAX_DEPTH} levels deep (the limit)")


def _check_depth(body: bytes, value: Any) -> None:
    """The nesting depth read off the body's brackets in C: keep only quotes and brackets, drop the
    strings (``""`` pairs: a quote left over means a string held a bracket), then strip the innermost
    pairs once per level. Bodies this cannot read (escapes, brackets in strings) are walked instead."""
    if b"\\" not in body:
        skeleton = body.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
        if b'"' not in skeleton:
            for _ in range(MAX_DEPTH):
                if not skeleton:
                    return
                skeleton = skeleton.replace(b"[]", b"-").replace(b"{}", b"-").replace(b"-", b"")
            if skeleton:
                raise _too_deep()
            return
    level = [value]
    for _ in range(MAX_DEPTH):
        dicts = [c for c in level if type(c) is dict]
        lists = (c for c in level if type(c) is list)
        children = list(chain(chain.from_iterable(map(dict.values, dicts)), *lists))
        if _CONTAINERS.isdisjoint(map(type, children)):
            return
        level = [c for c in children if type(c) in _CONTAINERS]
    raise _too_deep()


def _check_lenient(value: Any) -> None:
    """What the standard library lets through and orjson would not: depth beyond ``MAX_DEPTH`` and
    lone surrogates (``"\\ud800"``), which no UTF-8 answer or log line could hold."""
    stack: list[tuple[Any, int, list[Any]]] = [(value, 1, [])]
    while stack:
        item, depth, loc = stack.pop()
        if isinstance(item, str):
            _check_text(item, loc)
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise _too_deep()
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    _check_text(key, loc)
                stack.append((child, depth + 1, [*loc, key]))


def _check_text(text: str, loc: list[Any]) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{_printable(k)}" for k in loc) or "the body"
        raise MalformedRequestError(
            f"malformed JSON: a lone surrogate escape (like \\ud800) in a string at {where}; "
            "strings must be valid Unicode"
        ) from None


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:60]


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
        columns, data = payload["columns"], payload["data"]
        for i, column in enumerate(columns):
            if not isinstance(column, str):
                raise _invalid([key, "columns", i], "expected a column name (a string)", "string_type")
        check_rows(len(data), max_rows)
        return schema.batch_from_rows(columns, data, [key, "data"])
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
    """A CSV body with a header row, as `mlflow models serve` takes it, read as batch files are: every
    field as text (an empty field is missing), then parsed by the shared input rules."""
    if not body or body.isspace():
        raise MalformedRequestError("empty CSV body (expected a header row and rows)")
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError as exc:
        raise MalformedRequestError(
            f"malformed CSV: the body is not valid UTF-8 (byte {exc.start}); send UTF-8 CSV"
        ) from None
    except (ValueError, pd.errors.ParserError, OverflowError) as exc:
        raise MalformedRequestError(f"malformed CSV: {str(exc).splitlines()[0][:200]}") from None
    check_rows(len(frame), max_rows)
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]
    return schema.batch_from_records(records, ["csv"], text=True)


def v2_datatype(mlflow_type: str) -> str:
    """The V2 tensor datatype of an MLflow signature type (from the one column-type table)."""
    return KINDS.get(mlflow_type, STRING).v2


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
                ["inputs", i, "shape"], f"shape {shape[:8]} does not match {len(data)} values", "shape"
            )
        columns[tensor["name"]] = data
    check_rows(max((len(v) for v in columns.values()), default=0), max_rows)
    return schema.batch_from_columns(columns, ["inputs"])
