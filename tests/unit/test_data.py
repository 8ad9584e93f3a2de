"""DataLoader reads without modifying; DataValidator reports every failing check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.config.pipeline import SourceConfig
from shipyard.data import DataLoader, DataValidator, split_frame
from shipyard.errors import DataError, DataValidationError
from tests.conftest import ConfigFactory


def iris_frame() -> pd.DataFrame:
    return DataLoader(SourceConfig(kind="bundled", name="iris")).load().frame


def test_bundled_iris_has_snake_case_columns_and_named_species() -> None:
    loaded = DataLoader(SourceConfig(kind="bundled", name="iris")).load()
    assert list(loaded.frame.columns) == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
        "species",
    ]
    assert set(loaded.frame["species"]) == {"setosa", "versicolor", "virginica"}
    assert loaded.uri == "sklearn:iris"
    # the hash is of the content, so it is the same on every load
    assert loaded.digest == DataLoader(SourceConfig(kind="bundled", name="iris")).load().digest


def test_unknown_bundled_dataset_lists_the_known_ones() -> None:
    with pytest.raises(
        DataError, match=r"unknown bundled dataset 'mnist' \(expected one of: breast_cancer, diabetes"
    ):
        DataLoader(SourceConfig(kind="bundled", name="mnist")).load()


def test_csv_and_parquet_load_the_same_rows_and_leave_the_file_untouched(tmp_path: Path) -> None:
    frame = iris_frame()
    csv, parquet = tmp_path / "iris.csv", tmp_path / "iris.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, index=False)
    before = hashlib.sha256(csv.read_bytes()).hexdigest()
    from_csv = DataLoader(SourceConfig(kind="csv", path=csv)).load()
    from_parquet = DataLoader(
        SourceConfig(kind="parquet", path=Path("iris.parquet")), base_dir=tmp_path
    ).load()
    assert from_csv.digest == before == hashlib.sha256(csv.read_bytes()).hexdigest()
    pd.testing.assert_frame_equal(from_csv.frame, from_parquet.frame, check_dtype=False)


def test_missing_file_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*absent\.csv"):
        DataLoader(SourceConfig(kind="csv", path=tmp_path / "absent.csv")).load()
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match=r"could not read parquet file"):
        DataLoader(SourceConfig(kind="parquet", path=bad)).load()


def test_na_values_keep_meaningful_strings(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\nNone,1\n,2\n")
    default = DataLoader(SourceConfig(kind="csv", path=path)).load().frame
    strict = DataLoader(SourceConfig(kind="csv", path=path, na_values=[""])).load().frame
    assert default["a"].isna().sum() == 2
    assert strict["a"].tolist()[0] == "None" and strict["a"].isna().sum() == 1


def test_valid_data_passes(iris_config: ConfigFactory) -> None:
    frame, report = DataValidator(iris_config().dataset).validate(iris_frame())
    assert report.ok and frame is not None
    assert report.summary() == "150 rows x 5 columns passed every check"


def test_report_lists_every_failing_check(iris_config: ConfigFactory) -> None:
    frame = iris_frame()
    frame.loc[3, "sepal_length"] = 99.0  # out of range
    frame.loc[[5, 6], "petal_width"] = np.nan  # nulls
    frame.loc[7, "species"] = "rose"  # not allowed
    frame.loc[8, "petal_length"] = np.inf  # not finite (and out of range)
    frame["colour"] = "blue"  # unexpected column
    frame = frame.drop(columns=["sepal_width"])  # missing column
    with pytest.raises(DataValidationError) as err:
        DataValidator(iris_config().dataset).check(frame)
    report = err.value.report
    found = {(f.column, f.check): f for f in report.failures}
    assert found[("sepal_length", "in_range(0.0, 15.0)")].failing == 1
    assert found[("sepal_length", "in_range(0.0, 15.0)")].examples == ["row 3: 99.0"]
    assert found[("petal_width", "null values")].failing == 2
    assert found[("species", "isin(['setosa', 'versicolor', 'virginica'])")].examples == ["row 7: 'rose'"]
    assert ("petal_length", "finite") in found
    assert ("colour", "unexpected column") in found
    assert ("sepal_width", "missing column") in found
    assert report.to_dict()["ok"] is False


def test_wrong_dtype_and_row_count(iris_config: ConfigFactory) -> None:
    frame = iris_frame().head(20).astype({"sepal_length": object})
    frame.loc[2, "sepal_length"] = "tall"
    _, report = DataValidator(iris_config().dataset).validate(frame)
    checks = {(f.column, f.check) for f in report.failures}
    assert ("sepal_length", "coerce_dtype('float64')") in checks
    assert (None, "at least 100 rows") in checks
    # no noise: a range check that cannot run on text is not reported on top of the dtype failure
    assert not any(c == "sepal_length" and k.startswith("in_range") for c, k in checks)


def test_extra_columns_can_be_ignored(iris_config: ConfigFactory) -> None:
    frame = iris_frame().assign(note="x")
    valid = DataValidator(iris_config(dataset={"extra_columns": "ignore"}).dataset).check(frame)
    assert "note" not in valid.columns


def test_split_is_stratified_and_deterministic(iris_config: ConfigFactory) -> None:
    cfg = iris_config()
    frame = iris_frame()
    a = split_frame(frame, cfg.feature_columns, "species", cfg.split, "classification")
    b = split_frame(frame, cfg.feature_columns, "species", cfg.split, "classification")
    assert len(a.X_test) == 30 and list(a.X_test.index) == list(b.X_test.index)
    assert a.y_test.value_counts().tolist() == [10, 10, 10]
