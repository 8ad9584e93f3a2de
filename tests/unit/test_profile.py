"""The reference profile's numbers are pandas' numbers on the training frame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shipyard.features import build_reference_profile


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(10, 3, 200)
    x[[3, 17]] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 50, 200),
            "c": rng.choice(["a", "b", "c"], 200, p=[0.5, 0.3, 0.2]).astype(object),
        }
    ).assign(c=lambda d: d["c"].where(d.index != 5, None))


def test_numeric_and_categorical_statistics_match_pandas(frame: pd.DataFrame) -> None:
    y = pd.Series(np.where(frame["n"] > 25, "hi", "lo"), name="label")
    profile = build_reference_profile(
        frame, y, y.to_numpy(), {"x": "numeric", "n": "numeric", "c": "categorical"}, "classification", bins=8
    )
    x = profile["features"]["x"]
    assert x["count"] == 200 and x["nulls"] == 2
    assert x["mean"] == pytest.approx(frame["x"].mean())
    assert x["std"] == pytest.approx(frame["x"].std())
    assert x["min"] == pytest.approx(frame["x"].min()) and x["max"] == pytest.approx(frame["x"].max())
    for q, value in x["quantiles"].items():
        assert value == pytest.approx(frame["x"].quantile(float(q)))
    counts, edges = np.histogram(frame["x"].dropna(), bins=8)
    assert x["histogram"]["counts"] == counts.tolist()
    assert x["histogram"]["edges"] == pytest.approx(edges.tolist())
    assert sum(x["histogram"]["counts"]) == 198

    c = profile["features"]["c"]
    assert c["nulls"] == 1 and c["unique"] == 3
    expected = frame["c"].value_counts(normalize=True)
    for category, share in expected.items():
        assert c["frequencies"][category] == pytest.approx(share)
    assert c["counts"] == frame["c"].value_counts().to_dict()

    assert profile["target"]["name"] == "label"
    assert profile["target"]["counts"] == y.value_counts().to_dict()
    assert profile["prediction"]["kind"] == "categorical"
    assert profile["rows"] == 200
    json.dumps(profile)  # it is saved as a JSON artifact


def test_regression_target_and_predictions_are_numeric(frame: pd.DataFrame) -> None:
    y = pd.Series(frame["n"] * 2.5, name="price")
    profile = build_reference_profile(frame[["x"]], y, y.to_numpy() + 1, {"x": "numeric"}, "regression")
    assert profile["target"]["mean"] == pytest.approx(y.mean())
    assert profile["prediction"]["mean"] == pytest.approx(y.mean() + 1)
    assert len(profile["target"]["histogram"]["counts"]) == 10


def test_all_missing_column_does_not_crash() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan]})
    profile = build_reference_profile(
        frame, pd.Series([1.0, 2.0]), [1.0, 2.0], {"x": "numeric"}, "regression"
    )
    assert profile["features"]["x"]["nulls"] == 2 and profile["features"]["x"]["mean"] is None
