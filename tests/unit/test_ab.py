"""A/B tests: sticky split routing by a stable hash, shadow mode, the variant on answers, logs and
metrics, and the holder following the challenger alias."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from shipyard.config import Settings
from shipyard.config.loading import parse_config
from shipyard.monitoring.store import MonitoringStore
from shipyard.registry.models import LoadedModel, ModelVersionInfo
from shipyard.serving import create_app
from shipyard.serving.ab import bucket
from shipyard.serving.holder import HolderObserver, ModelHolder, ServedModel
from tests.conftest import merge, raw_config, shifted_iris_rows
from tests.unit.conftest import IRIS_ROWS, loaded_from_config, served


@pytest.fixture(scope="module")
def weak_iris() -> LoadedModel:
    """A different model for the same name: one stump, so it disagrees with the champion on some rows."""
    cfg = parse_config(merge(raw_config("iris"), {"model": {"params": {"n_estimators": 1, "max_depth": 1}}}))
    return loaded_from_config(cfg, version="2")[0]


def challenger_of(loaded: LoadedModel) -> ServedModel:
    return ServedModel(loaded, "challenger", datetime.now(tz=UTC))


@pytest.fixture
def ab_client(iris_loaded: tuple[LoadedModel, Any], weak_iris: LoadedModel, tmp_path: Path) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(challenger: ServedModel | None = None, **overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "auth_enabled": False,
            "models": ["iris"],
            "reload_interval_seconds": 0,
            "prediction_log_path": tmp_path / "log.db",
            "ab_mode": "split",
            "ab_split": 0.5,
        }
        values.update(overrides)
        holder = ModelHolder.of(served(iris_loaded[0]), challengers=(challenger or challenger_of(weak_iris),))
        client = TestClient(create_app(Settings(**values), holder), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_the_bucket_is_stable_across_processes_and_splits_evenly() -> None:
    keys = [f"user-{i}" for i in range(2000)]
    here = [bucket("iris", k) for k in keys]
    script = (
        "import json, sys; from shipyard.serving.ab import bucket; "
        "print(json.dumps([bucket('iris', f'user-{i}') for i in range(2000)]))"
    )
    for seed in ("1", "2"):  # Python's own str hash differs per process; ours must not
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert json.loads(out.stdout) == here
    share = sum(b < 0.1 for b in here) / len(here)
    assert 0.08 < share < 0.12  # a 90/10 split is about 90/10
    assert bucket("iris", "user-1") != bucket("housing", "user-1")  # models split independently


def test_split_is_sticky_by_header_and_names_the_variant(ab_client: Any) -> None:
    client = ab_client()
    seen: dict[str, set[str]] = {}
    for i in range(40):
        key = f"user-{i % 8}"
        answer = client.post("/predict", json=IRIS_ROWS[0], headers={"X-Shipyard-Key": key})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert answer.headers["x-shipyard-variant"] == body["variant"]
        assert body["version"] == ("2" if body["variant"] == "challenger" else "1")
        assert body["alias"] == body["variant"]
        seen.setdefault(key, set()).add(body["variant"])
    assert all(len(v) == 1 for v in seen.values())  # sticky: one variant per key
    assert {v for s in seen.values() for v in s} == {"champion", "challenger"}
    for key, variants in seen.items():  # and it is the hash's choice, not an accident of order
        assert variants == {"challenger" if bucket("iris", key) < 0.5 else "champion"}


def test_the_key_can_be_a_request_field_the_model_never_sees(ab_client: Any) -> None:
    client = ab_client(ab_key_field="user_id")
    keys = [f"u{i}" for i in range(12)]
    for key in keys:
        expected = "challenger" if bucket("iris", key) < 0.5 else "champion"
        one = client.post("/predict", json={**IRIS_ROWS[0], "user_id": key})
        assert one.status_code == 200, one.text
        many = client.post("/predict", json={"user_id": key, "records": IRIS_ROWS})
        assert many.status_code == 200, many.text
        v2 = client.post(
            "/v2/models/iris/infer",
            json={
                "parameters": {"user_id": key},
                "inputs": [
                    {"name": k, "shape": [1], "datatype": "FP64", "data": [v]}
                    for k, v in IRIS_ROWS[0].items()
                ],
            },
        )
        assert v2.status_code == 200, v2.text
        assert one.json()["variant"] == many.json()["variant"] == expected
        assert v2.json()["parameters"]["variant"] == expected


def test_split_extremes_and_no_key_routes_at_random(ab_client: Any) -> None:
    none = ab_client(ab_split=0.0)
    assert {none.post("/predict", json=IRIS_ROWS[0]).json()["variant"] for _ in range(20)} == {"champion"}
    all_ = ab_client(ab_split=1.0)
    assert {all_.post("/predict", json=IRIS_ROWS[0]).json()["variant"] for _ in range(20)} == {"challenger"}
    half = ab_client(ab_split=0.5)
    drawn = Counter(half.post("/predict", json=IRIS_ROWS[0]).json()["variant"] for _ in range(200))
    assert 60 < drawn["challenger"] < 140  # random without a key (p of failing ~ 1e-5)
    invocation = half.post("/invocations", json={"dataframe_records": IRIS_ROWS})
    assert invocation.headers["x-shipyard-variant"] in {"champion", "challenger"}


def test_shadow_never_changes_the_answer_and_logs_both(
    ab_client: Any, iris_loaded: tuple[LoadedModel, Any], tmp_path: Path
) -> None:
    import numpy as np

    rows = IRIS_ROWS + shifted_iris_rows(np.random.default_rng(3), 30)
    plain = ab_client(ab_mode="off", prediction_log=False)
    expected = plain.post("/predict", json={"records": rows}).json()
    client = ab_client(ab_mode="shadow")
    answers = []
    for i, row in enumerate(rows):
        answer = client.post("/predict", json=row, headers={"x-request-id": f"r{i}"})
        assert answer.json()["variant"] == "champion" and answer.json()["version"] == "1"
        answers.append(answer.json()["predictions"][0])
    assert answers == expected["predictions"]
    big = client.post("/predict", json={"records": rows * 3}, headers={"x-request-id": "big"})
    assert big.json()["predictions"] == expected["predictions"] * 3  # the threadpool path too

    feedback = client.post("/feedback", json={"request_id": "r0", "label": "setosa"}).json()
    assert set(feedback["live_quality"]) == {"iris v1 (champion)", "iris v2 (shadow)"}
    metrics = client.get("/metrics").text
    assert 'shipyard_predictions_total{label="setosa",model="iris",variant="shadow",version="2"}' in metrics
    assert 'shipyard_model_latency_seconds_count{model="iris",variant="shadow"}' in metrics
    client.__exit__(None, None, None)  # flush the log

    logged = MonitoringStore.open(f"sqlite:///{tmp_path / 'log.db'}").read_log("iris", include_shadow=True)
    by_variant = logged.groupby("_variant")["_request_id"].apply(set)
    assert by_variant["champion"] == by_variant["shadow"]  # every request, both answers
    assert set(logged[logged["_variant"] == "shadow"]["_version"]) == {"2"}
    disagree = logged.pivot_table(
        index=["_request_id"], columns="_variant", values="_prediction", aggfunc="first"
    )
    assert (disagree["champion"] != disagree["shadow"]).any()  # the stump really is another model
    assert set(MonitoringStore.open(f"sqlite:///{tmp_path / 'log.db'}").read_log("iris")["_variant"]) == {
        "champion"
    }  # drift's view


def test_a_failing_shadow_is_counted_and_never_reaches_the_client(
    ab_client: Any, iris_loaded: tuple[LoadedModel, Any]
) -> None:
    class Broken:
        def predict(self, frame: pd.DataFrame) -> Any:
            raise RuntimeError("challenger bug")

    base = iris_loaded[0]
    loaded = LoadedModel(Broken(), "iris", "3", "run-3", base.inputs, {}, None, {})
    client = ab_client(challenger=challenger_of(loaded), ab_mode="shadow", fast_path=False)
    answer = client.post("/predict", json=IRIS_ROWS[0])
    assert answer.status_code == 200 and answer.json()["predictions"] == ["setosa"]
    assert 'shipyard_shadow_errors_total{model="iris"} 1.0' in client.get("/metrics").text


def test_model_detail_reports_the_test(ab_client: Any) -> None:
    detail = ab_client(ab_split=0.1).get("/models/iris").json()["ab_test"]
    assert detail["mode"] == "split" and detail["split"] == 0.1
    assert detail["challenger"]["version"] == "2" and detail["challenger"]["alias"] == "challenger"


class TwoAliases:
    """A registry stand-in with a version per alias."""

    def __init__(self, base: LoadedModel) -> None:
        self.base = base
        self.aliases: dict[str, str] = {"champion": "1"}

    def resolve(self, name: str, alias: str) -> ModelVersionInfo | None:
        version = self.aliases.get(alias)
        if version is None:
            return None
        return ModelVersionInfo(name, version, [alias], "run", datetime.now(tz=UTC), {})

    def load(self, name: str, ref: str) -> LoadedModel:
        b = self.base
        return LoadedModel(b.model, name, ref, f"run-{ref}", b.inputs, b.tags, b.input_example, b.metrics)


def test_the_holder_follows_the_challenger_alias_and_retires_it(
    iris_loaded: tuple[LoadedModel, Any],
) -> None:
    fake = TwoAliases(iris_loaded[0])
    retired: list[str] = []
    holder = ModelHolder(["iris"], "champion", fake.load, fake.resolve, challenger_names=["iris"])

    class Retirements(HolderObserver):
        def retired(self, old: ServedModel) -> None:
            retired.append(old.version)

    holder.observe(Retirements())
    outcome = asyncio.run(holder.refresh())
    assert outcome == {"iris": "loaded version 1", "iris@challenger": "no challenger"}
    fake.aliases["challenger"] = "2"
    assert asyncio.run(holder.refresh())["iris@challenger"] == "loaded version 2"
    challenger = holder.challenger("iris")
    assert challenger is not None and challenger.version == "2" and challenger.alias == "challenger"
    # the gate promotes it: champion moves, challenger alias is cleared
    fake.aliases = {"champion": "2"}
    outcome = asyncio.run(holder.refresh())
    assert outcome == {
        "iris": "loaded version 2 (was 1)",
        "iris@challenger": "challenger version 2 retired (alias gone)",
    }
    assert holder.challenger("iris") is None and retired == ["2"]
    assert holder.get("iris").version == "2"


def test_shutdown_waits_for_shadow_scorings_then_gives_up(iris_loaded: tuple[LoadedModel, Any]) -> None:
    """The data plane's drain: a finished shadow is awaited; one still running past the bound is cut."""
    from shipyard.config import Settings
    from shipyard.serving.dataplane import DataPlane
    from shipyard.serving.metrics import ServiceMetrics

    async def scenario() -> tuple[int, int, list[str]]:
        plane = DataPlane(Settings(), ServiceMetrics())
        done: list[str] = []

        async def quick() -> None:
            await asyncio.sleep(0.05)
            done.append("quick")

        async def stuck() -> None:
            await asyncio.sleep(60)

        plane._background.add(asyncio.create_task(quick()))
        first = await plane.drain(timeout=5)
        task = asyncio.create_task(stuck())
        plane._background.add(task)
        second = await plane.drain(timeout=0.1)
        return first, second, done

    first, second, done = asyncio.run(scenario())
    assert (first, second, done) == (0, 1, ["quick"])
