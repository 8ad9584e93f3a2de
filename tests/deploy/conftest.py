"""Deployment-file fixtures (CI workflows, container, Kubernetes, Prometheus/Grafana): the service whose
/metrics the dashboards and alert rules must match. Every test in this tier is marked ``deploy``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shipyard.config import Settings
from shipyard.serving import create_app
from shipyard.serving.holder import ModelHolder
from tests.conftest import ConfigFactory
from tests.unit.conftest import loaded_from_config, served


@pytest.fixture
def client(iris_config: ConfigFactory) -> Iterator[TestClient]:
    """The service (lifespan running) around an iris model trained in memory: no registry needed."""
    loaded, _ = loaded_from_config(iris_config())
    settings = Settings(auth_enabled=False, models=["iris"], reload_interval_seconds=0)
    with TestClient(create_app(settings, ModelHolder.of(served(loaded))), raise_server_exceptions=False) as c:
        yield c
