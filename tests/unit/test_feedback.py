"""Feedback by request id is stored, joined to the answers in the monitoring store, and graded as
rolling live quality per model version and variant."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shipyard.monitoring.quality import RecentAnswers, Served, quality_metrics
from shipyard.monitoring.store import MonitoringStore
from tests.unit.conftest import IRIS_ROWS, AppFactory


def test_feedback_gives_live_accuracy_and_metrics(client_for: AppFactory, tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    client = client_for(prediction_log=True, prediction_log_path=path)
    answer = client.post("/predict", json={"records": IRIS_ROWS}, headers={"x-request-id": "a1"}).json()
    assert answer["predictions"] == ["setosa", "virginica", "versicolor"]
    client.post("/predict", json=IRIS_ROWS[0], headers={"x-request-id": "a2"})
    result = client.post(
        "/feedback",
        json={
            "feedback": [
                {"request_id": "a1", "labels": ["setosa", "virginica", "virginica"]},  # one wrong
                {"request_id": "a2", "label": "setosa"},
                {"request_id": "gone", "label": "setosa"},
            ]
        },
    )
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["matched_rows"] == 4 and body["unmatched"] == ["gone"] and body["stored_rows"] == 5
    live = body["live_quality"]["iris v1 (champion)"]
    assert live["accuracy"] == pytest.approx(0.75) and live["n"] == 4
    metrics = client.get("/metrics").text
    assert (
        'shipyard_live_quality{metric="accuracy",model="iris",variant="champion",version="1"} 0.75' in metrics
    )
    assert 'shipyard_feedback_rows_total{model="iris"} 4.0' in metrics
    assert "shipyard_feedback_unmatched_total 1.0" in metrics
    client.__exit__(None, None, None)  # flushes the log
    stored = MonitoringStore.open(f"sqlite:///{path}").feedback()
    assert stored == {"a1": ["setosa", "virginica", "virginica"], "a2": ["setosa"], "gone": ["setosa"]}


def test_feedback_after_a_restart_is_stored_and_joined(client_for: AppFactory, tmp_path: Path) -> None:
    """The label of a request answered before a restart (or by another replica) is not lost: it is
    stored and joined to the answer in the store."""
    path = tmp_path / "log.db"
    before = client_for(prediction_log=True, prediction_log_path=path)
    before.post("/predict", json={"records": IRIS_ROWS[:2]}, headers={"x-request-id": "old-1"})
    before.__exit__(None, None, None)  # the process stops; its memory of old-1 is gone
    after = client_for(prediction_log=True, prediction_log_path=path)
    answer = after.post("/feedback", json={"request_id": "old-1", "labels": ["setosa", "setosa"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["unmatched"] == ["old-1"] and body["stored_rows"] == 2 and body["matched_rows"] == 0
    live = body["live_quality"]["iris v1 (champion)"]
    assert live["n"] == 2 and live["accuracy"] == pytest.approx(0.5)  # it predicted setosa, virginica
    after.__exit__(None, None, None)


def test_regression_feedback_gives_mae_and_rmse(client: TestClient, housing_loaded: tuple) -> None:
    _, split = housing_loaded
    import math

    first = split.X_test.head(2).to_dict("records")
    records = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in first
    ]
    predicted = client.post(
        "/models/housing/predict", json={"records": records}, headers={"x-request-id": "h1"}
    )
    values = predicted.json()["predictions"]
    truth = [values[0] + 1000, values[1] - 3000]
    live = client.post("/feedback", json={"request_id": "h1", "labels": truth}).json()["live_quality"]
    assert live["housing v1 (champion)"]["mae"] == pytest.approx(2000)
    assert live["housing v1 (champion)"]["rmse"] == pytest.approx(math.sqrt((1000**2 + 3000**2) / 2))


def test_bad_feedback_changes_nothing(client: TestClient) -> None:
    client.post("/predict", json={"records": IRIS_ROWS[:2]}, headers={"x-request-id": "b1"})
    wrong_count = client.post("/feedback", json={"request_id": "b1", "label": "setosa"})
    assert (
        wrong_count.status_code == 422
        and "1 label(s) for request b1, which predicted 2 row(s)" in wrong_count.text
    )
    mixed = client.post(
        "/feedback", json={"feedback": [{"request_id": "b1", "labels": ["x", "y"]}, {"label": "z"}]}
    )
    assert mixed.status_code == 422
    assert mixed.json()["detail"][0]["loc"] == ["feedback", 1, "request_id"]
    assert "shipyard_feedback_rows_total{" not in client.get("/metrics").text  # nothing was recorded
    assert (
        client.post("/feedback", content=b"{", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert client.post("/feedback", json={"feedback": []}).status_code == 422


def test_memory_is_bounded_and_the_quality_window_rolls(tmp_path: Path) -> None:
    recent = RecentAnswers(remember=2)
    for i in range(3):
        recent.remember_prediction(f"r{i}", Served("m", "1", "champion", True, ("a",)))
    assert recent.answered("r0") is None and recent.answered("r2") is not None  # oldest forgotten first

    from tests.unit.test_prediction_log import entry

    store = MonitoringStore.open(f"sqlite:///{tmp_path / 'q.db'}")
    from shipyard.monitoring.prediction_log import PredictionLog

    log = PredictionLog(store, interval=3600)
    log.start()
    for i in range(6):
        log.submit(entry(f"r{i}", rows=1))  # predicted "yes"
    log.close()
    store.write_feedback([(f"r{i}", ["no"]) for i in range(3)], ts=1.0)
    store.write_feedback([(f"r{i}", ["yes"]) for i in range(3, 6)], ts=2.0)
    pairs = store.labelled_pairs("m", window=3)[("1", "champion")]
    assert quality_metrics(pairs.predicted, pairs.truth, pairs.classifier) == {
        "accuracy": 1.0,
        "f1_macro": 1.0,
        "n": 3.0,
    }  # only the latest 3 labels
    store.write_feedback([("r5", ["no"])], ts=3.0)  # a corrected label: the latest one counts
    pairs = store.labelled_pairs("m", window=10)[("1", "champion")]
    assert len(pairs.predicted) == 6 and pairs.truth.count("no") == 4
    assert quality_metrics([], [], True) == {}
    store.close()


def test_remembered_predictions_are_invisible_to_the_garbage_collector() -> None:
    """Full GC passes scan every tracked object; 100,000 remembered requests must not be among them
    (measured: 50-200 ms pauses on every request under load when they were)."""
    import gc

    recent = RecentAnswers()
    for i in range(1000):
        primary = Served("m", "1", "champion", True, ("a", "b"))
        recent.remember_prediction(f"r{i}", primary, Served("m", "2", "shadow", True, ("a", "a")))
    for _ in range(3):  # a pass untracks a tuple once its items are untracked: one level per pass at worst
        gc.collect()
    assert not any(gc.is_tracked(v) for v in recent._recent.values())
    assert recent.answered("r5") == Served("m", "1", "champion", True, ("a", "b"))


def test_a_store_that_is_down_never_stops_predictions(client_for: AppFactory) -> None:
    """Predictions are the product: with the monitoring store unreachable the service still answers,
    counts what it cannot log, and refuses feedback with a 503 naming the store (password hidden)."""
    import secrets
    import time

    password = secrets.token_hex(8)
    client = client_for(
        prediction_log=True, monitoring_url=f"postgresql+psycopg://shipyard:{password}@127.0.0.1:9/shipyard"
    )
    answer = client.post("/predict", json=IRIS_ROWS[0], headers={"x-request-id": "d1"})
    assert answer.status_code == 200 and answer.json()["predictions"] == ["setosa"]
    refused = client.post("/feedback", json={"request_id": "d1", "label": "setosa"})
    assert refused.status_code == 503, refused.text
    assert (
        "monitoring store postgresql+psycopg://shipyard:***@127.0.0.1:9/shipyard unavailable" in refused.text
    )
    assert password not in refused.text
    deadline = time.monotonic() + 30  # the writer retries, then counts the request as dropped
    while time.monotonic() < deadline:
        if "shipyard_prediction_log_dropped_total 1.0" in client.get("/metrics").text:
            break
        time.sleep(0.2)
    assert "shipyard_prediction_log_dropped_total 1.0" in client.get("/metrics").text
