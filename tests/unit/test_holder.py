"""Hot swap: a new version is loaded and warmed beside the old one; failures keep the old one."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd

from shipyard.errors import RegistryError
from shipyard.registry.models import LoadedModel, ModelVersionInfo
from shipyard.serving.holder import ModelHolder
from tests.unit.conftest import IRIS_ROWS


class FakeRegistry:
    """Stands in for the MLflow registry: which version the alias points at, and how loading goes."""

    def __init__(self, base: LoadedModel) -> None:
        self.base = base
        self.alias_version: str | None = "1"
        self.broken_versions: set[str] = set()
        self.unreachable = False
        self.loads: list[str] = []

    def resolve(self, name: str, alias: str) -> ModelVersionInfo | None:
        if self.unreachable:
            raise RegistryError("cannot reach http://registry: connection refused")
        if self.alias_version is None:
            return None
        return ModelVersionInfo(
            name, self.alias_version, [alias], "run", pd.Timestamp.now(tz="UTC").to_pydatetime(), {}
        )

    def load(self, name: str, ref: str) -> LoadedModel:
        self.loads.append(ref)
        if ref in self.broken_versions:
            raise OSError(f"artifact for version {ref} is corrupt")
        b = self.base
        return LoadedModel(b.model, name, ref, f"run-{ref}", b.inputs, b.tags, b.input_example, b.metrics)


def make(iris_loaded: tuple[LoadedModel, Any]) -> tuple[ModelHolder, FakeRegistry, list[str]]:
    fake = FakeRegistry(iris_loaded[0])
    events: list[str] = []
    holder = ModelHolder(
        ["iris"],
        "champion",
        fake.load,
        fake.resolve,
        on_load_failure=lambda name: events.append(f"load-failure:{name}"),
        on_check_failure=lambda: events.append("check-failure"),
        on_swap=lambda new, old: events.append(f"swap:{old.version if old else None}->{new.version}"),
    )
    return holder, fake, events


def test_follows_the_alias_and_keeps_requests_on_their_version(iris_loaded: tuple[LoadedModel, Any]) -> None:
    holder, fake, events = make(iris_loaded)
    assert not holder.ready
    assert asyncio.run(holder.refresh()) == {"iris": "loaded version 1"}
    assert holder.ready and holder.get("iris").version == "1"
    assert asyncio.run(holder.refresh()) == {"iris": "unchanged"}
    assert fake.loads == ["1"]

    in_flight = holder.get("iris")  # a request that started before the swap
    fake.alias_version = "2"
    assert asyncio.run(holder.refresh()) == {"iris": "loaded version 2 (was 1)"}
    assert holder.get("iris").version == "2"
    assert in_flight.version == "1"
    assert in_flight.predict(
        in_flight.schema.batch_from_records(IRIS_ROWS)
    ).values  # the old one still answers
    assert events == ["swap:None->1", "swap:1->2"]


def test_a_failed_load_keeps_the_old_model(iris_loaded: tuple[LoadedModel, Any]) -> None:
    holder, fake, events = make(iris_loaded)
    asyncio.run(holder.refresh())
    fake.alias_version = "3"
    fake.broken_versions = {"3"}
    assert asyncio.run(holder.refresh()) == {"iris": "load failed"}
    assert holder.get("iris").version == "1" and holder.ready
    assert "load-failure:iris" in events
    assert "corrupt" in holder.errors["iris"]


def test_an_unreachable_registry_keeps_serving(iris_loaded: tuple[LoadedModel, Any]) -> None:
    holder, fake, events = make(iris_loaded)
    asyncio.run(holder.refresh())
    fake.unreachable = True
    assert asyncio.run(holder.refresh()) == {"iris": "registry unreachable"}
    assert holder.ready and holder.get("iris").version == "1"
    assert not holder.registry.reachable and "connection refused" in (holder.registry.error or "")
    assert events[-1] == "check-failure"
    fake.unreachable = False
    asyncio.run(holder.refresh())
    assert holder.registry.reachable


def test_not_ready_until_every_model_loads(iris_loaded: tuple[LoadedModel, Any]) -> None:
    holder, fake, _ = make(iris_loaded)
    fake.alias_version = None
    assert asyncio.run(holder.refresh()) == {"iris": "no such alias"}
    assert not holder.ready
    assert "no version has alias 'champion'" in holder.errors["iris"]


def test_the_service_reports_an_unreachable_registry_and_stays_ready(
    iris_loaded: tuple[LoadedModel, Any],
) -> None:
    from fastapi.testclient import TestClient

    from shipyard.config import Settings
    from shipyard.serving import create_app

    holder, fake, _ = make(iris_loaded)
    asyncio.run(holder.refresh())
    app = create_app(Settings(auth_enabled=False, models=["iris"], reload_interval_seconds=0), holder)
    with TestClient(app) as client:
        fake.unreachable = True
        reload = client.post("/admin/reload").json()
        assert reload["models"] == {"iris": "registry unreachable"}
        assert reload["registry"]["reachable"] is False
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json=IRIS_ROWS[0]).status_code == 200
        detail = client.get("/models/iris").json()
        assert (
            detail["registry"]["reachable"] is False and "connection refused" in detail["registry"]["error"]
        )
        fake.unreachable = False
        fake.alias_version, fake.broken_versions = "2", {"2"}
        assert client.post("/admin/reload").json()["models"] == {"iris": "load failed"}
        metrics = client.get("/metrics").text
        assert 'shipyard_model_load_failures_total{model="iris"} 1.0' in metrics
        assert "shipyard_registry_check_failures_total 1.0" in metrics
        fake.broken_versions = set()
        assert client.post("/admin/reload").json()["models"] == {"iris": "loaded version 2 (was 1)"}
        assert client.post("/predict", json=IRIS_ROWS[0]).json()["version"] == "2"
        assert (
            'shipyard_model_info{alias="champion",model="iris",run_id="run-2",version="2"} 1.0'
            in client.get("/metrics").text
        )
