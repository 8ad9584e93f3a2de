"""The service answers the same rows identically over its own protocol, MLflow's and OIP V2."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from shipyard.registry.models import LoadedModel
from tests.unit.conftest import IRIS_ROWS

COLUMNS = list(IRIS_ROWS[0])


def expected(loaded: tuple[LoadedModel, Any]) -> tuple[list[str], np.ndarray]:
    frame = pd.DataFrame(IRIS_ROWS)
    return list(loaded[0].model.predict(frame)), loaded[0].model.predict_proba(frame)


def test_predict_one_record_and_many(client: TestClient, iris_loaded: tuple[LoadedModel, Any]) -> None:
    labels, proba = expected(iris_loaded)
    one = client.post("/predict", json=IRIS_ROWS[0])
    assert one.status_code == 200
    body = one.json()
    assert body["predictions"] == labels[:1]
    assert body["model"] == "iris" and body["version"] == "1" and body["alias"] == "champion"
    assert body["request_id"] == one.headers["x-request-id"]
    assert body["probabilities"][0] == dict(
        zip(["setosa", "versicolor", "virginica"], proba[0].tolist(), strict=True)
    )

    many = client.post("/models/iris/predict", json={"records": IRIS_ROWS})
    assert many.status_code == 200
    assert many.json()["predictions"] == labels


def test_regression_model_by_name(client: TestClient, housing_loaded: tuple[LoadedModel, Any]) -> None:
    loaded, split = housing_loaded
    rows = split.X_test.head(3)
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in rows.to_dict("records")]
    response = client.post("/models/housing/predict", json={"records": records})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == loaded.model.predict(rows).tolist()
    assert "probabilities" not in response.json()


def test_mlflow_protocol_in_all_its_formats(client: TestClient, iris_loaded: tuple[LoadedModel, Any]) -> None:
    labels, _ = expected(iris_loaded)
    bodies = [
        {"dataframe_split": {"columns": COLUMNS, "data": [[r[c] for c in COLUMNS] for r in IRIS_ROWS]}},
        {"dataframe_records": IRIS_ROWS},
        {"instances": IRIS_ROWS},
        {"inputs": {c: [r[c] for r in IRIS_ROWS] for c in COLUMNS}},
        {"inputs": IRIS_ROWS},
    ]
    for body in bodies:
        response = client.post("/invocations", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == {"predictions": labels}
    csv = pd.DataFrame(IRIS_ROWS).to_csv(index=False)
    response = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200 and response.json() == {"predictions": labels}


def test_open_inference_protocol_v2(client: TestClient, iris_loaded: tuple[LoadedModel, Any]) -> None:
    labels, proba = expected(iris_loaded)
    inputs = [
        {"name": c, "shape": [3], "datatype": "FP64", "data": [r[c] for r in IRIS_ROWS]} for c in COLUMNS
    ]
    response = client.post("/v2/models/iris/infer", json={"id": "req-1", "inputs": inputs})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "iris" and body["model_version"] == "1" and body["id"] == "req-1"
    predict, probabilities = body["outputs"]
    assert predict == {"name": "predict", "datatype": "BYTES", "shape": [3], "data": labels}
    assert probabilities["shape"] == [3, 3]
    assert np.allclose(np.array(probabilities["data"]).reshape(3, 3), proba)
    # [N, 1] tensors are accepted too
    column = [
        {"name": c, "shape": [3, 1], "datatype": "FP64", "data": [[r[c]] for r in IRIS_ROWS]} for c in COLUMNS
    ]
    assert (
        client.post("/v2/models/iris/infer", json={"inputs": column}).json()["outputs"][0]["data"] == labels
    )

    assert client.get("/v2").json()["name"] == "shipyard"
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    meta = client.get("/v2/models/iris").json()
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == COLUMNS and meta["inputs"][0]["datatype"] == "FP64"
    assert client.get("/v2/models/housing").json()["outputs"][0]["datatype"] == "FP64"


def test_health_ready_models_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True, "models": {"iris": True, "housing": True}}
    models = client.get("/models").json()["models"]
    assert [m["name"] for m in models] == ["iris", "housing"]
    detail = client.get("/models/iris").json()
    assert detail["version"] == "1" and detail["alias"] == "champion" and detail["run_id"] == "run-1"
    assert detail["lineage"]["git_commit"] == "abc123"
    assert detail["inputs"][0] == {"name": "sepal_length", "type": "double", "required": True}
    assert detail["registry"]["reachable"] is True
    assert detail["engine"]["name"] == "onnx"
    assert client.get("/models/housing").json()["engine"]["name"] == "compiled"

    client.post("/predict", json={"records": IRIS_ROWS})
    text = client.get("/metrics").text
    assert 'shipyard_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'shipyard_predictions_total{label="setosa",model="iris",variant="champion",version="1"}' in text
    assert 'shipyard_model_info{alias="champion",model="iris",run_id="run-1",version="1"} 1.0' in text
    assert "shipyard_http_request_duration_seconds_bucket" in text
    assert "shipyard_model_load_failures_total" in text or "shipyard_model_load_failures" in text


def test_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/static-docs/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    assert client.get("/static-docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static-docs/swagger-ui.css").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/invocations", "/v2/models/{name}/infer", "/admin/reload"} <= set(spec["paths"])


def test_client_request_id_is_echoed(client: TestClient) -> None:
    response = client.post("/predict", json=IRIS_ROWS[0], headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123" and response.json()["request_id"] == "abc-123"
    odd = client.get("/health", headers={"x-request-id": "not valid!" * 10})
    assert odd.headers["x-request-id"] != "not valid!" * 10


def test_fast_lane_and_fastapi_routes_answer_alike(
    iris_loaded: tuple[LoadedModel, Any], housing_loaded: tuple[LoadedModel, Any]
) -> None:
    """The prediction routes are answered by the fast lane; with it removed, FastAPI's routes run the
    same handlers and must give the same status and body for good and bad requests alike."""
    from shipyard.config import Settings
    from shipyard.serving import create_app
    from shipyard.serving.fastlane import FastLane
    from shipyard.serving.holder import ModelHolder
    from tests.unit.conftest import served

    def app(without_lane: bool) -> Any:
        holder = ModelHolder.of(served(iris_loaded[0]), served(housing_loaded[0]))
        built = create_app(
            Settings(auth_enabled=False, models=["iris", "housing"], reload_interval_seconds=0), holder
        )
        if without_lane:
            built.user_middleware = [m for m in built.user_middleware if m.cls is not FastLane]
        return built

    cases: list[tuple[str, bytes, str]] = [
        (
            "/predict",
            b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
            "application/json",
        ),
        ("/models/iris/predict", b'{"records": [{"sepal_length": 5.1}]}', "application/json"),
        (
            "/invocations",
            b'{"dataframe_records": [{"sepal_length": 5.1, "sepal_width": 3.5, '
            b'"petal_length": 1.4, "petal_width": 0.2}]}',
            "application/json",
        ),
        ("/invocations", b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n", "text/csv"),
        ("/invocations", b"{broken", "application/json"),
        ("/predict", b"{}", "text/plain"),
        ("/models/wine/predict", b"{}", "application/json"),
        (
            "/v2/models/iris/infer",
            b'{"inputs": [{"name": "sepal_length", "data": [1.0]}]}',
            "application/json",
        ),
    ]
    with TestClient(app(False)) as lane, TestClient(app(True)) as routes:
        for path, body, kind in cases:
            a = lane.post(path, content=body, headers={"content-type": kind, "x-request-id": "same"})
            b = routes.post(path, content=body, headers={"content-type": kind, "x-request-id": "same"})
            assert (a.status_code, a.json()) == (b.status_code, b.json()), path
            assert a.headers["x-request-id"] == b.headers["x-request-id"] == "same"
