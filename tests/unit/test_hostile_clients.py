"""Hostile clients: the classic parser attacks and generated hostile JSON, headers and paths, at every route.

Whatever is sent, the service answers a success or a 4xx problem (a JSON body with a specific message),
never a 5xx, a traceback or a hang. Requests go straight to the ASGI app (no HTTP client in between to
tidy headers or bodies), through the request-context middleware and the fast lane as in production.
The generated cases are deterministic (``derandomize=True``) and bounded, so the suite stays fast.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.conftest import IRIS_ROWS, SECRET, AppFactory

GENERATED = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)
IRIS = list(IRIS_ROWS[0])
PATH_VALUES = {"name": "iris", "job_id": "0" * 32, "version": "1"}


def concrete(path: str) -> str:
    """A route's path with each parameter filled (a known good value, else ``x``)."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)


# --- driving the ASGI app ----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    escaped: str  # the traceback of an exception that left the app (a server would answer 500)


def send(
    client: TestClient,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    query: bytes = b"",
    chunks: int = 1,
) -> Answer:
    """One request on the app's own event loop; the body in ``chunks`` pieces, as a streaming client
    sends it; a hang (no complete answer within 20 s) fails the test."""

    async def run() -> Answer:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode("utf-8", "surrogatepass"),
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        size = max(1, -(-len(body) // chunks))
        parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        pending = [
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)
        ]
        done = anyio.Event()
        answer = Answer(0, {}, b"", "")
        pieces: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop(0)
            await done.wait()  # a real server reports the disconnect only once the answer is out
            return {"type": "http.disconnect"}

        async def reply(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = dict(message.get("headers", []))
            elif message["type"] == "http.response.body":
                pieces.append(message.get("body", b""))
                if not message.get("more_body"):
                    done.set()

        try:
            with anyio.fail_after(20):
                await client.app(scope, receive, reply)
        except TimeoutError:
            answer.escaped = "hang: no complete answer within 20 s"
        except Exception:
            answer.escaped = traceback.format_exc()
        answer.body = b"".join(pieces)
        return answer

    assert client.portal is not None
    return client.portal.call(run)


def problems(answer: Answer, method: str = "POST", path: str = "") -> list[str]:
    """What is wrong with an answer to a hostile request (empty when it is handled well)."""
    if answer.escaped:
        return [f"exception left the app: {answer.escaped.strip().splitlines()[-1]}"]
    if answer.status == 0:
        return ["no answer"]
    text = answer.body.decode("utf-8", "replace")
    if "Traceback" in text:
        return ["traceback in the body"]
    if answer.status >= 500:
        if answer.status == 503 and path.startswith("/batch/") and "batch queue is unavailable" in text:
            return []  # the queue's Redis is not running here: the one 5xx a valid batch call may get
        return [f"{answer.status}: {text[:200]}"]
    if answer.status < 400 or method == "HEAD":
        return []
    if not answer.headers.get(b"content-type", b"").startswith(b"application/json"):
        return [f"{answer.status} without a JSON body: {answer.headers.get(b'content-type')!r}"]
    try:
        body = json.loads(answer.body)
    except ValueError:
        return [f"{answer.status} with a body that is not JSON: {text[:100]}"]
    message = body.get("detail", body.get("error")) if isinstance(body, dict) else None
    if isinstance(message, list):
        specific = bool(message) and all(isinstance(e, dict) and e.get("msg") for e in message)
    else:
        specific = isinstance(message, str) and len(message) > 5 and "internal error" not in message
    return [] if specific else [f"{answer.status} without a specific message: {text[:200]}"]


def routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) of every route the app documents, read from its OpenAPI schema, so a
    route added later is attacked too."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return [
        (method.upper(), concrete(path))
        for path, operations in paths.items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


def body_routes(client: TestClient) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes(client) if m in ("POST", "PUT", "PATCH")]


@pytest.fixture
def hostile(client_for: AppFactory, tmp_path: Path) -> TestClient:
    """The app with both models; batch jobs confined to a temporary root, their queue unreachable."""
    (tmp_path / "in.csv").write_text(",".join(IRIS) + "\n5.1,3.5,1.4,0.2\n")
    return client_for(batch_root=str(tmp_path), redis_url="redis://127.0.0.1:9/0", max_rows=500)


JSON = [(b"content-type", b"application/json")]
CSV = [(b"content-type", b"text/csv")]


def nest(depth: int, open_: bytes = b"[", close: bytes = b"]", inner: bytes = b"") -> bytes:
    return open_ * depth + inner + close * depth


def record(**changes: Any) -> dict[str, Any]:
    return {**IRIS_ROWS[0], **changes}


# --- the classic attacks -----------------------------------------------------------------------------

ATTACKS: list[tuple[str, list[tuple[bytes, bytes]], bytes]] = [
    ("array nested 100,000 deep", JSON, nest(100_000)),
    ("object nested 100,000 deep", JSON, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("mixed nesting 5,000 deep", JSON, b'[{"a":' * 5_000 + b"0" + b"}]" * 5_000),
    ("nested 1,000 deep (under orjson's limit)", JSON, nest(1_000)),
    ("deep records", JSON, b'{"records": [' + nest(1_000) + b"]}"),
    ("deep feature value", JSON, json.dumps(record()).encode().replace(b"5.1", nest(1_000), 1)),
    ("deep value beside NaN", JSON, b'{"a": NaN, "b": ' + nest(5_000) + b"}"),
    ("null", JSON, b"null"),
    ("true", JSON, b"true"),
    ("false", JSON, b"false"),
    ("zero", JSON, b"0"),
    ("negative zero", JSON, b"-0"),
    ("a string", JSON, b'"x"'),
    ("an empty list", JSON, b"[]"),
    ("an empty object", JSON, b"{}"),
    ("a list of null", JSON, b"[null]"),
    ("a list of lists", JSON, b"[[]]"),
    ("empty body", JSON, b""),
    ("whitespace body", JSON, b" \r\n\t "),
    ("1e400", JSON, json.dumps(record()).encode().replace(b"5.1", b"1e400", 1)),
    (
        "-1e400 and 1e-400",
        JSON,
        json.dumps(record()).encode().replace(b"5.1", b"-1e400", 1).replace(b"3.5", b"1e-400"),
    ),
    ("integer of 400 digits", JSON, json.dumps(record()).encode().replace(b"5.1", b"9" * 400, 1)),
    ("integer of 5,000 digits", JSON, json.dumps(record()).encode().replace(b"5.1", b"9" * 5_000, 1)),
    ("2**64 - 1", JSON, json.dumps(record(sepal_length=2**64 - 1)).encode()),
    ("2**70", JSON, json.dumps(record(sepal_length=2**70)).encode()),
    (
        "NaN and Infinity",
        JSON,
        b'{"sepal_length": NaN, "sepal_width": Infinity, "petal_length": -Infinity, "petal_width": 1}',
    ),
    ("lowercase nan", JSON, b'{"sepal_length": nan}'),
    ("lone high surrogate in a value", JSON, json.dumps(record(sepal_length="\ud800")).encode()),
    ("lone low surrogate as a key", JSON, b'{"\\udfff": 1}'),
    ("reversed surrogate pair", JSON, b'{"a": "\\udc00\\ud800"}'),
    ("invalid escapes", JSON, b'{"a": "\\x41\\u12"}'),
    ("invalid UTF-8 byte", JSON, b'{"sepal_length": "\xff"}'),
    ("overlong UTF-8", JSON, b'{"a": "\xc0\xaf"}'),
    ("CESU-8 surrogate", JSON, b'{"a": "\xed\xa0\x80"}'),
    ("truncated multibyte", JSON, b'{"a": "\xe2\x82"}'),
    ("UTF-8 BOM", JSON, b"\xef\xbb\xbf" + json.dumps(record()).encode()),
    ("UTF-16 body", JSON, json.dumps(record()).encode("utf-16")),
    ("UTF-32 body", JSON, json.dumps(record()).encode("utf-32")),
    ("NUL in a string", JSON, json.dumps(record(sepal_length="\x00")).encode()),
    ("raw NUL byte", JSON, b'{"a": 1}\x00'),
    ("duplicate keys", JSON, b'{"records": [], "records": [{"sepal_length": 1}], "records": "x"}'),
    ("trailing comma", JSON, b'{"a": 1,}'),
    ("comment", JSON, b'/* x */ {"a": 1}'),
    ("single quotes", JSON, b"{'a': 1}"),
    ("unquoted key", JSON, b"{a: 1}"),
    ("two documents", JSON, b"{} {}"),
    ("trailing garbage", JSON, b'{"a": 1} xyz'),
    ("a megabyte of spaces", JSON, b" " * 1_000_000 + b"{}"),
    ("prototype pollution keys", JSON, b'{"__proto__": {"admin": true}, "constructor": {"prototype": 1}}'),
    ("50,000 keys", JSON, json.dumps({f"k{i}": i for i in range(50_000)}).encode()),
    ("a megabyte key", JSON, json.dumps({"k" * 1_000_000: 1}).encode()),
    ("a megabyte string", JSON, json.dumps(record(sepal_length="v" * 1_000_000)).encode()),
    ("100,000 numbers", JSON, json.dumps(list(range(100_000))).encode()),
    ("records of scalars", JSON, b'{"records": [1, "x", null, [], true]}'),
    (
        "mixed-type column",
        JSON,
        json.dumps({"records": [record(), record(sepal_length="x"), record(sepal_length=True)]}).encode(),
    ),
    (
        "unhashable split columns",
        JSON,
        b'{"dataframe_split": {"columns": [[1], {"a": 1}], "data": [[1, 2]]}}',
    ),
    ("split rows of objects", JSON, b'{"dataframe_split": {"columns": ["a"], "data": [{"a": 1}]}}'),
    (
        "v2 nested data",
        JSON,
        b'{"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [[[1]]]}]}',
    ),
    (
        "v2 echoed id of every kind",
        JSON,
        json.dumps(
            {
                "id": {"a": [1, None, 1.5]},
                "inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]} for c in IRIS],
            }
        ).encode(),
    ),
    ("v2 surrogate id", JSON, b'{"id": "\\ud800", "inputs": []}'),
    ("feedback labels of objects", JSON, b'{"request_id": "x", "labels": [{"a": 1}, [1]]}'),
    ("feedback label 1e400", JSON, b'{"request_id": "x", "label": 1e400}'),
    ("feedback items of every kind", JSON, b'{"feedback": [null, 1, "x", [], {"request_id": 5}]}'),
    ("batch job with the wrong types", JSON, b'{"model": 1, "input": [], "output": {}, "chunk_rows": "x"}'),
    ("batch job reading /etc/passwd", JSON, b'{"model": "iris", "input": "/etc/passwd", "output": "o.csv"}'),
    (
        "batch job with a NUL in a path",
        JSON,
        b'{"model": "iris", "input": "in\\u0000.csv", "output": "o.csv"}',
    ),
    (
        "batch job with a huge chunk count",
        JSON,
        b'{"model": "iris", "input": "in.csv", "output": "o.csv", "chunk_rows": 1e400}',
    ),
    (
        "XML with an external entity",
        [(b"content-type", b"application/xml")],
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    ),
    ("form body", [(b"content-type", b"application/x-www-form-urlencoded")], b"sepal_length=1&a[b]=2"),
    (
        "multipart body",
        [(b"content-type", b"multipart/form-data; boundary=x")],
        b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n",
    ),
    ("no content type", [], json.dumps(record()).encode()),
    ("text/plain JSON", [(b"content-type", b"text/plain")], json.dumps(record()).encode()),
    ("CSV: binary junk", CSV, b"\x00\x01\x02\xff"),
    ("CSV: mixed types, 1e400, empty", CSV, b",".join(x.encode() for x in IRIS) + b"\n1,x,1e400,\n"),
    ("CSV: 400-digit integer", CSV, b",".join(x.encode() for x in IRIS) + b"\n" + b"9" * 400 + b",1,1,1\n"),
    (
        "CSV: 5,000-digit integer",
        CSV,
        b",".join(x.encode() for x in IRIS) + b"\n" + b"9" * 5_000 + b",1,1,1\n",
    ),
    ("CSV: unbalanced quote", CSV, b'a,b\n"1,2\n'),
    ("CSV: header only", CSV, b"a,b\n"),
    ("CSV: duplicate columns", CSV, b"sepal_length,sepal_length\n1,2\n"),
    ("CSV: formula injection", CSV, b",".join(x.encode() for x in IRIS) + b"\n=cmd|' /C calc'!A0,1,1,1\n"),
    (
        "CSV: 10,000 columns",
        CSV,
        b",".join(b"c%d" % i for i in range(10_000)) + b"\n" + b"1," * 9_999 + b"1\n",
    ),
    ("CSV: ragged rows", CSV, b"a,b\n1\n1,2,3,4\n"),
    ("CSV: carriage returns only", CSV, b"a,b\r1,2\r"),
    ("CSV: latin-1", CSV, "sepal_length\né\n".encode("latin-1")),
    ("CSV: BOM", CSV, b"\xef\xbb\xbf" + b",".join(x.encode() for x in IRIS) + b"\n1,1,1,1\n"),
    ("CSV: too many rows", CSV, b",".join(x.encode() for x in IRIS) + b"\n" + b"1,1,1,1\n" * 600),
]


def test_classic_parser_attacks_at_every_route_that_takes_a_body(hostile: TestClient) -> None:
    routes = body_routes(hostile)
    assert {"/predict", "/invocations", "/feedback", "/batch/jobs", "/admin/reload"} <= {p for _, p in routes}
    failures = []
    started = time.monotonic()
    for method, path in routes:
        for name, headers, body in ATTACKS:
            answer = send(hostile, method, path, headers, body)
            failures += [f"{method} {path} <- {name}: {p}" for p in problems(answer, method, path)]
    assert not failures, "\n".join(failures)
    assert time.monotonic() - started < 60


def test_a_deep_body_is_a_400_that_says_so(hostile: TestClient) -> None:
    for path in ("/predict", "/invocations", "/v2/models/iris/infer", "/feedback", "/batch/jobs"):
        for body in (nest(100_000), nest(40, b'{"a":', b"}", b"1"), b'{"a": NaN, "b": ' + nest(5_000) + b"}"):
            answer = send(hostile, "POST", path, JSON, body)
            assert answer.status == 400, (path, answer)
            assert b"nested more than 32 levels deep" in answer.body
    shallow = {"records": [record()], "x": [[[[[[[[1]]]]]]]]}  # 10 levels: read, then refused by field
    assert send(hostile, "POST", "/predict", JSON, json.dumps(shallow).encode()).status == 422


def test_numbers_no_column_can_hold_are_refused_by_field(hostile: TestClient) -> None:
    body = json.dumps({"records": [record(sepal_length=10**400)]}).encode()  # an integer, written out
    answer = send(hostile, "POST", "/predict", JSON, body)
    assert answer.status == 422
    [error] = json.loads(answer.body)["detail"]
    assert error["loc"] == ["records", 0, "sepal_length"] and "out of range" in error["msg"]


def test_a_lone_surrogate_is_a_400_naming_where(hostile: TestClient) -> None:
    body = b'{"records": [{"sepal_length": NaN, "colour": "\\ud800"}]}'
    answer = send(hostile, "POST", "/predict", JSON, body)
    assert answer.status == 400
    assert (
        "lone surrogate" in json.loads(answer.body)["detail"] and ".records[0].colour" in answer.body.decode()
    )


def test_feedback_refuses_odd_bodies_and_text_for_a_regressor(
    hostile: TestClient, housing_loaded: tuple[Any, Any]
) -> None:
    for body in (b"null", b"true", b"0", b'"x"', b"[]"):
        answer = send(hostile, "POST", "/feedback", JSON, body)
        assert answer.status == 422, (body, answer)
        assert json.loads(answer.body)["detail"][0]["msg"].startswith('expected {"request_id"')
    first = housing_loaded[1].X_test.head(1).to_dict("records")[0]
    row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in first.items()}
    request_id = hostile.post("/models/housing/predict", json=row).json()["request_id"]
    for label in ("cheap", True, None, [1], 10**400):
        answer = hostile.post("/feedback", json={"request_id": request_id, "label": label})
        assert answer.status_code == 422, (label, answer.text)
    text = hostile.post("/feedback", json={"request_id": request_id, "label": "cheap"})
    assert "answered by a regressor: its labels are numbers" in text.json()["detail"][0]["msg"]
    good = hostile.post("/feedback", json={"request_id": request_id, "label": 180000})
    assert good.status_code == 200 and good.json()["matched_rows"] == 1
    assert hostile.post("/feedback", json={"request_id": request_id, "label": 1.5}).status_code == 200


def test_compressed_bodies_are_refused_with_a_415(hostile: TestClient) -> None:
    for encoding in (b"gzip", b"deflate", b"br", b"GZIP", b"gzip, identity"):
        answer = send(
            hostile, "POST", "/predict", [*JSON, (b"content-encoding", encoding)], gzip.compress(b"{}")
        )
        assert answer.status == 415, (encoding, answer)
        assert b"send the body uncompressed" in answer.body
    v2 = send(hostile, "POST", "/v2/models/iris/infer", [*JSON, (b"content-encoding", b"gzip")], b"x")
    assert v2.status == 415 and "error" in json.loads(v2.body)
    plain = send(
        hostile,
        "POST",
        "/predict",
        [*JSON, (b"content-encoding", b"identity")],
        json.dumps(record()).encode(),
    )
    assert plain.status == 200


# --- generated hostile JSON, headers and paths -------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON number written as-is (``1e400``, ``NaN``): what no JSON encoder would produce."""

    text: str


def encode(value: Any) -> bytes:
    """JSON text with what encoders refuse to write: raw numbers, lone surrogates, duplicate keys (an
    object is a list of pairs)."""

    def text(item: Any) -> str:
        if isinstance(item, Raw):
            return item.text
        if isinstance(item, (Pairs, dict)):
            pairs = item.pairs if isinstance(item, Pairs) else item.items()
            return "{" + ", ".join(f"{json.dumps(k)}: {text(v)}" for k, v in pairs) + "}"
        if isinstance(item, list):
            return "[" + ", ".join(map(text, item)) + "]"
        return json.dumps(item)  # ensure_ascii: a lone surrogate becomes the escape "\ud800"

    return text(value).encode()


@dataclass(frozen=True)
class Pairs:
    pairs: tuple[tuple[str, Any], ...]


ODD_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=30
)  # every code point, lone surrogates, controls and NUL included
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**400, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [Raw("1e400"), Raw("-1e400"), Raw("1e-400"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity")]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    ODD_TEXT,
    st.sampled_from(["", "x" * 100_000, "setosa", "Y", "N", "../../etc/passwd", "in.csv", "iris"]),
)


def values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(st.tuples(st.one_of(ODD_TEXT, st.sampled_from(IRIS)), inner), max_size=4).map(
                lambda p: Pairs(tuple(p))
            ),
        ),
        max_leaves=max_leaves,
    )


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A good iris record with at most one thing wrong, so that generated bodies reach the scoring code
    and not only the first check."""
    row: dict[str, Any] = {k: draw(st.floats(0, 10)) for k in IRIS}
    change = draw(st.sampled_from(["none", "none", "value", "drop", "extra"]))
    if change == "value":
        row[draw(st.sampled_from(IRIS))] = draw(values(3))
    elif change == "drop":
        del row[draw(st.sampled_from(IRIS))]
    elif change == "extra":
        row[draw(ODD_TEXT)] = draw(values(2))
    return row


def records() -> st.SearchStrategy[Any]:
    """Records near the real ones: each feature good, hostile, missing or repeated; odd extra keys."""
    feature = st.one_of(st.floats(0, 10), values(4))
    record_ = st.lists(
        st.tuples(st.sampled_from([*IRIS, *IRIS, "colour", "records"]), feature), min_size=0, max_size=7
    ).map(lambda p: Pairs(tuple(p)))
    return st.one_of(near_valid(), near_valid(), record_, values(4))


def v2_body() -> st.SearchStrategy[dict[str, Any]]:
    """A V2 request for a few good rows, one tensor's data or shape possibly hostile."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        rows = draw(st.integers(1, 3))
        tensors: list[dict[str, Any]] = [
            {
                "name": c,
                "shape": [rows],
                "datatype": "FP64",
                "data": [draw(st.floats(0, 10)) for _ in range(rows)],
            }
            for c in IRIS
        ]
        if draw(st.booleans()):
            target = draw(st.sampled_from(tensors))
            target[draw(st.sampled_from(["data", "shape", "datatype", "name"]))] = draw(values(3))
        return {"id": draw(values(2)), "inputs": tensors}

    return build()


@functools.cache
def protocol_bodies() -> dict[str, st.SearchStrategy[Any]]:
    """Bodies shaped like each protocol's, with hostile values where the real ones go; by protocol."""
    names = st.one_of(st.sampled_from(IRIS), values(2))
    tensors = st.fixed_dictionaries(
        {},
        optional={
            "name": names,
            "shape": st.one_of(st.lists(st.integers(-2, 3), max_size=2), values(2)),
            "datatype": st.one_of(st.sampled_from(["FP64", "INT64", "BYTES", "BOOL"]), values(1)),
            "data": st.one_of(st.lists(st.one_of(st.floats(0, 10), values(2)), max_size=4), values(3)),
            "parameters": values(3),
        },
    )
    rows = st.lists(records(), max_size=4)
    return {
        "predict": st.one_of(records(), st.fixed_dictionaries({"records": st.one_of(rows, values(4))})),
        "invocations": st.one_of(
            st.fixed_dictionaries(
                {
                    "dataframe_split": st.fixed_dictionaries(
                        {"columns": st.lists(names, max_size=5), "data": values(6)}
                    )
                }
            ),
            st.fixed_dictionaries({"dataframe_records": st.one_of(rows, values(4))}),
            st.fixed_dictionaries({"instances": st.one_of(rows, values(4))}),
            st.fixed_dictionaries(
                {"inputs": st.dictionaries(names.filter(lambda n: isinstance(n, str)), values(4))}
            ),
        ),
        "infer": st.one_of(
            v2_body(),
            st.fixed_dictionaries(
                {},
                optional={"id": values(3), "parameters": values(3), "inputs": st.lists(tensors, max_size=5)},
            ),
        ),
        "feedback": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"request_id": values(1), "label": values(2), "labels": values(3)}
            ),
            st.fixed_dictionaries({"feedback": values(5)}),
        ),
        "batch": st.fixed_dictionaries(
            {},
            optional={
                "model": st.one_of(st.just("iris"), values(1)),
                "input": st.one_of(st.just("in.csv"), values(1)),
                "output": st.one_of(st.just("out.csv"), values(1)),
                "keep": values(2),
                "on_error": st.one_of(st.sampled_from(["fail", "skip"]), values(1)),
                "chunk_rows": st.one_of(NUMBERS, values(1)),
                "overwrite": values(1),
            },
        ),
    }


def protocol_of(path: str) -> str:
    for marker, kind in (("/infer", "infer"), ("predict", "predict"), ("/invocations", "invocations")):
        if marker in path:
            return kind
    return {"/feedback": "feedback", "/batch/jobs": "batch"}.get(path, "")


@st.composite
def body_for(draw: st.DrawFn, path: str) -> bytes:
    """Mostly the route's own protocol with hostile parts; sometimes another's, or anything at all."""
    shapes = protocol_bodies()
    own = shapes.get(protocol_of(path))
    pick = draw(st.integers(0, 9))
    if own is not None and pick < 6:
        body = draw(own)
    elif pick < 8:
        body = draw(st.sampled_from(sorted(shapes)).flatmap(lambda k: shapes[k]))
    else:
        body = draw(values(20))
    return draw(mangled(encode(body)))


@st.composite
def mangled(draw: st.DrawFn, body: bytes) -> bytes:
    """The body as sent, or broken on the way: a BOM, UTF-16, cut short, stray bytes, deep nesting."""
    how = draw(st.sampled_from(["as is"] * 6 + ["bom", "utf-16", "cut", "bytes", "deep", "empty"]))
    if how == "bom":
        return b"\xef\xbb\xbf" + body
    if how == "utf-16":
        return body.decode("utf-8").encode("utf-16")
    if how == "cut":
        return body[: draw(st.integers(0, len(body)))]
    if how == "bytes":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.binary(min_size=1, max_size=4)) + body[at:]
    if how == "deep":
        depth = draw(st.integers(30, 3_000))
        return b'{"records": ' + nest(depth) + b', "x": ' + body + b"}"
    if how == "empty":
        return b""
    return body


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            b"application/json",
            b"application/json; charset=utf-8",
            b"APPLICATION/JSON",
            b" application/json ;;; charset=",
            b"application/json; charset=utf-16",
            b"application/json; charset=latin-1",
            b"application/json; charset=utf-7",
            b"application/vnd.api+json",
            b"text/csv",
            b"text/csv; charset=utf-8",
            b"text/plain",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=---x",
            b"application/xml",
            b"",
            b"*/*",
            b"application/json\x00",
        ]
    ),
    st.binary(max_size=60),
)


@st.composite
def hostile_headers(draw: st.DrawFn, body: bytes, token: str) -> list[tuple[bytes, bytes]]:
    """Headers a hostile or broken client sends: odd content types, lying or malformed lengths, forged
    and oversized tokens, compressed encodings, hundreds of headers."""
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.integers(0, 5)):  # now and then no Content-Type at all
        headers.append((b"content-type", draw(CONTENT_TYPES)))
    length = draw(
        st.sampled_from(["right", "missing", "short", "long", "abc", "-1", "1e3", "huge", "twice", " 5"])
    )
    lengths = {
        "right": [str(len(body)).encode()],
        "missing": [],
        "short": [str(max(0, len(body) - 3)).encode()],
        "long": [str(len(body) + 100).encode()],
        "huge": [b"9" * 30],
        "twice": [str(len(body)).encode(), b"1"],
    }.get(length, [length.encode()])
    headers += [(b"content-length", v) for v in lengths]
    auth = draw(
        st.sampled_from(
            [
                None,
                b"Bearer " + token.encode(),
                b"Bearer " + token.encode() + b"x",
                b"Bearer",
                b"Bearer    ",
                b"Basic YWRtaW46YWRtaW4=",
                b"Bearer " + b"a" * 20_000,
                b"Bearer \xff\xfe\x00",
                b"bearer " + token.encode(),
                b"Bearer " + _alg_none_token().encode(),
            ]
        )
    )
    if auth is not None:
        headers.append((b"authorization", auth))
    for name in (b"content-encoding", b"x-request-id", b"x-shipyard-key", b"transfer-encoding", b"expect"):
        if draw(st.integers(0, 4)) == 0:
            headers.append(
                (
                    name,
                    draw(
                        st.one_of(
                            st.binary(max_size=40),
                            st.sampled_from([b"gzip", b"chunked", b"100-continue", b"a" * 70_000]),
                        )
                    ),
                )
            )
    if draw(st.integers(0, 9)) == 0:
        headers += [(b"x-junk-%d" % i, b"v" * 100) for i in range(500)]
    return headers


def _alg_none_token() -> str:
    """The classic: a token that names no signature algorithm."""
    now = int(time.time())
    claims = {"sub": "mallory", "scope": "admin", "aud": "shipyard", "exp": now + 600}
    return jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]


def test_generated_bodies_never_get_a_5xx(hostile: TestClient) -> None:
    targets = body_routes(hostile)
    failures: list[str] = []

    @GENERATED
    @given(target=st.sampled_from(targets), data=st.data(), csv=st.booleans(), chunks=st.integers(1, 3))
    def attack(target: tuple[str, str], data: st.DataObject, csv: bool, chunks: int) -> None:
        method, path = target
        body = data.draw(body_for(path))
        headers = CSV if csv and path == "/invocations" else JSON
        answer = send(hostile, method, path, headers, body, chunks=chunks)
        found = problems(answer, method, path)
        failures.extend(f"{method} {path} <- {body[:120]!r}: {p}" for p in found)
        assert not found, failures[-1]

    attack()


def test_generated_headers_never_get_a_5xx(client_for: AppFactory, tmp_path: Path) -> None:
    secured = client_for(
        auth_enabled=True, jwt_secret=SECRET, batch_root=str(tmp_path), redis_url="redis://127.0.0.1:9/0"
    )
    now = int(time.time())
    token = jwt.encode({"sub": "t", "scope": "admin", "aud": "shipyard", "exp": now + 600}, SECRET)
    targets = routes(secured)

    @GENERATED
    @given(target=st.sampled_from(targets), data=st.data())
    def attack(target: tuple[str, str], data: st.DataObject) -> None:
        method, path = target
        body = data.draw(st.sampled_from([b"", json.dumps(record()).encode(), b"{", b"1,2\n3,4\n"]))
        headers = data.draw(hostile_headers(body, token))
        answer = send(secured, method, path, headers, body)
        found = problems(answer, method, path)
        assert not found, f"{method} {path} <- {headers!r:.300}: {found}"

    attack()


PATH_PARTS = st.one_of(
    st.sampled_from(
        [
            "iris",
            "housing",
            "wine",
            "..",
            "%2e%2e",
            "a" * 5_000,
            "%00",
            "\x00",
            " ",
            "iris%2fpredict",
            "0" * 32,
        ]
    ),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20).filter(lambda t: "/" not in t),
)


def test_generated_paths_methods_and_queries_never_get_a_5xx(hostile: TestClient) -> None:
    templates = [p for _, p in routes(hostile)] + ["/static-docs/../../etc/passwd", "//predict", "/predict/"]

    @GENERATED
    @given(
        template=st.sampled_from(sorted(set(templates))),
        part=PATH_PARTS,
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"]),
        query=st.one_of(
            st.just(b""),
            st.sampled_from([b"refresh=maybe", b"refresh=true&refresh=1", b"a=%ff", b"%"]),
            st.binary(max_size=30),
        ),
    )
    def attack(template: str, part: str, method: str, query: bytes) -> None:
        path = template.replace("iris", part, 1) if "iris" in template else template
        answer = send(hostile, method, path, JSON, b"{}", query=query)
        found = problems(answer, method, path)
        assert not found, f"{method} {path[:80]!r}?{query!r}: {found}"

    attack()
