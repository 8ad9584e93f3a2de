"""One rule set: the same rows through every way in give the same predictions and the same errors.

A model with all four kinds of input (a number that may be missing, an integer, a category with allowed
values, a boolean) is trained and registered through the real command, then scored through the API's
three protocols (``/predict``, ``/invocations`` as JSON and CSV, Open Inference Protocol V2), through
``shipyard predict``, ``shipyard batch score`` and ``shipyard batch score --engine spark``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from shipyard.config import Settings
from shipyard.serving import create_app
from tests.e2e.conftest import Runner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FEATURES = ["size", "rooms", "kind", "garden"]
CLASSES = ["cheap", "dear"]

GOOD = [
    {"size": 120.5, "rooms": 3, "kind": "a", "garden": True},
    {"size": None, "rooms": 5, "kind": "c", "garden": False},
    {"size": 60.0, "rooms": 1, "kind": "b", "garden": False},
    {"size": 180.25, "rooms": 6, "kind": "c", "garden": True},
]

# (feature, value in JSON, the same value in a CSV file, the message every path must give)
BAD = [
    ("size", "abc", "abc", "expected a number, got 'abc'"),
    ("rooms", 2.5, "2.5", "expected an integer, got 2.5"),
    ("kind", "zzz", "zzz", "unknown category 'zzz' (expected one of: a, b, c)"),
    ("garden", "no", "no", "expected true or false, got 'no'"),
    ("rooms", None, "", "missing value; this feature is required"),
]


def training_data(rows: int = 600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.normal(110, 35, rows).clip(10).round(2)
    rooms = rng.integers(1, 7, rows)
    kind = rng.choice(["a", "b", "c"], rows)
    garden = rng.random(rows) < 0.4
    score = size + 12 * rooms + 30 * (kind == "c") + 25 * garden + rng.normal(0, 15, rows)
    frame = pd.DataFrame({"size": size, "rooms": rooms, "kind": kind, "garden": garden})
    frame["label"] = np.where(score > np.median(score), "dear", "cheap")
    frame.loc[rng.random(rows) < 0.1, "size"] = np.nan
    return frame


def config(data: Path) -> dict[str, Any]:
    return {
        "name": "mixed",
        "description": "Every kind of input: an optional number, an integer, a category, a boolean.",
        "dataset": {
            "source": {"kind": "csv", "path": str(data), "na_values": [""]},
            "target": "label",
            "task": "classification",
            "min_rows": 100,
            "columns": {
                "size": {"dtype": "float", "nullable": True, "min": 0},
                "rooms": {"dtype": "int", "min": 0},
                "kind": {"dtype": "str", "allowed": ["a", "b", "c"]},
                "garden": {"dtype": "bool"},
                "label": {"dtype": "str", "allowed": CLASSES},
            },
        },
        "split": {"test_size": 0.2, "random_state": 1, "stratify": True},
        "model": {"estimator": "random_forest", "params": {"n_estimators": 15, "max_depth": 6}},
        "evaluation": {"primary_metric": "f1_macro"},
        "promotion": {"thresholds": {"accuracy": 0.5}},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, repo_root: Path, migrated_store: Path) -> Path:
    """A workspace whose embedded store holds the 'mixed' model as champion, trained by the CLI."""
    import shutil
    import subprocess
    import sys

    workspace = tmp_path_factory.mktemp("one-rule-set")
    shutil.copy(migrated_store, workspace / "mlflow.db")
    training_data().to_csv(workspace / "mixed.csv", index=False)
    (workspace / "mixed.yaml").write_text(yaml.safe_dump(config(workspace / "mixed.csv")))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "shipyard"), "train", "-c", "mixed.yaml", "-q"],
        cwd=workspace,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return workspace


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


@pytest.fixture(scope="module")
def api(trained: Path) -> Iterator[TestClient]:
    settings = Settings(
        home=trained,
        tracking_uri=f"sqlite:///{trained / 'mlflow.db'}",
        models=["mixed"],
        auth_enabled=False,
        reload_interval_seconds=0,
        prediction_log_path=trained / "predictions.db",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/ready").status_code == 200
        yield client


@pytest.fixture
def cli(trained: Path) -> Runner:
    import subprocess
    import sys

    from tests.e2e.conftest import Result

    def run(*args: str, timeout: float = 300) -> Result:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "shipyard"), *args],
            cwd=trained,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def csv_text(records: list[dict[str, Any]], ids: bool = False) -> str:
    frame = pd.DataFrame(records, columns=FEATURES)
    if ids:
        frame.insert(0, "id", range(1, len(frame) + 1))
    return frame.to_csv(index=False)


def v2_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    types = {"size": "FP64", "rooms": "INT64", "kind": "BYTES", "garden": "BOOL"}
    return {
        "inputs": [
            {"name": f, "shape": [len(records)], "datatype": types[f], "data": [r[f] for r in records]}
            for f in FEATURES
        ]
    }


# --- the API's three protocols --------------------------------------------------------------------
def api_answers(client: TestClient, records: list[dict[str, Any]]) -> dict[str, tuple[list[Any], Any]]:
    """(labels, probabilities rows) from every API way in, for the same records."""
    answers: dict[str, tuple[list[Any], Any]] = {}
    r = client.post("/predict", json={"records": records})
    assert r.status_code == 200, r.text
    body = r.json()
    answers["/predict"] = (body["predictions"], [[p[c] for c in CLASSES] for p in body["probabilities"]])
    split = {"dataframe_split": {"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in records]}}
    for name, kwargs in (
        ("/invocations split", {"json": split}),
        ("/invocations records", {"json": {"dataframe_records": records}}),
        ("/invocations csv", {"content": csv_text(records), "headers": {"content-type": "text/csv"}}),
    ):
        r = client.post("/invocations", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 200, (name, r.text)
        answers[name] = (r.json()["predictions"], None)
    r = client.post("/v2/models/mixed/infer", json=v2_body(records))
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    answers["v2"] = (
        outputs["predict"]["data"],
        np.asarray(outputs["predict_proba"]["data"]).reshape(len(records), -1).tolist(),
    )
    return answers


def api_errors(client: TestClient, feature: str, value: Any, text: str) -> dict[str, list[str]]:
    """The messages each API way in gives for one bad value (a good row stands next to it)."""
    row = {**GOOD[0], feature: value}
    records = [GOOD[2], row]
    split = {"dataframe_split": {"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in records]}}
    csv_rows = csv_text([GOOD[2], {**GOOD[0], feature: None}]).splitlines()
    fields = csv_rows[2].split(",")
    fields[FEATURES.index(feature)] = text
    csv_body = "\n".join([*csv_rows[:2], ",".join(fields)]) + "\n"
    calls = {
        "/predict": ("/predict", {"json": {"records": records}}),
        "/invocations split": ("/invocations", {"json": split}),
        "/invocations records": ("/invocations", {"json": {"dataframe_records": records}}),
        "/invocations csv": ("/invocations", {"content": csv_body, "headers": {"content-type": "text/csv"}}),
        "v2": ("/v2/models/mixed/infer", {"json": v2_body(records)}),
    }
    messages: dict[str, list[str]] = {}
    for name, (path, kwargs) in calls.items():
        r = client.post(path, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 422, (name, r.status_code, r.text)
        detail = r.json()["detail"]
        assert all(feature in map(str, e["loc"]) for e in detail), (name, detail)  # the field is named
        messages[name] = [e["msg"] for e in detail]
    return messages


def test_good_rows_get_the_same_answers_everywhere(api: TestClient, cli: Runner, trained: Path) -> None:
    answers = api_answers(api, GOOD)
    (trained / "good.csv").write_text(csv_text(GOOD, ids=True))
    local = cli("predict", "mixed", "-i", "good.csv", "-o", "predict.csv", "--keep", "id")
    assert local.code == 0, local.stderr
    batch = cli("batch", "score", "mixed", "-i", "good.csv", "-o", "batch.csv", "--keep", "id", "-q")
    assert batch.code == 0, batch.stderr
    spark = cli(
        "batch", "score", "mixed", "-i", "good.csv", "-o", "spark.csv", "--keep", "id", "-q",
        "--engine", "spark", "--master", "local[1]",
    )  # fmt: skip
    assert spark.code == 0, spark.stderr
    for name in ("predict", "batch", "spark"):
        out = pd.read_csv(trained / f"{name}.csv")
        assert out["id"].tolist() == [1, 2, 3, 4], name
        answers[f"shipyard {name}"] = (
            out["prediction"].tolist(),
            out[[f"proba_{c}" for c in CLASSES]].to_numpy().tolist(),
        )
    labels = {name: labels for name, (labels, _) in answers.items()}
    assert len({json.dumps(v) for v in labels.values()}) == 1, labels
    assert set(labels["/predict"]) == set(CLASSES)  # both classes: the rows are not all alike
    reference = np.asarray(answers["/predict"][1])
    for name, (_, proba) in answers.items():
        if proba is not None:
            np.testing.assert_allclose(np.asarray(proba), reference, atol=1e-9, err_msg=name)


@pytest.mark.parametrize(("feature", "value", "text", "message"), BAD)
def test_a_bad_value_gets_the_same_error_from_every_api_protocol(
    api: TestClient, feature: str, value: Any, text: str, message: str
) -> None:
    messages = api_errors(api, feature, value, text)
    assert {name: [message] for name in messages} == messages


def test_bad_rows_get_the_same_errors_from_every_command(cli: Runner, trained: Path) -> None:
    """One file, one bad value per row (and a good first row): every command names each bad row with
    the API's message."""
    rows = [GOOD[0], *({**GOOD[0], feature: None} for feature, *_ in BAD)]
    lines = csv_text(rows, ids=True).splitlines()
    for number, (feature, _, text, _) in enumerate(BAD, start=2):
        fields = lines[number].split(",")
        fields[1 + FEATURES.index(feature)] = text
        lines[number] = ",".join(fields)
    (trained / "bad.csv").write_text("\n".join(lines) + "\n")
    expected = [f"{feature}: {message}" for feature, _, _, message in BAD]

    local = cli("predict", "mixed", "-i", "bad.csv", "-o", "never.csv")
    assert local.code != 0 and not (trained / "never.csv").exists()
    said = _one_line(local.stderr).partition("invalid input: ")[2]
    found = [re.match(r"row (\d+): (.*)", part) for part in re.split(r"; (?=row \d+: )", said)]
    assert [(int(m[1]), m[2]) for m in found if m] == list(enumerate(expected, start=2)), local.stderr

    batch = cli(
        "batch", "score", "mixed", "-i", "bad.csv", "-o", "b.csv", "--keep", "id", "--on-error", "skip", "-q"
    )
    assert batch.code == 0, batch.stderr
    rejects = pd.read_csv(trained / "b.csv.rejects.csv", keep_default_na=False)
    assert rejects["_row"].tolist() == [2, 3, 4, 5, 6]
    assert rejects["_error"].tolist() == expected
    assert pd.read_csv(trained / "b.csv")["id"].tolist() == [1]

    spark = cli(
        "batch", "score", "mixed", "-i", "bad.csv", "-o", "s.csv", "--keep", "id", "-q",
        "--engine", "spark", "--master", "local[1]",
    )  # fmt: skip
    assert spark.code != 0 and not (trained / "s.csv").exists()
    said = _one_line(spark.stderr)
    for number, text in enumerate(expected, start=2):
        assert f"id={number}: {text}" in said, (text, spark.stderr[-3000:])


def _one_line(text: str) -> str:
    """A CLI error as one line (the console wraps long messages)."""
    return " ".join(io.StringIO(text).read().split())
