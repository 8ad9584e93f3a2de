"""Streaming batch scoring against a real store: bounded memory on an input 100x the chunk, the same
answers as the service's model, row-numbered rejects, and no half-written output on failure."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.batch.parallel import ScoringWorkerError
from shipyard.batch.scoring import parse_model_ref, score_file
from shipyard.config import Settings
from shipyard.errors import DataError, PredictionInputError
from shipyard.inference import ReadyModel
from shipyard.pipeline import run_training
from shipyard.registry import ModelRegistry
from tests.conftest import (
    REPO,
    ConfigFactory,
    iris_rows,
    missing_external,
    train_small_examples,
)

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


# --- several scoring processes (--workers) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Settings:
    """One store for the workers tests, with iris (20 trees) and housing (10 trees) trained once."""
    home = tmp_path_factory.mktemp("workers-store")
    shutil.copy(migrated_store, home / "mlflow.db")
    settings = Settings(home=home, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    train_small_examples(settings, "test")
    return settings


def housing_rows(rows: int) -> pd.DataFrame:
    """Real Ames sales (repeated to ``rows``) with an ``id`` column, their features as the data has them."""
    raw = pd.read_csv(REPO / "data/raw/housing.csv", keep_default_na=False, na_values=[""])
    frame = raw.drop(columns=["order", "pid", "saleprice"])
    frame = frame.iloc[np.arange(rows) % len(frame)].reset_index(drop=True)
    frame.insert(0, "id", np.arange(rows))
    return frame


def with_bad_rows(model: str, frame: pd.DataFrame, text: bool) -> tuple[pd.DataFrame, list[int]]:
    """Bad values in three rows spread over the chunks: a missing required number, a value the input
    rules refuse, and (for CSV) text in a number column. Returns the 1-based row numbers."""
    frame = frame.copy()
    rows = [3, len(frame) // 2, len(frame) - 2]  # 0-based
    if model == "iris":
        frame["petal_width"] = frame["petal_width"].astype(float)
        frame.loc[rows[0], "petal_width"] = np.nan
        frame.loc[rows[1], "sepal_width"] = np.nan
        if text:
            frame = frame.astype({"sepal_length": object})
        frame.loc[rows[2], "sepal_length"] = "tall" if text else np.nan
    else:
        frame = frame.astype({"lot_area": float})
        frame.loc[rows[0], "lot_area"] = np.nan
        frame.loc[rows[1], "street"] = "Gravel"  # not an allowed category
        if text:
            frame = frame.astype({"gr_liv_area": object})
        frame.loc[rows[2], "gr_liv_area"] = "huge" if text else np.nan
    return frame, [r + 1 for r in rows]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("model", ["iris", "housing"])
def test_two_workers_write_what_one_process_writes(
    store: Settings, tmp_path: Path, model: str, fmt: str
) -> None:
    rows, chunk = (6_000, 1_000) if model == "iris" else (1_500, 300)
    frame = iris_rows(rows) if model == "iris" else housing_rows(rows)
    frame, bad = with_bad_rows(model, frame, text=fmt == "csv")
    source = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_parquet(source, index=False)
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"out-{workers}.{fmt}"
        summary = score_file(
            store, model, None, source, out, chunk_rows=chunk, keep=["id"], on_error="skip", workers=workers
        )
        assert summary.workers == workers and summary.chunks == rows // chunk
        assert summary.rows_rejected == 3 and summary.rows_out == rows - 3
        outputs[workers] = (out.read_bytes(), Path(summary.rejects or "").read_bytes())
    assert outputs[2][0] == outputs[1][0]  # byte for byte
    assert outputs[2][1] == outputs[1][1]
    rejects = pd.read_csv(tmp_path / f"out-2.{fmt}.rejects.csv")
    assert rejects["_row"].tolist() == bad and rejects["id"].tolist() == [r - 1 for r in bad]
    scored = (
        pd.read_csv(tmp_path / "out-2.csv") if fmt == "csv" else pd.read_parquet(tmp_path / "out-2.parquet")
    )
    assert scored["id"].tolist() == [i for i in range(rows) if i + 1 not in bad]  # input order


def test_two_workers_fail_on_the_first_bad_row_as_one_process_does(store: Settings, tmp_path: Path) -> None:
    frame, _ = with_bad_rows("iris", iris_rows(4_000), text=True)
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "out.csv"
    output.write_text("earlier results\n")
    errors = []
    for workers in (1, 2):
        with pytest.raises(PredictionInputError) as caught:
            score_file(store, "iris", None, source, output, chunk_rows=500, workers=workers)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "in row 4: petal_width" in errors[0]
    assert output.read_text() == "earlier results\n"
    assert not list(tmp_path.glob(".*partial"))


def test_two_workers_hold_at_most_three_chunks_of_a_large_input(store: Settings, tmp_path: Path) -> None:
    chunk = 1_000
    source = tmp_path / "big.parquet"
    iris_rows(60 * chunk).to_parquet(source, index=False, row_group_size=chunk)
    seen: list[int] = []
    summary = score_file(
        store,
        "iris",
        None,
        source,
        tmp_path / "out.parquet",
        chunk_rows=chunk,
        keep=["id"],
        workers=2,
        progress=lambda done, total: seen.append(done),
    )
    assert summary.workers == 2 and summary.chunks == 60 and summary.rows_out == 60 * chunk
    # read and not yet written: one per worker and one read ahead, never the input
    assert 2 <= summary.max_chunks_in_flight <= 3
    assert seen == [chunk * (i + 1) for i in range(60)]  # progress in input order, chunk by chunk
    assert summary.workers_peak_rss_mb > 0
    assert pd.read_parquet(tmp_path / "out.parquet")["id"].tolist() == list(range(60 * chunk))


def _scoring_workers() -> list[int]:
    """PIDs of this process's scoring worker processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and b"shipyard.batch.scoring_worker" in command:
            found.append(int(entry.name))
    return found


def test_a_worker_that_dies_fails_the_run_naming_the_chunk(store: Settings, tmp_path: Path) -> None:
    if not Path("/proc/self/stat").exists():
        missing_external("/proc (to find the worker processes)")
    source = tmp_path / "in.parquet"
    iris_rows(40_000).to_parquet(source, index=False)
    output = tmp_path / "out.parquet"
    output.write_bytes(b"earlier results")
    killed: list[int] = []

    def kill_one(done: int, total: int | None) -> None:
        if not killed:
            workers = _scoring_workers()
            assert len(workers) == 2
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])

    started = time.monotonic()
    with pytest.raises(ScoringWorkerError) as caught:
        score_file(
            store, "iris", None, source, output, chunk_rows=1_000, keep=["id"], workers=2, progress=kill_one
        )
    assert time.monotonic() - started < 120
    message = str(caught.value)
    assert f"(pid {killed[0]}) died (killed by SIGKILL)" in message
    assert re.search(r"scoring chunk \d+ \(rows \d+-\d+ of in\.parquet\); nothing was written", message)
    assert output.read_bytes() == b"earlier results"  # the earlier output stays
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file
    assert _scoring_workers() == []  # the other worker was stopped too
