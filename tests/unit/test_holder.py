"""Hot swap: a new version is loaded and warmed beside the old one; failures keep the old one."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pandas as pd
import pytest

from shipyard.errors import RegistryError
from shipyard.registry.deadline import RegistryDeadline, redact_uri
from shipyard.registry.models import LoadedModel, ModelVersionInfo
from shipyard.serving.holder import HolderObserver, ModelHolder, ServedModel
from tests.unit.conftest import IRIS_ROWS


class FakeRegistry:
    """Stands in for the MLflow registry: which version the alias points at, and how loading goes."""

    def __init__(self, base: LoadedModel) -> None:
        self.base = base
        self.alias_version: str | None = "1"
        self.broken_versions: set[str] = set()
        self.unreachable = False
        self.loads: list[str] = []
        self.checks: list[str] = []
        self.hang = threading.Event()  # while clear, a hanging registry: calls wait for it
        self.hang.set()
        self.slow_load = threading.Event()  # while clear, loads wait for it (the registry still answers)
        self.slow_load.set()

    def resolve(self, name: str, alias: str) -> ModelVersionInfo | None:
        self.checks.append(name)
        self.hang.wait(30)
        if self.unreachable:
            raise RegistryError("cannot reach http://registry: connection refused")
        if self.alias_version is None:
            return None
        return ModelVersionInfo(
            name, self.alias_version, [alias], "run", pd.Timestamp.now(tz="UTC").to_pydatetime(), {}
        )

    def load(self, name: str, ref: str) -> LoadedModel:
        self.loads.append(ref)
        self.slow_load.wait(30)
        if ref in self.broken_versions:
            raise OSError(f"artifact for version {ref} is corrupt")
        b = self.base
        return LoadedModel(b.model, name, ref, f"run-{ref}", b.inputs, b.tags, b.input_example, b.metrics)


def make(
    iris_loaded: tuple[LoadedModel, Any], names: tuple[str, ...] = ("iris",), **bounds: float
) -> tuple[ModelHolder, FakeRegistry, list[str]]:
    fake = FakeRegistry(iris_loaded[0])
    events: list[str] = []
    holder = ModelHolder(
        list(names),
        "champion",
        fake.load,
        fake.resolve,
        where="http://registry.example:5000",
        **bounds,
    )
    holder.observe(Events(events))
    return holder, fake, events


class Events(HolderObserver):
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def load_failed(self, name: str) -> None:
        self.events.append(f"load-failure:{name}")

    def check_failed(self) -> None:
        self.events.append("check-failure")

    def swapped(self, new: ServedModel, old: ServedModel | None) -> None:
        self.events.append(f"swap:{old.version if old else None}->{new.version}")


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
        reload = client.post("/admin/reload")
        assert reload.status_code == 503
        assert "http://registry.example:5000 is unreachable" in reload.json()["detail"]
        assert "still serving iris v1" in reload.json()["detail"]
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


def test_a_hanging_registry_shows_within_one_check_and_is_not_asked_again_while_it_hangs(
    iris_loaded: tuple[LoadedModel, Any],
) -> None:
    holder, fake, events = make(iris_loaded, names=("iris", "iris-2"), check_seconds=0.5)
    asyncio.run(holder.refresh())
    fake.hang.clear()
    try:
        fake.checks.clear()
        started = time.monotonic()
        outcome = asyncio.run(holder.refresh())
        took = time.monotonic() - started
        assert outcome == {"iris": "registry unreachable", "iris-2": "registry unreachable"}
        assert took < 0.5 + 0.5, f"a round with a hanging registry took {took:.2f} s"
        assert fake.checks == ["iris"]  # the round stops asking once the registry failed a check
        assert not holder.registry.reachable
        assert "no answer from the registry at http://registry.example:5000 within 0.5 s" in str(
            holder.registry.error
        )
        assert holder.ready and holder.get("iris").version == "1"
        # still hanging: the next check fails at once instead of piling up another waiting thread
        started = time.monotonic()
        assert asyncio.run(holder.refresh())["iris"] == "registry unreachable"
        assert time.monotonic() - started < 0.45  # well under the 0.5 s deadline: it did not wait
        assert fake.checks == ["iris"] and "has not answered an earlier call" in str(holder.registry.error)
    finally:
        fake.hang.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and asyncio.run(holder.refresh())["iris"] != "unchanged":
        time.sleep(0.05)
    assert holder.registry.reachable and events.count("check-failure") >= 2


def test_reload_answers_503_within_its_bound_while_the_registry_hangs(
    iris_loaded: tuple[LoadedModel, Any],
) -> None:
    holder, fake, _ = make(iris_loaded, check_seconds=0.5)
    asyncio.run(holder.refresh())
    assert holder.reload_seconds == 1.5
    fake.hang.clear()
    try:

        async def scheduled_and_reload() -> float:
            background = asyncio.ensure_future(holder.refresh())  # a scheduled check, already waiting
            await asyncio.sleep(0.1)
            started = time.monotonic()
            with pytest.raises(RegistryError, match=r"http://registry\.example:5000.*still serving iris v1"):
                await holder.reload()
            await background
            return time.monotonic() - started

        took = asyncio.run(scheduled_and_reload())
        assert took <= holder.reload_seconds + 0.2, f"reload took {took:.2f} s"
    finally:
        fake.hang.set()


def test_reload_waits_for_a_version_the_registry_handed_over(iris_loaded: tuple[LoadedModel, Any]) -> None:
    holder, fake, events = make(iris_loaded, check_seconds=0.3)
    asyncio.run(holder.refresh())
    fake.alias_version = "2"
    fake.slow_load.clear()  # the registry answered the check; the load takes longer than the reload bound
    release = threading.Timer(holder.reload_seconds + 0.5, fake.slow_load.set)
    release.start()
    try:
        answer = asyncio.run(holder.reload())
    finally:
        release.cancel()
        fake.slow_load.set()
    assert answer == {"iris": "loaded version 2 (was 1)"}
    assert holder.get("iris").version == "2" and events[-1] == "swap:1->2"


def test_a_deadline_hands_back_the_answer_or_the_error_of_a_prompt_call() -> None:
    deadline = RegistryDeadline("http://registry.example:5000", 2.0)
    assert deadline.call("answer", lambda: 42) == 42

    def refused() -> int:
        raise RegistryError("connection refused")

    with pytest.raises(RegistryError, match="connection refused"):
        deadline.call("refused", refused)


def test_registry_uris_are_shown_without_credentials() -> None:
    assert redact_uri("https://user:s3cret@mlflow.example.com/api") == "https://mlflow.example.com/api"
    assert redact_uri("API request to http://tok@10.0.0.1:5000/x failed") == (
        "API request to http://10.0.0.1:5000/x failed"
    )
    assert redact_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def test_the_first_check_may_take_as_long_as_a_load(iris_loaded: tuple[LoadedModel, Any]) -> None:
    """Start-up's first alias check imports MLflow's client and opens the store: slow on a busy
    machine, and no sign of an outage. It gets the load deadline; later checks the short one."""
    holder, fake, _ = make(iris_loaded, check_seconds=0.2, load_seconds=10)
    fake.hang.clear()
    threading.Timer(0.6, fake.hang.set).start()  # the first answer comes after three check deadlines
    assert asyncio.run(holder.refresh()) == {"iris": "loaded version 1"}
    assert holder.ready and holder.registry.reachable
    fake.hang.clear()
    try:
        assert asyncio.run(holder.refresh()) == {"iris": "registry unreachable"}
    finally:
        fake.hang.set()
