"""`shipyard drift` on a registered model: same data shows no drift, shifted data shows it where it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.datasets import load_iris

from tests.e2e.conftest import Runner

pytestmark = pytest.mark.e2e


def test_drift_report_from_a_file(shipyard: Runner, workspace: Path) -> None:
    assert shipyard("train", "-c", "configs/iris.yaml", "-q").code == 0
    frame = load_iris(as_frame=True).frame
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "target"]
    frame.drop(columns=["target"]).to_csv(workspace / "same.csv", index=False)
    shifted = frame.drop(columns=["target"]).assign(
        petal_length=lambda d: d["petal_length"] + 2.5, petal_width=lambda d: d["petal_width"] * 1.8
    )
    shifted.to_csv(workspace / "shifted.csv", index=False)

    quiet = shipyard("drift", "iris", "--current", "same.csv", "-o", "quiet.json")
    assert quiet.code == 0, quiet.stderr
    report = json.loads((workspace / "quiet.json").read_text())
    assert report["dataset_drift"] is False and report["drifted_features"] == []
    assert report["reference_rows"] == 120 and report["current_rows"] == 150
    assert "no drift" in quiet.stdout

    loud = shipyard(
        "drift",
        "iris",
        "--current",
        "shifted.csv",
        "-o",
        "loud.json",
        "--html",
        "loud.html",
        "--fail-on-drift",
    )
    assert loud.code == 10, loud.stderr
    report = json.loads((workspace / "loud.json").read_text())
    assert report["drifted_features"] == ["petal_length", "petal_width"]
    assert report["dataset_drift"] is True and report["drifted_share"] == 0.5
    assert report["prediction"]["drifted"] is True  # the shift changes what the model predicts
    assert {f["name"]: f["test"] for f in report["features"]}["petal_length"] == "ks"
    page = (workspace / "loud.html").read_text()
    # a plot per feature and the prediction, and the mean |attribution| plot (50 rows a side by default)
    assert page.count("<img") == 6 and "http://" not in page and "https://" not in page
    assert "mean |attribution| per feature" in page
    attributions = report["attributions"]
    assert attributions["rows"] == {"reference": 50, "current": 50}
    assert set(attributions["current"]) == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    # the model answers by the petals, before and after the shift
    assert max(attributions["reference"], key=attributions["reference"].get).startswith("petal")

    missing = shipyard("drift", "iris", "--current", "rows.csv")
    assert missing.code == 3 and "input file not found" in missing.stderr
    frame[["sepal_length"]].to_csv(workspace / "narrow.csv", index=False)
    narrow = shipyard("drift", "iris", "--current", "narrow.csv")
    assert (
        narrow.code == 3
        and "lacks feature(s) of iris: sepal_width, petal_length, petal_width" in narrow.stderr
    )
