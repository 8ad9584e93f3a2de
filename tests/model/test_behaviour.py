"""Behavioural tests (Made-With-ML's kinds) on registered models as the service serves them: minimum
functionality, invariance, directional expectations, and robustness to inputs the training data never
showed. Run against a store's registered versions with ``pytest tests/model --model-store URI``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, r2_score

from .conftest import ServedModel

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TYPICAL_IRIS = {
    "setosa": (5.1, 3.5, 1.4, 0.2),
    "versicolor": (5.9, 2.8, 4.3, 1.3),
    "virginica": (6.5, 3.0, 5.5, 2.0),
}


def iris_rows(*rows: tuple[float, float, float, float]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=IRIS_COLUMNS)


def proba_of(served: ServedModel, rows: pd.DataFrame, label: str) -> np.ndarray:
    return served.proba(rows, label)


def median_house(housing: ServedModel) -> pd.DataFrame:
    """A test-split house of average quality (overall_qual 5) whose price is nearest the median."""
    X, y = housing.split.X_test, housing.split.y_test
    average = X[X["overall_qual"] == 5]
    assert len(average) > 0
    nearest = (y.loc[average.index] - y.median()).abs().idxmin()
    return X.loc[[nearest]]


def assert_finite_predictions(predictions: np.ndarray, rows: int) -> None:
    predictions = np.asarray(predictions, dtype=float)
    assert predictions.shape == (rows,)
    assert np.isfinite(predictions).all()
    assert (predictions > 0).all()


# --- minimum functionality ---------------------------------------------------------------------------


@pytest.mark.parametrize("species", sorted(TYPICAL_IRIS))
def test_iris_typical_flower_is_its_species(iris: ServedModel, species: str) -> None:
    predicted = iris.predict(iris_rows(TYPICAL_IRIS[species]))

    assert list(predicted) == [species]


def test_iris_is_served_by_the_fast_path(iris: ServedModel) -> None:
    """The behaviour below is ONNX Runtime's, as the service answers, not only scikit-learn's."""
    assert iris.engine == "onnx"


def test_housing_is_served_by_the_compiled_path_with_scikit_learns_answers(housing: ServedModel) -> None:
    """The compiled numpy path gives exactly scikit-learn's prices on the whole test split."""
    assert housing.engine == "compiled"
    rows = housing.split.X_test
    assert np.array_equal(housing.predict(rows), housing.ready.loaded.model.predict(rows))


def test_iris_test_accuracy_is_at_least_0_9(iris: ServedModel) -> None:
    split = iris.split
    assert accuracy_score(split.y_test, iris.predict(split.X_test)) >= 0.9


def test_housing_test_r2_is_at_least_0_8(housing: ServedModel) -> None:
    split = housing.split
    assert r2_score(split.y_test, housing.predict(split.X_test)) >= 0.8


# --- invariance ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"order": 1, "pid": 526301100},
        {"order": 99999, "pid": 0},
        {"listing_agent": "someone", "saleprice": 1},
    ],
    ids=["identifiers", "other-identifiers", "unknown-column-and-target"],
)
def test_housing_prediction_ignores_non_feature_columns(
    housing: ServedModel, extra: dict[str, object]
) -> None:
    """Callers often send the whole row (ids, even the price); only the declared features may count."""
    X = housing.split.X_test
    expected = housing.predict(X)

    with_extra = X.assign(**extra)

    np.testing.assert_array_equal(housing.predict(with_extra), expected)


def test_housing_prediction_ignores_column_order(housing: ServedModel) -> None:
    X = housing.split.X_test

    np.testing.assert_array_equal(housing.predict(X[X.columns[::-1]]), housing.predict(X))


@pytest.mark.parametrize("delta", [1e-6, -1e-6])
def test_iris_prediction_is_stable_under_tiny_sepal_width_change(iris: ServedModel, delta: float) -> None:
    X = iris_rows(*TYPICAL_IRIS.values())
    nudged = X.assign(sepal_width=X["sepal_width"] + delta)

    np.testing.assert_array_equal(iris.predict(nudged), iris.predict(X))
    for label in TYPICAL_IRIS:
        np.testing.assert_allclose(iris.proba(nudged, label), iris.proba(X, label), atol=1e-9)


# --- directional expectations --------------------------------------------------------------------------


def test_housing_higher_overall_quality_raises_price(housing: ServedModel) -> None:
    house = median_house(housing)
    better = house.assign(overall_qual=9)

    assert housing.predict(better)[0] > housing.predict(house)[0]


def test_housing_larger_living_area_raises_mean_price(housing: ServedModel) -> None:
    X = housing.split.X_test
    larger = X.assign(gr_liv_area=(X["gr_liv_area"] * 1.5).round().astype("int64"))

    assert housing.predict(larger).mean() > housing.predict(X).mean()


def test_iris_longer_wider_petals_move_versicolor_toward_virginica(iris: ServedModel) -> None:
    versicolor = iris_rows(TYPICAL_IRIS["versicolor"])
    bigger_petals = versicolor.assign(petal_length=5.5, petal_width=2.1)

    assert proba_of(iris, bigger_petals, "virginica")[0] > proba_of(iris, versicolor, "virginica")[0]


# --- unknown categories and missing values -------------------------------------------------------------


def test_housing_unknown_neighborhood_still_predicts(housing: ServedModel) -> None:
    X = housing.split.X_test.head(20)
    assert "Atlantis" not in set(housing.split.X_train["neighborhood"])

    assert_finite_predictions(housing.predict(X.assign(neighborhood="Atlantis")), len(X))


def nullable_features(housing: ServedModel, kind: str) -> list[str]:
    """Feature columns the contract allows to be missing, of one kind (numeric or categorical)."""
    columns = housing.config.dataset.columns
    return [
        c for c in housing.config.feature_columns if columns[c].nullable and columns[c].feature_kind == kind
    ]


@pytest.mark.parametrize("rows_missing", ["some", "all"])
def test_housing_missing_nullable_categoricals_still_predict(housing: ServedModel, rows_missing: str) -> None:
    X = housing.split.X_test.head(20).copy()
    nullable = nullable_features(housing, "categorical")
    assert nullable, "the housing config declares nullable categorical columns"
    # a house with no alley, basement, garage, fireplace, pool or fence: every such field is null
    rows = X.index[::2] if rows_missing == "some" else X.index
    X.loc[rows, nullable] = np.nan

    assert_finite_predictions(housing.predict(X), len(X))


def test_housing_missing_numeric_values_still_predict(housing: ServedModel) -> None:
    X = housing.split.X_test.head(20).copy()
    nullable = nullable_features(housing, "numeric")
    assert nullable, "the housing config declares nullable numeric columns"
    X.loc[X.index[::2], nullable] = np.nan

    assert_finite_predictions(housing.predict(X), len(X))
