"""The Open Inference Protocol's binary tensor data extension (KServe V2, Triton's HTTP clients).

A request may carry tensors as raw bytes after its JSON header: the ``Inference-Header-Content-Length``
header gives the JSON's length, each such input says ``parameters.binary_data_size``, and the bytes
follow in input order, little-endian, row-major; a BYTES element is a 4-byte little-endian length and
its bytes. An answer uses the same layout for each output the request marks ``binary_data`` (or all of
them with ``parameters.binary_data_output``). Decoding turns the bytes back into the JSON ``data`` lists
the V2 parser reads, so one rule set checks both kinds of request.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import orjson

from shipyard.errors import MalformedRequestError, PredictionInputError, RequestTooLargeError
from shipyard.serving.parsing import parse_json

HEADER_LENGTH = "Inference-Header-Content-Length"
OCTET_STREAM = "application/octet-stream"

# little-endian NumPy dtypes of the fixed-size datatypes; BOOL is one byte, 0 or 1
_DTYPES: dict[str, str] = {
    "BOOL": "<u1",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BF16": "<u2",  # the upper half of a float32
}
_LENGTH = struct.Struct("<I")


def _malformed(message: str) -> MalformedRequestError:
    return MalformedRequestError(f"malformed binary tensor request: {message}")


def _invalid(loc: list[Any], message: str, kind: str = "value_error") -> PredictionInputError:
    return PredictionInputError(
        f"invalid input: {'.'.join(map(str, loc))}: {message}", [{"loc": loc, "msg": message, "type": kind}]
    )


def header_length(value: str, body_size: int) -> int:
    """The JSON header's length from the ``Inference-Header-Content-Length`` value, checked against the
    body it is said to be a part of."""
    text = value.strip()
    if not text.isdigit() or len(text) > 12:
        raise _malformed(f"{HEADER_LENGTH} must be a non-negative integer, got {value[:40]!r}")
    length = int(text)
    if length > body_size:
        raise _malformed(f"{HEADER_LENGTH} is {length} but the body has only {body_size} bytes")
    return length


def parse_request(body: bytes, header: str | None, max_elements: int) -> Any:
    """The V2 request as JSON, with each binary input's bytes decoded into its ``data`` list."""
    if header is None:
        return parse_json(body)
    length = header_length(header, len(body))
    request = parse_json(body[:length])
    attach_inputs(request, memoryview(body)[length:], max_elements)
    return request


def attach_inputs(request: Any, raw: memoryview | bytes, max_elements: int) -> None:
    """Decode the bytes after the JSON header into the ``data`` of the inputs that declared them."""
    raw = memoryview(raw)
    inputs = request.get("inputs") if isinstance(request, Mapping) else None
    offset = 0
    if isinstance(inputs, list):
        for i, tensor in enumerate(inputs):
            if not isinstance(tensor, MutableMapping):
                continue  # the V2 parser names this mistake
            parameters = tensor.get("parameters")
            if not isinstance(parameters, Mapping) or "binary_data_size" not in parameters:
                continue
            size = parameters["binary_data_size"]
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise _invalid(
                    ["inputs", i, "parameters", "binary_data_size"], "expected a non-negative integer", "int"
                )
            if "data" in tensor:
                raise _invalid(["inputs", i, "data"], "give 'data' or 'binary_data_size', not both")
            if offset + size > len(raw):
                raise _malformed(
                    f"input {i} declares {size} bytes at offset {offset}, "
                    f"but only {len(raw) - offset} follow the JSON header"
                )
            tensor["data"] = decode_tensor(
                tensor.get("datatype"), raw[offset : offset + size], ["inputs", i], max_elements
            )
            offset += size
    if offset != len(raw):
        raise _malformed(
            f"{len(raw) - offset} bytes after the JSON header are not claimed by any input's binary_data_size"
        )


def decode_tensor(datatype: Any, raw: memoryview | bytes, loc: list[Any], max_elements: int) -> list[Any]:
    """One tensor's raw bytes as a flat list of Python values (row-major, as its JSON ``data`` would be)."""
    if datatype == "BYTES":
        return _decode_bytes(memoryview(raw), loc, max_elements)
    dtype = _DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        known = ", ".join([*_DTYPES, "BYTES"])
        raise _invalid(
            [*loc, "datatype"], f"unknown datatype {str(datatype)[:40]!r} (expected one of {known})"
        )
    itemsize = np.dtype(dtype).itemsize
    if len(raw) % itemsize:
        raise _invalid(
            [*loc, "parameters", "binary_data_size"],
            f"{len(raw)} bytes is not a whole number of {datatype} elements ({itemsize} bytes each)",
        )
    count = len(raw) // itemsize
    if count > max_elements:
        raise RequestTooLargeError(f"{count} values in one tensor; the limit is {max_elements}")
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL":
        if array.size and int(array.max()) > 1:
            raise _invalid([*loc, "data"], "BOOL elements must be the bytes 0 or 1", "bool_type")
        return [bool(v) for v in array.tolist()]
    if datatype == "BF16":
        array = (array.astype("<u4") << 16).view("<f4")
    values: list[Any] = array.tolist()
    return values


def _decode_bytes(raw: memoryview, loc: list[Any], max_elements: int) -> list[Any]:
    values: list[Any] = []
    offset = 0
    while offset < len(raw):
        if len(values) >= max_elements:
            raise RequestTooLargeError(f"more than {max_elements} values in one tensor")
        if offset + 4 > len(raw):
            raise _invalid([*loc, "data", len(values)], "truncated BYTES element (no 4-byte length)")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise _invalid(
                [*loc, "data", len(values)], f"BYTES element of {length} bytes runs past the tensor's end"
            )
        try:
            values.append(bytes(raw[offset : offset + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise _invalid(
                [*loc, "data", len(values)], "BYTES element is not UTF-8 text", "string_type"
            ) from None
        offset += length
    return values


def requested_outputs(request: Any, available: Sequence[str]) -> tuple[list[str], set[str]]:
    """Which outputs to answer (the request's ``outputs``, else all) and which of them as binary."""
    parameters = request.get("parameters") if isinstance(request, Mapping) else None
    default = isinstance(parameters, Mapping) and parameters.get("binary_data_output") is True
    asked = request.get("outputs") if isinstance(request, Mapping) else None
    if asked is None:
        return list(available), set(available) if default else set()
    if not isinstance(asked, list):
        raise _invalid(["outputs"], 'expected a list of {"name": ...}', "list_type")
    names: list[str] = []
    binary: set[str] = set()
    for i, output in enumerate(asked):
        name = output.get("name") if isinstance(output, Mapping) else None
        if not isinstance(name, str):
            raise _invalid(["outputs", i], "expected an output with a 'name'", "dict_type")
        if name not in available:
            raise _invalid(
                ["outputs", i, "name"],
                f"unknown output {name[:80]!r} (this model has: {', '.join(available)})",
            )
        options = output.get("parameters")
        if options is not None and not isinstance(options, Mapping):
            raise _invalid(["outputs", i, "parameters"], "expected an object", "dict_type")
        options = options or {}
        if options.get("classification"):
            raise _invalid(
                ["outputs", i, "parameters", "classification"],
                "the classification extension is not supported; ask for 'predict_proba'",
            )
        flag = options.get("binary_data", default)
        if not isinstance(flag, bool):
            raise _invalid(["outputs", i, "parameters", "binary_data"], "expected true or false", "bool_type")
        if name not in names:
            names.append(name)
        if flag:
            binary.add(name)
    return names, binary


def encode_tensor(datatype: str, values: Sequence[Any]) -> bytes:
    """A flat list of values as the extension's raw bytes."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in values:
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    if datatype == "BF16":
        floats = np.asarray(values, dtype="<f4").view("<u4")
        return (floats >> 16).astype("<u2").tobytes()
    return np.asarray(values, dtype=_DTYPES[datatype]).tobytes()


def encode_response(response: MutableMapping[str, Any], binary: set[str]) -> tuple[bytes, int]:
    """The answer with the ``binary`` outputs moved out of the JSON into raw bytes after it; returns the
    body and the JSON header's length (the value of ``Inference-Header-Content-Length``)."""
    chunks: list[bytes] = []
    for output in response["outputs"]:
        if output["name"] not in binary:
            continue
        raw = encode_tensor(output["datatype"], output.pop("data"))
        output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
        chunks.append(raw)
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    return header + b"".join(chunks), len(header)
