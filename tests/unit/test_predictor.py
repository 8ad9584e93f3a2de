"""The ReadyModel checks input against the signature and gives one clear error per bad column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.data import DataLoader
from shipyard.errors import PredictionInputError
from shipyard.inference import ReadyModel
from shipyard.registry.models import InputColumn, LoadedModel
from shipyard.training import ModelTrainer
from tests.conftest import ConfigFactory


@pytest.fixture
def predictor(iris_config: ConfigFactory) -> ReadyModel:
    cfg = iris_config()
    frame = DataLoader(cfg.dataset.source).load().frame
    model = ModelTrainer(cfg).fit(frame[cfg.feature_columns], frame["species"])
    inputs = [InputColumn(c, "double") for c in cfg.feature_columns]
    return ReadyModel(LoadedModel(model, "iris", "1", None, inputs, {}))


def rows(**changes: object) -> pd.DataFrame:
    base = {
        "sepal_length": [5.1, 6.5],
        "sepal_width": [3.5, 3.0],
        "petal_length": [1.4, 5.5],
        "petal_width": [0.2, 2.0],
    }
    return pd.DataFrame({**base, **changes})


def test_predicts_labels_and_probabilities(predictor: ReadyModel) -> None:
    out = predictor.predict_frame(rows(extra=["a", "b"]))
    assert out["prediction"].tolist() == ["setosa", "virginica"]
    probabilities = out[["proba_setosa", "proba_versicolor", "proba_virginica"]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_numbers_sent_as_text_are_coerced(predictor: ReadyModel) -> None:
    out = predictor.predict_frame(rows(sepal_length=["5.1", "6.5"]))
    assert out["prediction"].tolist() == ["setosa", "virginica"]


def test_missing_column_is_named(predictor: ReadyModel) -> None:
    with pytest.raises(
        PredictionInputError, match=r"missing feature column\(s\): petal_width \(the model needs"
    ):
        predictor.predict_frame(rows().drop(columns=["petal_width"]))


def test_bad_values_are_named_with_their_row(predictor: ReadyModel) -> None:
    with pytest.raises(PredictionInputError) as err:
        predictor.predict_frame(
            rows(sepal_width=[3.0, "wide"], petal_length=[np.nan, 1.0], petal_width=[np.inf, 1.0])
        )
    with pytest.raises(PredictionInputError, match="row 2: petal_width: expected a finite number"):
        predictor.predict_frame(rows(petal_width=[1.0, np.inf]))
    message = str(err.value)
    assert "row 2: sepal_width: expected a number" in message  # rows count from 1, as in a file
    assert "row 1: petal_length: missing value; this feature is required" in message


def test_missing_text_values_reach_the_model_as_missing() -> None:
    """None, pd.NA and NaN in a string column all mean 'missing', never the text 'nan' or 'None'."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = pd.DataFrame({"kind": ["a", "b", np.nan, "a", np.nan, "b"], "y": [1.0, 2.0, 9.0, 1.0, 9.0, 2.0]})
    encode = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    model = Pipeline(
        [("features", ColumnTransformer([("c", encode, ["kind"])])), ("model", LinearRegression())]
    )
    model.fit(train[["kind"]], train["y"])
    predictor = ReadyModel(
        LoadedModel(model, "m", "1", None, [InputColumn("kind", "string", required=False)], {})
    )
    rows_in = pd.DataFrame({"kind": pd.Series(["a", None, pd.NA, np.nan, 7], dtype=object)})
    prepared = predictor.check(rows_in).batch
    assert pd.isna(prepared["kind"]).tolist() == [False, True, True, True, False]
    assert prepared["kind"][4] == "7"
    out = predictor.predict_frame(rows_in)["prediction"].to_numpy()
    assert out[1:4] == pytest.approx([9.0, 9.0, 9.0])
    assert out[0] == pytest.approx(1.0)
