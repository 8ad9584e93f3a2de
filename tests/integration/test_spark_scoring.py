"""Spark batch scoring (local[2]) against a real store: the same columns and values as the streaming
scorer row for row, for a classifier (CSV and Parquet) and a regressor with missing values and
categories; a bad row fails the run and leaves the output as it was."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.batch.scoring import score_file
from shipyard.batch.spark import score_with_spark
from shipyard.batch.spark_session import spark_session
from shipyard.config import Settings
from shipyard.errors import PredictionInputError
from shipyard.pipeline import run_training
from tests.conftest import ConfigFactory, iris_rows, missing_external

pytestmark = [
    pytest.mark.integration,
    # pyspark 4.x warns on every import and conversion under pandas 3; the tests here check the results
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

REPO = Path(__file__).resolve().parents[2]
MASTER = "local[2]"


@pytest.fixture(scope="module", autouse=True)
def spark() -> Iterator[Any]:
    """One local[2] session for the module (score_with_spark uses an active session as it is): the
    JVM and the Python workers start once."""
    if importlib.util.find_spec("pyspark") is None:
        missing_external("pyspark (the 'spark' extra, with Java 17 or 21) is not installed")
    with spark_session(MASTER) as session:
        yield session


def assert_same(spark: pd.DataFrame, local: pd.DataFrame) -> None:
    """Same columns, same rows in the same order, labels equal, numbers within 1e-9."""
    assert list(spark.columns) == list(local.columns)
    assert len(spark) == len(local)
    for column in local.columns:
        if column.startswith("proba_") or pd.api.types.is_float_dtype(local[column]):
            np.testing.assert_allclose(spark[column], local[column], rtol=0, atol=1e-9, err_msg=column)
        else:
            assert spark[column].astype(str).tolist() == local[column].astype(str).tolist(), column


@pytest.fixture
def iris(settings: Settings, iris_config: ConfigFactory) -> Settings:
    run_training(iris_config(), settings)
    return settings


def test_iris_matches_the_streaming_scorer_in_csv_and_parquet(iris: Settings, tmp_path: Path) -> None:
    frame = iris_rows(4_000, seed=3)
    seen: list[int] = []  # rows done, as reported to the progress callback
    for kind in ("csv", "parquet"):
        source = tmp_path / f"in.{kind}"
        if kind == "csv":
            frame.to_csv(source, index=False)
        else:
            frame.to_parquet(source, index=False)
        local_out, spark_out = tmp_path / f"local.{kind}", tmp_path / f"spark.{kind}"
        seen.clear()
        local = score_file(iris, "iris", None, source, local_out, keep=["id"])
        summary = score_with_spark(
            iris,
            "iris",
            None,
            source,
            spark_out,
            keep=["id"],
            master=MASTER,
            progress=lambda done, total: seen.append(done),
        )
        assert summary.rows_in == summary.rows_out == 4_000 and summary.rows_rejected == 0
        assert summary.version == local.version == "1"
        assert summary.engine.startswith("spark+")
        assert seen and seen[-1] == 4_000
        read = pd.read_csv if kind == "csv" else pd.read_parquet
        spark, expected = read(spark_out), read(local_out)
        assert list(spark.columns) == [
            "id",
            "prediction",
            "proba_setosa",
            "proba_versicolor",
            "proba_virginica",
            "model_version",
        ]
        assert spark["id"].tolist() == list(range(4_000))  # input order kept
        assert_same(spark, expected)
        if kind == "parquet":
            assert dict(spark.dtypes) == dict(expected.dtypes)
    assert not list(tmp_path.glob(".*"))  # no scratch folders left behind


def test_housing_regressor_with_missing_values_and_categories(
    settings: Settings, housing_config: ConfigFactory, tmp_path: Path
) -> None:
    config = housing_config()
    run_training(config, settings)
    raw = pd.read_csv(REPO / "data/raw/housing.csv", keep_default_na=False, na_values=[""])
    frame = raw[config.feature_columns].copy()
    frame.insert(0, "house", np.arange(len(frame)))
    assert frame.isna().any().sum() >= 5
    assert sum(pd.api.types.is_string_dtype(frame[c]) for c in frame.columns) >= 5
    frame.to_parquet(tmp_path / "houses.parquet", index=False)
    as_text = frame.astype({"lot_frontage": object})
    as_text.loc[:9, "lot_frontage"] = "NA"  # a missing-value marker, read as missing by both scorers
    as_text.to_csv(tmp_path / "houses.csv", index=False)
    for kind in ("parquet", "csv"):
        source = tmp_path / f"houses.{kind}"
        score_file(settings, "housing", "1", source, tmp_path / f"local.{kind}", keep=["house"])
        summary = score_with_spark(
            settings, "housing", "1", source, tmp_path / f"spark.{kind}", keep=["house"], master=MASTER
        )
        assert summary.rows_out == len(frame)
        read = pd.read_csv if kind == "csv" else pd.read_parquet
        spark, local = read(tmp_path / f"spark.{kind}"), read(tmp_path / f"local.{kind}")
        assert list(spark.columns) == ["house", "prediction", "model_version"]
        assert_same(spark, local)


def test_a_bad_row_fails_the_run_and_leaves_the_output_untouched(iris: Settings, tmp_path: Path) -> None:
    frame = iris_rows(300).astype({"sepal_length": object})
    frame.loc[7, "sepal_length"] = "tall"
    frame.loc[123, "petal_width"] = np.nan
    source = tmp_path / "bad.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "out.csv"
    output.write_text("earlier results\n")
    with pytest.raises(
        PredictionInputError,
        match=r"invalid input: id=(7: sepal_length: expected a number|123: petal_width: missing value)",
    ) as failed:
        score_with_spark(iris, "iris", None, source, output, keep=["id"], master=MASTER)
    assert "nothing was written" in str(failed.value) and "Traceback" not in str(failed.value)
    assert output.read_text() == "earlier results\n"
    assert not list(tmp_path.glob(".out.csv*"))  # no scratch folder left behind
