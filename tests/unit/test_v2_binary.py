"""The binary tensor data extension's byte layout, checked against tritonclient's own encoders and
decoders, and its refusals: every malformed binary body is a clear 400/413/422, never anything else."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request

from shipyard.errors import MalformedRequestError, PredictionInputError, RequestTooLargeError
from shipyard.serving import v2_binary

CLIENT_ERRORS = (MalformedRequestError, PredictionInputError, RequestTooLargeError)


def triton_body(
    inputs: list[InferInput], outputs: list[InferRequestedOutput] | None = None
) -> tuple[bytes, str]:
    """The exact body and header value tritonclient's HTTP client sends for these tensors."""
    body, json_size = _get_inference_request(
        inputs=inputs,
        request_id="",
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )
    assert json_size is not None
    return body, str(json_size)


def tensor(name: str, array: np.ndarray[Any, Any], datatype: str) -> InferInput:
    given_input = InferInput(name, list(array.shape), datatype)
    given_input.set_data_from_numpy(array, binary_data=True)
    return given_input


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("FP64", np.array([5.1, -0.0, 1e300, 3.25])),
        ("FP32", np.array([5.5, 2.25], dtype=np.float32)),
        ("FP16", np.array([1.5, -2.0], dtype=np.float16)),
        ("INT64", np.array([1, -(2**62), 7], dtype=np.int64)),
        ("INT32", np.array([3, -4], dtype=np.int32)),
        ("INT8", np.array([-128, 127], dtype=np.int8)),
        ("UINT64", np.array([2**63 + 5], dtype=np.uint64)),
        ("UINT8", np.array([0, 255], dtype=np.uint8)),
        ("BOOL", np.array([True, False, True])),
        ("BYTES", np.array(["Gtl", "", "naïve ✓", "NA"], dtype=object)),
    ],
)
def test_inputs_decode_to_the_values_tritonclient_encoded(datatype: str, array: np.ndarray[Any, Any]) -> None:
    body, header = triton_body([tensor("x", array, datatype)])
    request = v2_binary.parse_request(body, header, max_elements=100)
    expected = [v for v in array.tolist()]
    assert request["inputs"][0]["data"] == expected


def test_several_inputs_take_their_own_slices_in_order() -> None:
    first = tensor("a", np.array([1.0, 2.0]), "FP64")
    second = tensor("b", np.array(["x", "yz"], dtype=object), "BYTES")
    third = InferInput("c", [2], "INT64")
    third.set_data_from_numpy(np.array([7, 8]), binary_data=False)  # JSON and binary mixed
    body, header = triton_body([first, second, third])
    request = v2_binary.parse_request(body, header, max_elements=100)
    assert [t["data"] for t in request["inputs"]] == [[1.0, 2.0], ["x", "yz"], [7, 8]]


def test_a_2d_tensor_decodes_row_major() -> None:
    body, header = triton_body([tensor("x", np.array([[1.0], [2.0], [3.0]]), "FP64")])
    assert v2_binary.parse_request(body, header, 100)["inputs"][0]["data"] == [1.0, 2.0, 3.0]


def test_bf16_decodes_to_the_float_it_truncates() -> None:
    raw = (np.array([1.5, -3.0], dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
    assert v2_binary.decode_tensor("BF16", raw, ["inputs", 0], 10) == [1.5, -3.0]
    assert v2_binary.encode_tensor("BF16", [1.5, -3.0]) == raw


def test_outputs_encode_so_tritonclient_reads_them_back() -> None:
    response = {
        "model_name": "iris",
        "model_version": "1",
        "id": "r1",
        "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [2], "data": ["setosa", "virginica"]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [2, 2], "data": [0.9, 0.1, 0.2, 0.8]},
        ],
    }
    body, length = v2_binary.encode_response(response, {"predict", "predict_proba"})
    result = InferResult.from_response_body(body, header_length=length)
    assert result.as_numpy("predict").tolist() == [b"setosa", b"virginica"]
    assert result.as_numpy("predict_proba").tolist() == [[0.9, 0.1], [0.2, 0.8]]
    header = json.loads(body[:length])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 4 + 6 + 4 + 9
    assert "data" not in header["outputs"][0]


def test_only_the_outputs_marked_binary_leave_the_json() -> None:
    response = {
        "outputs": [
            {"name": "predict", "datatype": "FP64", "shape": [1], "data": [3.5]},
            {"name": "other", "datatype": "FP64", "shape": [1], "data": [1.0]},
        ]
    }
    body, length = v2_binary.encode_response(response, {"other"})
    result = InferResult.from_response_body(body, header_length=length)
    assert result.as_numpy("predict").tolist() == [3.5]
    assert result.as_numpy("other").tolist() == [1.0]
    assert len(body) == length + 8


def test_requested_outputs_follow_the_request_and_its_default() -> None:
    available = ["predict", "predict_proba"]
    assert v2_binary.requested_outputs({}, available) == (available, set())
    everything = {"parameters": {"binary_data_output": True}}
    assert v2_binary.requested_outputs(everything, available) == (available, set(available))
    asked = {"outputs": [{"name": "predict_proba", "parameters": {"binary_data": True}}, {"name": "predict"}]}
    assert v2_binary.requested_outputs(asked, available) == (["predict_proba", "predict"], {"predict_proba"})


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"outputs": "predict"}, "expected a list"),
        ({"outputs": [{"name": "probability"}]}, "unknown output 'probability'"),
        ({"outputs": [{"name": "predict", "parameters": {"binary_data": "yes"}}]}, "true or false"),
        ({"outputs": [{"name": "predict", "parameters": {"classification": 2}}]}, "not supported"),
        ({"outputs": [{}]}, "with a 'name'"),
    ],
)
def test_bad_requested_outputs_are_named(request_body: dict[str, Any], message: str) -> None:
    with pytest.raises(PredictionInputError, match=message):
        v2_binary.requested_outputs(request_body, ["predict", "predict_proba"])


def _framed(header: dict[str, Any], raw: bytes) -> tuple[bytes, str]:
    text = json.dumps(header).encode()
    return text + raw, str(len(text))


def _input(size: Any, datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "x",
                "datatype": datatype,
                "shape": [1],
                "parameters": {"binary_data_size": size},
                **extra,
            }
        ]
    }


@pytest.mark.parametrize(
    ("body", "header", "status", "message"),
    [
        (b'{"inputs": []}', "-1", 400, "non-negative integer"),
        (b'{"inputs": []}', "1e3", 400, "non-negative integer"),
        (b'{"inputs": []}', "99", 400, "has only 14 bytes"),
        (b'{"inputs": []}', "99999999999999999999", 400, "non-negative integer"),
        (*_framed(_input(16), b"\0" * 8), 400, "only 8 follow"),
        (*_framed(_input(8), b"\0" * 12), 400, "4 bytes after the JSON header are not claimed"),
        (*_framed({"inputs": []}, b"\0" * 3), 400, "not claimed"),
        (*_framed(_input(-1), b""), 422, "non-negative integer"),
        (*_framed(_input(True), b"\0"), 422, "non-negative integer"),
        (*_framed(_input(7), b"\0" * 7), 422, "not a whole number of FP64"),
        (*_framed(_input(8, "FP128"), b"\0" * 8), 422, "unknown datatype"),
        (*_framed(_input(8, data=[1.0]), b"\0" * 8), 422, "not both"),
        (*_framed(_input(2, "BOOL"), b"\x01\x02"), 422, "0 or 1"),
        (*_framed(_input(3, "BYTES"), b"\x01\0\0"), 422, "truncated"),
        (*_framed(_input(5, "BYTES"), b"\x09\0\0\0a"), 422, "runs past"),
        (*_framed(_input(5, "BYTES"), b"\x01\0\0\0\xff"), 422, "not UTF-8"),
        (*_framed(_input(88, "FP64"), b"\0" * 88), 413, "limit is 10"),
        (*_framed(_input(44, "BYTES"), b"\0\0\0\0" * 11), 413, "more than 10"),
    ],
)
def test_malformed_binary_requests_get_a_clear_client_error(
    body: bytes, header: str, status: int, message: str
) -> None:
    with pytest.raises(CLIENT_ERRORS) as caught:
        v2_binary.parse_request(body, header, max_elements=10)
    assert caught.value.http_status == status
    assert message in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(
    header=st.dictionaries(
        st.sampled_from(["inputs", "outputs", "parameters", "id"]),
        st.recursive(
            st.none() | st.booleans() | st.integers(-5, 40) | st.sampled_from(["FP64", "BYTES", "BOOL", "x"]),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["name", "datatype", "shape", "data", "parameters", "binary_data_size"]),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=12,
        ),
    ),
    raw=st.binary(max_size=48),
    slack=st.integers(-3, 3),
)
def test_any_body_is_decoded_or_refused_as_a_client_error(
    header: dict[str, Any], raw: bytes, slack: int
) -> None:
    text = json.dumps(header).encode()
    with contextlib.suppress(CLIENT_ERRORS):
        v2_binary.parse_request(text + raw, str(max(len(text) + slack, 0)), max_elements=10)
