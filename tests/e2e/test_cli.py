"""The whole training flow through the `shipyard` command, on the example configs and real data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.e2e.conftest import Runner

pytestmark = pytest.mark.e2e


def test_demo_configs_register_champions_that_meet_their_bar(shipyard: Runner, workspace: Path) -> None:
    """What `make demo` does: both example models end up registered with a champion alias."""
    iris = shipyard("train", "-c", "configs/iris.yaml", "-o", "out/iris.json")
    assert iris.code == 0, iris.stderr
    assert "promoted to champion" in iris.stdout
    for step in ("load", "validate", "train", "evaluate", "register", "gate"):
        assert f"✓ {step}" in iris.stdout
    summary = json.loads((workspace / "out/iris.json").read_text())
    assert summary["ok"] and summary["promoted"] and summary["aliases"] == ["champion"]
    assert summary["metrics"]["accuracy"] >= 0.9

    housing = shipyard("train", "-c", "configs/housing.yaml", "-q", "-o", "out/housing.json")
    assert housing.code == 0, housing.stderr
    result = json.loads((workspace / "out/housing.json").read_text())
    assert result["metrics"]["r2"] >= 0.8
    assert f"r2={result['metrics']['r2']:.4f}" in housing.stdout  # R² is printed
    assert result["aliases"] == ["champion"]

    listing = shipyard("models", "list", "-o", "out/models.json")
    assert listing.code == 0, listing.stderr
    models = json.loads((workspace / "out/models.json").read_text())
    assert {m: v[0]["aliases"] for m, v in models.items()} == {"housing": ["champion"], "iris": ["champion"]}
    assert models["iris"][0]["metrics"]["accuracy"] >= 0.9
    assert "champion" in listing.stdout and "housing" in listing.stdout


def test_predict_and_manual_promotion(shipyard: Runner, workspace: Path) -> None:
    assert shipyard("train", "-c", "configs/iris.yaml", "-q").code == 0
    rows = pd.DataFrame(
        {
            "id": ["a", "b"],
            "sepal_length": [5.1, 6.5],
            "sepal_width": [3.5, 3.0],
            "petal_length": [1.4, 5.5],
            "petal_width": [0.2, 2.0],
        }
    )
    rows.to_csv(workspace / "rows.csv", index=False)
    scored = shipyard("predict", "iris", "-i", "rows.csv", "-o", "preds.csv", "--keep", "id")
    assert scored.code == 0, scored.stderr
    preds = pd.read_csv(workspace / "preds.csv")
    assert preds["id"].tolist() == ["a", "b"]
    assert preds["prediction"].tolist() == ["setosa", "virginica"]
    assert preds["model_version"].tolist() == [1, 1]
    assert {"proba_setosa", "proba_versicolor", "proba_virginica"} <= set(preds.columns)

    bad = shipyard("predict", "iris", "-i", "rows.csv", "--model", "7")
    assert bad.code == 7
    assert bad.stderr.strip().startswith("error: model 'iris' version 7: not found")

    promoted = shipyard("models", "promote", "iris", "1", "--reason", "release 1.0", "--by", "ci-bot")
    assert promoted.code == 0, promoted.stderr
    assert "iris version 1 is now 'champion'" in promoted.stdout


def test_config_errors_exit_2_with_one_line_and_no_traceback(shipyard: Runner, workspace: Path) -> None:
    missing = shipyard("train", "-c", "configs/nope.yaml")
    assert missing.code == 2
    assert missing.stderr.strip().splitlines() == [
        "error: configs/nope.yaml: config file not found (configs there: housing.yaml, iris.yaml)"
    ]
    data = yaml.safe_load((workspace / "configs/iris.yaml").read_text())
    data["model"]["estimator"] = "quantum_forest"
    (workspace / "configs/bad.yaml").write_text(yaml.safe_dump(data))
    unknown = shipyard("train", "-c", "configs/bad.yaml")
    assert unknown.code == 2
    assert "model.estimator: unknown estimator 'quantum_forest'" in unknown.stderr
    assert "Traceback" not in unknown.stderr + unknown.stdout


def test_invalid_data_prints_the_report_and_registers_nothing(shipyard: Runner, workspace: Path) -> None:
    frame = pd.read_csv(workspace / "data/raw/housing.csv", keep_default_na=False, na_values=[""])
    frame.loc[10, "saleprice"] = -5
    frame.loc[[20, 21], "central_air"] = "maybe"
    frame.to_csv(workspace / "broken.csv", index=False)
    data = yaml.safe_load((workspace / "configs/housing.yaml").read_text())
    data["dataset"]["source"]["path"] = "broken.csv"
    (workspace / "configs/broken.yaml").write_text(yaml.safe_dump(data))

    result = shipyard("train", "-c", "configs/broken.yaml", "-o", "out.json")
    assert result.code == 4
    assert "data validation failed: 2 failing check(s)" in result.stderr
    assert "saleprice" in result.stdout and "central_air" in result.stdout and "'maybe'" in result.stdout
    report = json.loads((workspace / "out.json").read_text())
    assert report["ok"] is False and report["stage"] == "validate"
    assert {f["column"]: f["failing"] for f in report["validation"]["failures"]} == {
        "saleprice": 1,
        "central_air": 2,
    }
    assert "no registered models" in shipyard("models", "list").stdout

    checked = shipyard("validate", "-c", "configs/broken.yaml")
    assert checked.code == 4
    assert shipyard("validate", "-c", "configs/housing.yaml").code == 0


@pytest.mark.parametrize(
    "command",
    [[], ["train"], ["validate"], ["predict"], ["models"], ["models", "list"], ["models", "promote"]],
)
def test_every_command_explains_itself(shipyard: Runner, command: list[str]) -> None:
    result = shipyard(*command, "--help")
    assert result.code == 0
    assert "Usage:" in result.stdout and len(result.stdout.splitlines()) > 5
