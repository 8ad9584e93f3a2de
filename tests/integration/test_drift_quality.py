"""Drift of a file with bad values: reported per feature, not refused (issue 16's data quality).

A current file where an integer column arrives with fractions, a category the reference never had and
sizes beyond anything in training still gets its drift report: the refused values counted per feature
with the first reason, the unseen and out-of-range shares, and the rows with a refused value left out of
the prediction drift only. The same report through the CLI, as JSON and HTML.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.monitoring.reports import drift_for_model
from tests.conftest import REPO, train_small_examples

pytestmark = pytest.mark.integration


@pytest.fixture
def housing(settings: Settings) -> Settings:
    train_small_examples(settings, "drift-quality")
    return settings


def bad_file(rows: int = 400) -> pd.DataFrame:
    frame = pd.read_csv(REPO / "data/raw/housing.csv").sample(rows, random_state=3).reset_index(drop=True)
    frame = frame.drop(columns=["saleprice"], errors="ignore")
    frame["lot_area"] = frame["lot_area"].astype(float)
    frame.loc[:9, "lot_area"] = frame.loc[:9, "lot_area"] + 0.5  # ten fractions in an integer column
    frame.loc[10:29, "neighborhood"] = "Atlantis"  # a category never seen in training
    frame.loc[30:69, "gr_liv_area"] = 99_999  # bigger than any house in the reference
    return frame


def test_a_file_with_bad_values_gets_its_report(housing: Settings) -> None:
    frame = bad_file()
    report = drift_for_model(housing, "housing", frame)
    by_name = {f.name: f for f in report.features}

    lot = by_name["lot_area"]
    assert lot.type_violations == 10 and "expected an integer" in (lot.type_violation_example or "")
    assert report.rows_not_scored >= 10  # those rows (and any other refused ones) are not predicted
    hood = by_name["neighborhood"]
    assert hood.unseen_categories == pytest.approx(20 / 400)
    area = by_name["gr_liv_area"]
    assert area.out_of_range == pytest.approx(40 / 400, abs=0.01)
    assert area.drifted  # 10% of the rows at 99,999 square feet is drift too
    issues = report.quality_issues
    assert issues["lot_area"]["type_violations"] == 10
    assert issues["neighborhood"]["unseen_categories"] == pytest.approx(0.05)
    # the prediction drift is computed on the scored rows only
    assert report.prediction is not None
    assert report.prediction.current_rows == 400
    assert report.prediction.current_missing == pytest.approx(report.rows_not_scored / 400)
    # a clean sample of the same data has no refused value and no unseen category
    clean = pd.read_csv(REPO / "data/raw/housing.csv").sample(400, random_state=4)
    quiet = drift_for_model(housing, "housing", clean)
    assert quiet.rows_not_scored == 0
    assert all(f.type_violations == 0 for f in quiet.features)
    assert not any(i.get("type_violations") for i in quiet.quality_issues.values())


def test_the_cli_reports_instead_of_stopping(
    housing: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(housing.home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", housing.tracking_uri)
    source = tmp_path / "current.csv"
    bad_file().to_csv(source, index=False)
    result = CliRunner().invoke(
        app,
        [
            "drift",
            "housing",
            "--current",
            str(source),
            "-o",
            str(tmp_path / "r.json"),
            "--html",
            str(tmp_path / "r.html"),
        ],
    )
    assert result.exit_code in (0, 10), result.output
    assert "Data quality" in result.output and "p-value correction: bh" in result.output
    assert "10 of 400 current rows hold a refused value" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["quality_issues"]["lot_area"]["type_violations"] == 10
    # missing values count only well above the reference's share (pool_qc is nearly always missing)
    assert "pool_qc" not in report["quality_issues"]
    assert report["correction"] == "bh" and report["rows_not_scored"] >= 10
    page = (tmp_path / "r.html").read_text()
    assert "Data quality" in page and "Atlantis" not in page.split("Data quality")[0]
    assert "expected an integer" in page
    assert np.isfinite(report["drifted_share"])
    # explanations of both sides on 50 sampled rows each, one mean |attribution| per raw feature
    assert report["attributions"]["rows"] == {"reference": 50, "current": 50}
    assert len(report["attributions"]["current"]) == len(report["features"]) == 79
    assert "mean |attribution| per feature" in page
