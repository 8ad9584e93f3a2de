"""`shipyard models lineage` and `shipyard models reproduce` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.conftest import Runner

pytestmark = pytest.mark.e2e


def test_lineage_and_reproduce(workspace: Path, shipyard: Runner) -> None:
    assert shipyard("prepare", "-c", "configs/iris.yaml", "-o", "prepared/iris.parquet").code == 0
    trained = shipyard("train", "-c", "configs/iris.yaml", "--data", "prepared/iris.parquet", "-q")
    assert trained.code == 0, trained.stderr

    lineage = shipyard("models", "lineage", "iris", "champion", "-o", "lineage.json")
    assert lineage.code == 0, lineage.stderr
    assert "prepared/iris.parquet" in lineage.stdout and "gate" in lineage.stdout
    recorded = json.loads((workspace / "lineage.json").read_text())
    assert recorded["version"] == "1" and recorded["aliases"] == ["champion"]
    for key in ("git_commit", "data_hash", "config_hash", "package_version", "runner"):
        assert f"shipyard.{key}" in recorded["tags"]

    same = shipyard("models", "reproduce", "iris", "1", "-o", "reproduced.json")
    assert same.code == 0, same.stdout + same.stderr
    assert json.loads((workspace / "reproduced.json").read_text())["matches"] is True
    assert "reproduced" in same.stdout

    data = workspace / "prepared/iris.parquet"
    pd.read_parquet(data).iloc[:-1].to_parquet(data, index=False)  # one row fewer: other data
    refused = shipyard("models", "reproduce", "iris", "1")
    assert refused.code == 3, refused.stdout + refused.stderr
    assert "the data of iris v1 changed" in refused.stderr and "restore that data" in refused.stderr

    missing = shipyard("models", "lineage", "iris", "9")
    assert missing.code == 7 and "traceback" not in missing.stderr.lower()
