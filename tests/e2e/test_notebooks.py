"""The notebooks run top to bottom, as a user runs them: in a workspace with trained models in the
embedded store, in a Jupyter kernel on the project's own Python, without Shipyard or MLflow settings.

The kernel: the notebooks ask for the kernelspec ``shipyard`` (what ``make notebook`` installs into the
venv). Here a kernelspec of that name whose argv starts with this interpreter (the venv's Python that
runs the tests) is written into a temporary folder, and JUPYTER_PATH names that folder, which Jupyter
searches before the user's and the system's kernel folders, so no other Python can be picked. A cell
appended to each run checks it: the kernel prints its own ``sys.executable``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from tests.e2e.conftest import Runner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPLORATION = "01_housing_exploration.ipynb"
COMPARE = "02_compare_runs.ipynb"
KERNEL = "shipyard"
PROBE = "import sys\nprint('kernel python:', sys.executable)"


@pytest.fixture
def kernel_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Install the ``shipyard`` kernelspec for this interpreter in a temporary Jupyter path; answer the
    environment the kernel runs with (no SHIPYARD_*, MLFLOW_TRACKING*/REGISTRY* settings)."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python (shipyard .venv)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    assert KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == sys.executable

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHIPYARD_", "MLFLOW_TRACKING", "MLFLOW_REGISTRY", "MPLBACKEND"))
    }
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["IPYTHONDIR"] = str(tmp_path_factory.mktemp("ipython"))  # leave ~/.ipython alone
    return env


def execute(name: str, workspace: Path, env: dict[str, str]) -> NotebookNode:
    """Copy a notebook into the workspace and run every cell there; raises on the first failing cell."""
    (workspace / "notebooks").mkdir(exist_ok=True)
    path = shutil.copy(NOTEBOOKS / name, workspace / "notebooks" / name)
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.kernelspec.name == KERNEL
    saved = [c.id for c in nb.cells if c.get("outputs") or c.get("execution_count")]
    assert not saved, f"{name} is saved with outputs in cells {saved}: clear them"
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(
        nb, timeout=180, kernel_name=KERNEL, resources={"metadata": {"path": str(workspace)}}
    )
    client.execute(env=env)  # cwd: the workspace (resources' path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    assert f"kernel python: {sys.executable}" in text(nb.cells[-1])
    return nb


def text(cell: NotebookNode) -> str:
    """What a cell printed and displayed, as plain text."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)


def tagged(nb: NotebookNode, tag: str) -> str:
    return "\n".join(text(c) for c in nb.cells if tag in c.metadata.get("tags", []))


def images(nb: NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def with_params(workspace: Path, config: str, **params: object) -> None:
    """Change a workspace config's model params (the model name stays the config's)."""
    path = workspace / "configs" / config
    data = yaml.safe_load(path.read_text())
    data["model"]["params"].update(params)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_notebooks_run_top_to_bottom_against_the_embedded_store(
    shipyard: Runner, workspace: Path, kernel_env: dict[str, str]
) -> None:
    # the workspace's copy of housing.yaml fits 20 trees, not 100 (faster training and exploration)
    with_params(workspace, "housing.yaml", n_estimators=20)
    trained = shipyard("train", "-c", "configs/iris.yaml", "-q")
    assert trained.code == 0, trained.stderr

    # only iris is registered: the comparison says how to train housing instead of failing
    partial = execute(COMPARE, workspace, kernel_env)
    versions = tagged(partial, "versions")
    assert "model 'housing' is not registered in this store" in versions
    assert "`make demo` trains both, or `.venv/bin/shipyard train -c configs/housing.yaml`" in versions
    assert "iris version 1 (champion)" in tagged(partial, "predictions")

    # a weak iris forest (registered as version 2, rejected by the gate), then housing
    shutil.copy(workspace / "configs/iris.yaml", workspace / "configs/iris_weak.yaml")
    with_params(workspace, "iris_weak.yaml", n_estimators=3, max_depth=1)
    for config in ("configs/iris_weak.yaml", "configs/housing.yaml"):
        trained = shipyard("train", "-c", config, "-q")
        assert trained.code == 0, trained.stderr

    exploration = execute(EXPLORATION, workspace, kernel_env)
    assert "2930 rows x 82 columns passed every check" in tagged(exploration, "validation")
    assert images(exploration) >= 6

    compare = execute(COMPARE, workspace, kernel_env)
    versions = tagged(compare, "versions")
    assert re.search(r"iris\s+2\s+challenger\s+rejected", versions), versions
    assert re.search(r"iris\s+1\s+champion\s+promoted", versions), versions
    assert re.search(r"housing\s+1\s+champion\s+promoted", versions), versions
    assert "not registered" not in versions
    predictions = tagged(compare, "predictions")
    assert "iris version 1 (champion)" in predictions
    assert re.search(r"setosa\s+setosa", predictions), predictions
    assert images(compare) >= 1
