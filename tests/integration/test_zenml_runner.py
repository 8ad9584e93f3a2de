"""The ZenML runner: the same six step functions as a ZenML pipeline (local orchestrator, offline, its
store under the test's folder). A version it registers carries the same lineage as one the plain runner
registers from the same config, except the runner tag, and the gate ran on it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.config import Settings
from shipyard.pipeline import run_training
from shipyard.pipeline.steps import RUNNER_TAG
from shipyard.registry import ModelRegistry
from shipyard.registry.lineage import TAG_PREFIX
from shipyard.registry.models import DECISION_TAG
from tests.conftest import ConfigFactory, missing_external

pytestmark = pytest.mark.integration


def test_importing_the_runner_imports_neither_zenml_nor_mlflow() -> None:
    code = (
        "import sys, shipyard.orchestration.zenml_runner; "
        "print(sorted(m for m in ('zenml', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_zenml_the_runner_says_how_to_install_it(
    settings: Settings, iris_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from shipyard.errors import ConfigError
    from shipyard.orchestration import zenml_runner

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "zenml" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[zenml\]'"):
        zenml_runner.run_zenml(iris_config(), settings)
    assert not (settings.home / ".zen").exists()


def _shipyard_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith(TAG_PREFIX)}


# ZenML's store imports passlib, which imports the `crypt` module Python 3.13 removes
@pytest.mark.filterwarnings("ignore:'crypt' is deprecated:DeprecationWarning")
def test_zenml_version_has_the_plain_runners_lineage(
    settings: Settings, iris_config: ConfigFactory, tmp_path: Path
) -> None:
    if importlib.util.find_spec("zenml") is None:
        missing_external("the ZenML runner needs the extra: pip install -e '.[zenml]'")
    from mlflow import MlflowClient

    from shipyard.orchestration.zenml_runner import run_zenml

    config_dir = os.environ.get("ZENML_CONFIG_PATH")
    config = iris_config()

    plain = run_training(config, settings)
    zen = run_zenml(config, settings)

    # ZenML kept everything under the project folder, and left the environment as it found it
    assert (tmp_path / ".zen" / "global" / "config.yaml").is_file()
    assert list((tmp_path / ".zen" / "global" / "local_stores").glob("*/zenml.db"))
    assert os.environ.get("ZENML_CONFIG_PATH") == config_dir

    # the same result shape as run_training's, for the CLI and the DVC stage outputs
    assert zen.runner == "zenml"
    assert (zen.model_name, zen.config, zen.tracking_uri) == (
        plain.model_name,
        plain.config,
        plain.tracking_uri,
    )
    assert zen.version != plain.version
    assert zen.metrics == plain.metrics  # seeded: same split, same forest
    assert zen.data_hash == plain.data_hash
    assert zen.rows == plain.rows
    assert set(zen.seconds) >= {"load+validate", "fit", "evaluate", "track+register", "gate"}
    assert zen.test_predictions and len(zen.test_truth) == zen.rows["test"]

    registry = ModelRegistry(settings)
    plain_tags = _shipyard_tags(registry.get_version(plain.model_name, plain.version).tags)
    zen_tags = _shipyard_tags(registry.get_version(zen.model_name, zen.version).tags)
    assert set(zen_tags) == set(plain_tags)
    for key in ("data_hash", "config_hash", "data_uri", "git_commit", "package_version"):
        assert zen_tags[f"{TAG_PREFIX}{key}"] == plain_tags[f"{TAG_PREFIX}{key}"], key
    assert (plain_tags[RUNNER_TAG], zen_tags[RUNNER_TAG]) == ("cli", "zenml")
    assert zen_tags[DECISION_TAG] in ("promoted", "rejected")  # the gate ran
    assert zen.decision.reason

    client = MlflowClient(tracking_uri=settings.store_uri)
    plain_run = _shipyard_tags(client.get_run(plain.run_id).data.tags)
    zen_run = _shipyard_tags(client.get_run(zen.run_id).data.tags)
    assert set(zen_run) == set(plain_run)
    assert zen_run[RUNNER_TAG] == "zenml"
    assert zen_run[f"{TAG_PREFIX}promoted"] == str(zen.promoted).lower()
    assert client.get_run(zen.run_id).data.metrics["test_f1_macro"] == plain.metrics["f1_macro"]
