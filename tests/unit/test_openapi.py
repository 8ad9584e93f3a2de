"""/openapi.json documents every route with real, named schemas made from the pydantic models in
``serving.schemas``, and what the routes really send and answer conforms to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from shipyard.registry.models import LoadedModel
from shipyard.serving import schemas
from tests.unit.conftest import IRIS_ROWS, AppFactory

REF = "#/components/schemas/"
# MLflow's /ping answers a bare newline with a JSON content type (as `mlflow models serve` does): no JSON
# schema describes that body, and its clients read only the status
NOT_JSON = {("GET", "/ping")}


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def without_nulls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [without_nulls(v) for v in node]
    return node


def conforms(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    """What is wrong with ``instance`` against a schema of the document (its refs resolved in it)."""
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def answer_schema(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path][method.lower()]["responses"][str(status)]["content"][
        "application/json"
    ]["schema"]
    return schema


def body_schema(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path][method.lower()]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    return schema


@pytest.fixture
def client(client_for: AppFactory) -> TestClient:
    return client_for(prediction_log=False)


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_every_body_is_a_named_component(doc: dict[str, Any]) -> None:
    with_body = [(m, p, op) for m, p, op in operations(doc) if "requestBody" in op]
    assert {p for _, p, _ in with_body} >= {
        "/predict",
        "/models/{name}/predict",
        "/invocations",
        "/v2/models/{name}/infer",
        "/feedback",
        "/batch/jobs",
    }
    components = doc["components"]["schemas"]
    for method, path, operation in with_body:
        ref = operation["requestBody"]["content"]["application/json"]["schema"].get("$ref", "")
        assert ref.startswith(REF) and ref.removeprefix(REF) in components, (method, path, ref)
    dangling = {r for r in refs(doc) if not r.startswith(REF) or r.removeprefix(REF) not in components}
    assert not dangling
    assert not any(key.startswith("x-shipyard") for _, _, op in operations(doc) for key in op)


def test_body_components_are_the_models_own_schemas(doc: dict[str, Any]) -> None:
    """Generated from the pydantic models, not written by hand beside them."""
    components = doc["components"]["schemas"]
    for model in (
        schemas.PredictRequest,
        schemas.InvocationsRequest,
        schemas.FeedbackRequest,
        schemas.BatchJobRequest,
    ):
        # as FastAPI writes every schema of the document: without null values (pydantic's default=None)
        generated = without_nulls(model.model_json_schema(ref_template=schemas.COMPONENTS))
        nested = generated.pop("$defs", {})
        assert components[model.__name__] == generated
        assert all(components[name] == schema for name, schema in nested.items())


def test_every_answer_has_a_schema(doc: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in operations(doc):
        success = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert success, (method, path)
        for status, response in success.items():
            content = response.get("content", {})
            if (method, path) not in NOT_JSON and not any("schema" in c for c in content.values()):
                missing.append(f"{method} {path} {status}")
        for status, response in operation["responses"].items():
            content = response.get("content", {})
            if status.startswith(("4", "5")) and content and not any("schema" in c for c in content.values()):
                missing.append(f"{method} {path} {status}")
    assert not missing


def housing_records(housing_loaded: tuple[LoadedModel, Any]) -> list[dict[str, Any]]:
    rows = housing_loaded[1].X_test.head(3)
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in rows.to_dict("records")]


def test_the_predict_answer_is_what_the_route_returns(
    client: TestClient, doc: dict[str, Any], housing_loaded: tuple[LoadedModel, Any]
) -> None:
    schema = answer_schema(doc, "POST", "/predict", 200)
    assert schema == {"$ref": REF + "PredictResponse"}
    component = doc["components"]["schemas"]["PredictResponse"]
    classifier = client.post("/predict", json={"records": IRIS_ROWS})
    regressor = client.post("/models/housing/predict", json={"records": housing_records(housing_loaded)})
    one = client.post("/predict", json=IRIS_ROWS[0])
    assert classifier.status_code == regressor.status_code == one.status_code == 200, regressor.text
    # the fields documented are exactly the fields a classifier's answer has; a regressor's lacks only
    # the probabilities, which the schema does not require
    assert set(component["properties"]) == set(classifier.json())
    assert set(component["required"]) == set(regressor.json()) == set(classifier.json()) - {"probabilities"}
    for answer in (classifier, regressor, one):
        assert conforms(doc, schema, answer.json()) == []
    # and the schema can fail: a wrong answer does not conform
    assert conforms(doc, schema, {**one.json(), "predictions": "setosa"})
    assert conforms(doc, schema, {k: v for k, v in one.json().items() if k != "version"})


def test_documented_bodies_accept_what_the_routes_accept(client: TestClient, doc: dict[str, Any]) -> None:
    """Bodies the service answers 200 conform to their documented schema, so the schema is no stricter
    than the parser; the routes' own examples conform too."""
    columns = list(IRIS_ROWS[0])
    sent: list[tuple[str, str, Any]] = [
        ("/predict", "/predict", IRIS_ROWS[0]),
        ("/predict", "/predict", {"records": IRIS_ROWS}),
        ("/models/{name}/predict", "/models/iris/predict", IRIS_ROWS),
        (
            "/invocations",
            "/invocations",
            {"dataframe_split": {"columns": columns, "data": [[5.1, 3.5, 1.4, 0.2]]}},
        ),
        (
            "/invocations",
            "/invocations",
            {"dataframe_split": {"index": [0], "columns": columns, "data": [[5.1, 3.5, 1.4, 0.2]]}},
        ),
        ("/invocations", "/invocations", {"dataframe_records": IRIS_ROWS}),
        ("/invocations", "/invocations", {"instances": IRIS_ROWS, "params": {}}),
        ("/invocations", "/invocations", {"inputs": {c: [IRIS_ROWS[0][c]] for c in columns}}),
        (
            "/v2/models/{name}/infer",
            "/v2/models/iris/infer",
            {
                "id": "r1",
                "inputs": [
                    {"name": c, "shape": [1], "datatype": "FP64", "data": [IRIS_ROWS[0][c]]} for c in columns
                ],
                "outputs": [{"name": "predict"}],
            },
        ),
    ]
    for template, path, body in sent:
        answer = client.post(path, json=body)
        assert answer.status_code == 200, (path, body, answer.text)
        assert conforms(doc, body_schema(doc, "POST", template), body) == [], (path, body)
        assert conforms(doc, answer_schema(doc, "POST", template, 200), answer.json()) == [], (
            path,
            answer.text,
        )
    for _, path, operation in operations(doc):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        for name, example in content.get("examples", {}).items():
            assert conforms(doc, content["schema"], example["value"]) == [], (path, name)
    # and the bodies the parsers refuse for their shape are outside the schema too
    for template, body in [
        ("/invocations", {"dataframe_records": IRIS_ROWS, "instances": IRIS_ROWS}),
        ("/invocations", {"frames": IRIS_ROWS}),
        ("/predict", {"records": {"a": 1}}),
        ("/feedback", {"label": "setosa"}),
        ("/feedback", {"request_id": "a1"}),
        ("/feedback", {"feedback": []}),
    ]:
        assert conforms(doc, body_schema(doc, "POST", template), body), (template, body)


def test_other_answers_conform_to_their_schemas(client: TestClient, doc: dict[str, Any]) -> None:
    """The operations, feedback, V2 and error answers, as really sent, against what /openapi.json says."""
    predicted = client.post("/predict", json={"records": IRIS_ROWS[:2]})
    calls: list[tuple[str, str, str, Any, int]] = [
        ("GET", "/health", "/health", None, 200),
        ("GET", "/ready", "/ready", None, 200),
        ("GET", "/models", "/models", None, 200),
        ("GET", "/models/{name}", "/models/iris", None, 200),
        ("GET", "/models/{name}", "/models/housing", None, 200),
        ("GET", "/v2", "/v2", None, 200),
        ("GET", "/v2/models/{name}", "/v2/models/iris", None, 200),
        (
            "POST",
            "/feedback",
            "/feedback",
            {"request_id": predicted.headers["x-request-id"], "labels": ["setosa", "virginica"]},
            200,
        ),
        ("POST", "/feedback", "/feedback", {"request_id": "unknown", "label": 1}, 200),
        # errors: the problem shapes
        ("GET", "/models/{name}", "/models/nope", None, 404),
        ("POST", "/predict", "/predict", {"sepal_length": "x"}, 422),
        ("POST", "/predict", "/predict", b"{", 400),
        ("POST", "/invocations", "/invocations", {"inputs": IRIS_ROWS, "instances": IRIS_ROWS}, 422),
        ("POST", "/feedback", "/feedback", None, 400),
        ("POST", "/v2/models/{name}/infer", "/v2/models/iris/infer", {"inputs": 3}, 422),
        ("POST", "/v2/models/{name}/infer", "/v2/models/nope/infer", {"inputs": []}, 404),
        ("POST", "/predict", "/predict", {"records": [IRIS_ROWS[0]] * 10_001}, 413),
    ]
    failures = []
    for method, template, path, body, status in calls:
        if isinstance(body, bytes):
            answer = client.request(method, path, content=body, headers={"content-type": "application/json"})
        elif body is None and method == "POST":
            answer = client.request(method, path, content=b"", headers={"content-type": "application/json"})
        else:
            answer = client.request(method, path, json=body)
        assert answer.status_code == status, (path, answer.text)
        errors = conforms(doc, answer_schema(doc, method, template, status), answer.json())
        if errors:
            failures.append(f"{method} {path} {status}: {errors[:3]}")
    assert not failures
    # a media type the route does not read: 415 in the problem shape
    form = client.post("/predict", content=b"a=1", headers={"content-type": "text/plain"})
    assert form.status_code == 415
    assert conforms(doc, answer_schema(doc, "POST", "/predict", 415), form.json()) == []
