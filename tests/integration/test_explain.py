"""Explanations (issue 16): POST /models/{name}/explain and `shipyard explain` on the trained examples.

For every row: the answer is the one /predict gives, base_value + the attributions equals the answer
explained (the predicted class's probability for iris, the value for housing) within 1e-6 and equals
scikit-learn's own predict_proba / predict, there is one attribution per raw input feature (housing's
one-hot columns summed back), and the top list is the largest in absolute value. Limits and errors are
clear; a model without trees is a 409 that says so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shipyard.cli.main import app as cli
from shipyard.config import Settings
from shipyard.errors import DataError
from shipyard.pipeline import run_training
from shipyard.registry import ModelRegistry
from shipyard.serving.app import create_app
from tests.conftest import REPO, ConfigFactory, train_small_examples

pytestmark = pytest.mark.integration

IRIS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 5.0, "petal_width": 1.6},
    {"sepal_length": 7.2, "sepal_width": 3.1, "petal_length": 6.0, "petal_width": 2.2},
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("explain")
    settings = Settings(
        home=home,
        tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        models=["iris", "housing"],
        auth_enabled=False,
        reload_interval_seconds=0,
        drift_interval_seconds=0,
    )
    train_small_examples(settings, "explain")
    return settings


def housing_records(rows: int) -> list[dict[str, object]]:
    frame = pd.read_csv(REPO / "data/raw/housing.csv").sample(rows, random_state=5)
    return [
        {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in r.items()
            if k not in ("order", "pid", "saleprice")
        }
        for r in frame.to_dict("records")
    ]


def test_iris_explanations_add_up_to_the_answer(served: Settings) -> None:
    with TestClient(create_app(served)) as client:
        predicted = client.post("/models/iris/predict", json={"records": IRIS}).json()
        response = client.post("/models/iris/explain?top_k=2", json={"records": IRIS})
        assert response.status_code == 200, response.text
        found = response.json()
    assert found["model"] == "iris" and found["version"] == predicted["version"]
    model = ModelRegistry(served).load("iris", found["version"]).model
    proba = model.predict_proba(pd.DataFrame(IRIS))
    classes = [str(c) for c in model.classes_]
    for i, row in enumerate(found["explanations"]):
        label = predicted["predictions"][i]
        assert row["prediction"] == label and row["explained"] == f"probability of class {label}"
        assert row["output"] == pytest.approx(predicted["probabilities"][i][label], abs=1e-5)
        assert set(row["attributions"]) == set(IRIS[0])
        total = row["base_value"] + sum(row["attributions"].values())
        assert abs(total - row["output"]) < 1e-6 and row["additivity_error"] < 1e-6
        assert total == pytest.approx(proba[i][classes.index(label)], abs=1e-9)  # scikit-learn's own
        assert len(row["top"]) == 2
        magnitudes = sorted((abs(v) for v in row["attributions"].values()), reverse=True)
        assert [abs(t["attribution"]) for t in row["top"]] == magnitudes[:2]
    # the petals separate the species: they lead for the setosa row
    assert {t["feature"] for t in found["explanations"][0]["top"]} <= {"petal_length", "petal_width"}


def test_housing_explanations_sum_one_hot_columns_back(served: Settings) -> None:
    records = housing_records(4)
    with TestClient(create_app(served)) as client:
        predicted = client.post("/models/housing/predict", json={"records": records}).json()
        response = client.post("/models/housing/explain", json={"records": records})
        assert response.status_code == 200, response.text
        found = response.json()
    model = ModelRegistry(served).load("housing", found["version"])
    names = [c.name for c in model.inputs]
    values = model.model.predict(pd.DataFrame(records, columns=names).fillna(np.nan))
    for i, row in enumerate(found["explanations"]):
        assert list(row["attributions"]) == names  # one per raw feature, none per one-hot column
        assert row["explained"] == "predicted value"
        assert row["prediction"] == pytest.approx(predicted["predictions"][i])
        total = row["base_value"] + sum(row["attributions"].values())
        assert total == pytest.approx(row["output"], rel=1e-9, abs=1e-6)
        assert total == pytest.approx(values[i], rel=1e-9)
        assert len(row["top"]) == 5
    # a categorical feature's attribution exists although the model saw only its one-hot columns
    assert any(abs(r["attributions"]["neighborhood"]) > 0 for r in found["explanations"])


def test_explain_limits_and_errors(served: Settings) -> None:
    with TestClient(create_app(served), raise_server_exceptions=False) as client:
        many = client.post("/models/iris/explain", json={"records": IRIS * 34})
        assert many.status_code == 422 and "at most 100 records" in many.text
        bad = client.post("/models/iris/explain", json={**IRIS[0], "petal_width": "wide"})
        assert bad.status_code == 422 and "petal_width" in bad.text
        assert client.post("/models/wine/explain", json=IRIS[0]).status_code == 404
        for query in ("top_k=0", "top_k=abc", "top_k=101"):
            refused = client.post(f"/models/iris/explain?{query}", json=IRIS[0])
            assert refused.status_code == 422 and "top_k" in refused.text, (query, refused.text)


def test_a_model_without_trees_is_refused_by_name(settings: Settings, iris_config: ConfigFactory) -> None:
    config = iris_config()
    linear = config.model_copy(
        update={"model": config.model.model_copy(update={"estimator": "logistic_regression", "params": {}})}
    )
    run_training(linear, settings)
    serving = settings.model_copy(update={"models": ["iris"], "auth_enabled": False})
    with TestClient(create_app(serving), raise_server_exceptions=False) as client:
        refused = client.post("/models/iris/explain", json=IRIS[0])
    assert refused.status_code == 409 and "LogisticRegression" in refused.text


def test_the_cli_writes_every_row(served: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(served.home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.tracking_uri)
    source = tmp_path / "rows.csv"
    pd.DataFrame(housing_records(30)).to_csv(source, index=False)
    shown = CliRunner().invoke(cli, ["explain", "housing", "-i", str(source), "--top-k", "3"])
    assert shown.exit_code == 0, shown.output
    assert "top 3 features per row" in shown.output and "10 more rows" in shown.output
    written = CliRunner().invoke(
        cli, ["explain", "housing", "-i", str(source), "-o", str(tmp_path / "x.json")]
    )
    assert written.exit_code == 0, written.output
    rows = json.loads((tmp_path / "x.json").read_text())["explanations"]
    assert len(rows) == 30 and max(r["additivity_error"] for r in rows) < 1e-6
    assert np.isfinite([r["base_value"] for r in rows]).all()
    missing = CliRunner().invoke(cli, ["explain", "housing", "-i", str(tmp_path / "none.csv")])
    assert isinstance(missing.exception, DataError) and "input not found" in str(missing.exception)
