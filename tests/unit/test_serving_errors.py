"""Client mistakes get a specific 4xx naming the field; no input produces a 500."""

from __future__ import annotations

import math
import time
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

import shipyard
from tests.unit.conftest import IRIS_ROWS, SECRET, AppFactory


def test_missing_extra_and_mistyped_features_are_each_named(client: TestClient) -> None:
    secret = "s3cr3t-value-" * 20
    body = {"sepal_length": "long", "sepal_width": True, "petal_width": 0.2, "colour": secret}
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e for e in response.json()["detail"]}
    assert errors[(0, "sepal_length")]["msg"] == "expected a number, got 'long'"
    assert errors[(0, "sepal_width")]["type"] == "float_type"
    assert errors[(0, "petal_length")]["msg"] == "field required"
    assert errors[(0, "colour")]["type"] == "extra_forbidden"
    assert secret not in response.text  # the input is not echoed back


def test_nan_is_missing_and_infinity_is_refused_by_field(client: TestClient) -> None:
    """NaN is a missing value (as MLflow's client writes one), so a required feature refuses it as
    missing; Infinity is a bad number."""
    body = (
        b'{"records": [{"sepal_length": NaN, "sepal_width": Infinity, '
        b'"petal_length": 1.4, "petal_width": 0.2}]}'
    )
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    locs = {tuple(e["loc"]): e["type"] for e in response.json()["detail"]}
    assert locs == {
        ("records", 0, "sepal_length"): "missing",
        ("records", 0, "sepal_width"): "finite_number",
    }


def test_unknown_category_where_the_contract_fixes_them(client: TestClient, housing_loaded: tuple) -> None:
    _, split = housing_loaded
    first = split.X_test.head(1).to_dict("records")[0]
    record = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in first.items()}
    record["central_air"] = "maybe"
    record["neighborhood"] = "Atlantis"  # not fixed by the contract: an unseen value the model tolerates
    response = client.post("/models/housing/predict", json=record)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == [0, "central_air"]
    assert error["msg"] == "unknown category 'maybe' (expected one of: N, Y)"


def test_too_many_rows_and_too_big_a_body(client_for: AppFactory) -> None:
    client = client_for(max_rows=2, max_body_bytes=2048)
    assert client.post("/predict", json={"records": IRIS_ROWS[:2]}).status_code == 200
    rows = client.post("/predict", json={"records": IRIS_ROWS})
    assert rows.status_code == 413 and "3 rows in one request; the limit is 2" in rows.json()["detail"]
    split = {"dataframe_split": {"columns": list(IRIS_ROWS[0]), "data": [[1, 2, 3, 4]] * 3}}
    assert client.post("/invocations", json=split).status_code == 413
    big = b'{"records": [' + b",".join([b'{"sepal_length": 5.1}'] * 200) + b"]}"
    declared = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "over the 2048-byte limit" in declared.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(200):
            yield b" " * 64

    streamed = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_malformed_json_and_wrong_content_type(client: TestClient) -> None:
    bad = client.post("/predict", content=b'{"sepal_length": ', headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("malformed JSON")
    empty = client.post("/predict", content=b"", headers={"content-type": "application/json"})
    assert empty.status_code == 400
    wrong = client.post(
        "/predict", content=b"a=1", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert wrong.status_code == 415
    assert "send application/json" in wrong.json()["detail"]
    csv_bad = client.post("/invocations", content=b"\x00\x01", headers={"content-type": "text/csv"})
    assert csv_bad.status_code in (400, 422)


def test_unknown_model_is_404_and_protocol_shapes(client: TestClient) -> None:
    assert client.post("/models/wine/predict", json=IRIS_ROWS[0]).status_code == 404
    v2 = client.post("/v2/models/wine/infer", json={"inputs": []})
    assert v2.status_code == 404 and "error" in v2.json()
    two = client.post("/invocations", json={"dataframe_records": IRIS_ROWS, "instances": IRIS_ROWS})
    assert two.status_code == 422 and "exactly one of" in str(two.json())
    shape = client.post(
        "/v2/models/iris/infer",
        json={"inputs": [{"name": "sepal_length", "shape": [5], "datatype": "FP64", "data": [1.0]}]},
    )
    assert shape.status_code == 422 and "does not match" in shape.json()["error"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", b"[]"),
        ("/predict", b"[1, 2, 3]"),
        ("/predict", b'"text"'),
        ("/predict", b"null"),
        ("/predict", b'{"records": {"a": 1}}'),
        ("/predict", b'{"records": [], "more": 1}'),
        ("/predict", b'{"records": [null]}'),
        ("/predict", b'{"sepal_length": [1, 2]}'),
        ("/predict", b'{"sepal_length": {"x": 1}, "sepal_width": 1e400}'),
        ("/invocations", b"[]"),
        ("/invocations", b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}'),
        ("/invocations", b'{"dataframe_split": []}'),
        ("/invocations", b'{"inputs": {"sepal_length": [1], "sepal_width": [1, 2]}}'),
        ("/invocations", b'{"instances": "x"}'),
        ("/invocations", b'{"dataframe_records": [{}], "params": {"k": 1}}'),
        ("/v2/models/iris/infer", b"{}"),
        ("/v2/models/iris/infer", b'{"inputs": [1]}'),
        ("/v2/models/iris/infer", b'{"inputs": [{"name": "sepal_length", "data": [[1, 2]]}]}'),
        ("/v2/models/iris/infer", b'{"inputs": [{"name": "sepal_length", "data": "x"}]}'),
        ("/models/housing/predict", b'{"ms_subclass": 20.5}'),
    ],
)
def test_no_client_input_causes_a_500(client: TestClient, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_drift_endpoint_without_a_watch_says_why(client: TestClient) -> None:
    response = client.get("/models/iris/drift")
    assert response.status_code == 404 and "no drift report for 'iris' yet" in response.json()["detail"]
    response = client.get("/models/iris/drift?refresh=true")
    assert response.status_code == 404 and "needs a registry" in response.json()["detail"]
    assert client.get("/models/wine/drift").status_code == 404


# Routes anyone may call (the README's endpoint table says "open"); every other route names its scope
# in its summary ("(scope: predict)") and must refuse a request without a token before reading its body.
OPEN_ROUTES = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/ping"),
    ("GET", "/version"),
    ("GET", "/models"),
    ("GET", "/models/{name}"),
    ("GET", "/models/{name}/drift"),
    ("GET", "/models/{name}/quality/history"),
    ("GET", "/metrics"),
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/ready"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
}
PATH_VALUES = {"name": "iris", "version": "1", "job_id": "0" * 32}
ODD_BODIES = [
    b"",
    b"null",
    b"true",
    b"0",
    b'"text"',
    b"[]",
    b"[null]",
    b"{",
    b"{}",
    b'{"a": NaN}',
    b'{"a": "\\ud800"}',
    b"\xff\xfe",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": 1e400, "b": ' + b"9" * 400 + b"}",
]


def documented_routes(client: TestClient) -> list[tuple[str, str, str]]:
    """(method, path template, summary) of every route in the app's OpenAPI document."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return [
        (method.upper(), path, operation.get("summary", ""))
        for path, operations in paths.items()
        for method, operation in operations.items()
    ]


def test_every_route_that_takes_a_body_answers_odd_bodies_with_a_4xx(client_for: AppFactory) -> None:
    """The README's claim, for every route there is: the routes come from the app itself, so a route
    added later is covered without editing this test."""
    client = client_for(redis_url="redis://127.0.0.1:9/0")
    routes = [(m, p) for m, p, _ in documented_routes(client) if m in ("POST", "PUT", "PATCH")]
    assert {"/predict", "/invocations", "/v2/models/{name}/infer", "/feedback", "/batch/jobs"} <= {
        p for _, p in routes
    }
    failures = []
    for method, template in routes:
        path = template.format(**PATH_VALUES)
        for body in ODD_BODIES:
            for content_type in ("application/json", "text/csv"):
                answer = client.request(method, path, content=body, headers={"content-type": content_type})
                if answer.status_code >= 500 or (
                    answer.status_code >= 400
                    and not (answer.json().get("detail") or answer.json().get("error"))
                ):
                    failures.append(f"{method} {path} {content_type} {body[:30]!r}: {answer.status_code}")
    assert not failures, "\n".join(failures)


def test_every_protected_route_checks_the_token_before_the_body(client_for: AppFactory) -> None:
    secured = client_for(auth_enabled=True, jwt_secret=SECRET, redis_url="redis://127.0.0.1:9/0")
    routes = documented_routes(secured)
    protected = [(m, p) for m, p, summary in routes if "(scope: " in summary]
    unclassified = {(m, p) for m, p, summary in routes if "(scope: " not in summary} - OPEN_ROUTES
    assert not unclassified, (
        f"say in the summary which scope these need, or list them as open: {unclassified}"
    )
    assert ("POST", "/batch/jobs") in protected and ("POST", "/admin/reload") in protected
    for method, template in protected:
        path = template.format(**PATH_VALUES)
        for body in (b"", b"{", b"null", b'{"unknown": 1}', b"[" * 5_000):
            answer = secured.request(method, path, content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 401, (method, path, body[:20], answer.text)
            assert answer.json()["detail" if not path.startswith("/v2") else "error"].startswith(
                "missing bearer"
            )
            assert answer.headers["www-authenticate"] == "Bearer"
        wrong_type = secured.request(method, path, content=b"a=1", headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 401, (method, path, wrong_type.text)
    for method, template in OPEN_ROUTES:
        assert secured.request(method, template.format(**PATH_VALUES)).status_code != 401, template


def test_a_batch_job_body_is_validated_after_the_token(client_for: AppFactory, tmp_path: Path) -> None:
    secured = client_for(
        auth_enabled=True, jwt_secret=SECRET, batch_root=str(tmp_path), redis_url="redis://127.0.0.1:9/0"
    )
    now = int(time.time())
    headers = {
        "authorization": "Bearer "
        + jwt.encode({"sub": "b", "scope": "batch", "aud": "shipyard", "exp": now + 600}, SECRET)
    }
    assert secured.post("/batch/jobs", json={"model": "iris"}).status_code == 401
    missing = secured.post("/batch/jobs", json={"model": "iris"}, headers=headers)
    assert missing.status_code == 422
    assert {tuple(e["loc"]) for e in missing.json()["detail"]} == {("body", "input"), ("body", "output")}
    assert missing.json()["detail"][0]["msg"] == "Field required"
    extra = secured.post(
        "/batch/jobs", json={"model": "iris", "input": "a", "output": "b.csv", "x": 1}, headers=headers
    )
    assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "x"]
    malformed = secured.post(
        "/batch/jobs", content=b"{", headers={**headers, "content-type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["detail"].startswith("malformed JSON")
    form = secured.post("/batch/jobs", content=b"a=1", headers={**headers, "content-type": "text/plain"})
    assert form.status_code == 415
    document = secured.get("/openapi.json").json()
    body = document["paths"]["/batch/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert schema["required"] == ["model", "input", "output"]


def test_mlflow_ping_and_version(client_for: AppFactory) -> None:
    """As `mlflow models serve` answers them: /ping 200 with a bare newline once the models are loaded;
    /version the server's version as text. Both open, like /health."""
    secured = client_for(auth_enabled=True, jwt_secret=SECRET)
    ping = secured.get("/ping")
    assert ping.status_code == 200 and ping.text == "\n"
    version = secured.get("/version")
    assert version.status_code == 200 and version.text == shipyard.__version__
    assert version.headers["content-type"].startswith("text/plain")
