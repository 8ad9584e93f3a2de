"""Streaming batch scoring against a real store: bounded memory on an input 100x the chunk, the same
answers as the service's model, row-numbered rejects, and no half-written output on failure."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.batch.scoring import parse_model_ref, score_file
from shipyard.config import Settings
from shipyard.errors import DataError, PredictionInputError
from shipyard.inference import ReadyModel
from shipyard.pipeline import run_training
from shipyard.registry import ModelRegistry
from tests.conftest import ConfigFactory, iris_rows

pytestmark = pytest.mark.integration

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture
def iris(settings: Settings, iris_config: ConfigFactory) -> Settings:
    run_training(iris_config(), settings)
    return settings


def test_memory_stays_bounded_on_an_input_100x_the_chunk(iris: Settings, tmp_path: Path) -> None:
    chunk = 2_000
    source = tmp_path / "big.parquet"
    iris_rows(100 * chunk).to_parquet(source, index=False, row_group_size=chunk)
    baseline: list[int] = []

    def progress(done: int, total: int | None) -> None:
        if not baseline:  # from the first chunk on: loading the model is not what streams
            tracemalloc.reset_peak()
            baseline.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        summary = score_file(
            iris,
            "iris",
            None,
            source,
            tmp_path / "out.parquet",
            chunk_rows=chunk,
            keep=["id"],
            progress=progress,
        )
        growth = tracemalloc.get_traced_memory()[1] - baseline[0]
    finally:
        tracemalloc.stop()
    assert summary.rows_in == summary.rows_out == 100 * chunk and summary.chunks == 100
    whole = iris_rows(100 * chunk).memory_usage(deep=True).sum()  # the input alone, held at once
    assert growth < whole / 4, (growth, whole)  # a few chunks' worth, not the input
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == [
        "id",
        "prediction",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
        "model_version",
    ]
    assert out["id"].tolist() == list(range(100 * chunk))


def test_same_answers_as_the_model_and_a_folder_of_csv(iris: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    frame = iris_rows(3_000, seed=1)
    frame.iloc[:1_000].to_csv(folder / "a.csv", index=False)
    frame.iloc[1_000:].to_csv(folder / "b.csv", index=False)
    summary = score_file(
        iris, *parse_model_ref("iris@champion"), folder, tmp_path / "out.csv", chunk_rows=700, keep=["id"]
    )
    assert summary.rows_out == 3_000 and summary.version == "1"
    out = pd.read_csv(tmp_path / "out.csv")
    expected = ReadyModel(ModelRegistry(iris).load("iris")).predict_frame(frame[FEATURES])
    assert out["prediction"].tolist() == expected["prediction"].tolist()
    for label in ("setosa", "versicolor", "virginica"):
        np.testing.assert_allclose(out[f"proba_{label}"], expected[f"proba_{label}"], atol=1e-5)


def test_bad_rows_fail_by_row_number_or_go_to_a_side_file(iris: Settings, tmp_path: Path) -> None:
    frame = iris_rows(50).astype({"sepal_length": object})
    frame.loc[7, "sepal_length"] = "tall"
    frame.loc[30, "petal_width"] = np.nan
    source = tmp_path / "bad.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "out.csv"
    output.write_text("earlier results\n")
    with pytest.raises(
        PredictionInputError,
        match=r"in row 8: sepal_length: expected a number, got 'tall'; nothing was written",
    ):
        score_file(iris, "iris", None, source, output, chunk_rows=20)
    assert output.read_text() == "earlier results\n"  # untouched by the failed run
    assert not list(tmp_path.glob(".*partial"))

    summary = score_file(iris, "iris", None, source, output, chunk_rows=20, keep=["id"], on_error="skip")
    assert summary.rows_out == 48 and summary.rows_rejected == 2
    rejects = pd.read_csv(summary.rejects or "")
    assert rejects["_row"].tolist() == [8, 31] and rejects["id"].tolist() == [7, 30]
    assert "expected a number" in rejects["_error"][0]
    assert 7 not in pd.read_csv(output)["id"].tolist()


def test_an_interrupted_run_leaves_no_output(iris: Settings, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    iris_rows(5_000).to_parquet(source, index=False)

    def interrupt(done: int, total: int | None) -> None:
        assert total == 5_000
        if done >= 2_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_file(iris, "iris", None, source, tmp_path / "out.parquet", chunk_rows=1_000, progress=interrupt)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))]  # nor a partial file


def test_clear_errors_for_what_cannot_be_scored(iris: Settings, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    iris_rows(10).to_csv(source, index=False)
    with pytest.raises(DataError, match="--keep column"):
        score_file(iris, "iris", None, source, tmp_path / "o.csv", keep=["customer"])
    with pytest.raises(DataError, match=r"expected a \.csv or \.parquet"):
        score_file(iris, "iris", None, source, tmp_path / "o.json")
    iris_rows(10).drop(columns=["petal_width"]).to_csv(source, index=False)
    with pytest.raises(PredictionInputError, match="missing feature column"):
        score_file(iris, "iris", None, source, tmp_path / "o.csv")
    with pytest.raises(DataError, match="NAME@ALIAS"):
        parse_model_ref("iris@")
