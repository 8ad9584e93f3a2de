"""A registry outage, for real: a `shipyard serve` process follows a real `mlflow server`, which is then
stopped (SIGSTOP: connections hang) and killed (SIGKILL: connections refused). The service must say so
within one check interval plus the registry timeout, answer `/admin/reload` with a 503 naming the
registry within its stated bound, and keep predicting throughout."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
INTERVAL = 1.0  # SHIPYARD_RELOAD_INTERVAL_SECONDS
TIMEOUT = 2.0  # SHIPYARD_REGISTRY_TIMEOUT_SECONDS
RELOAD_BOUND = TIMEOUT + 1.0  # what the README and the route promise
SLACK = 2.0  # polling and a busy 2-core machine
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
SECRET = "s3cret-in-the-uri"


def _env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "MLFLOW_"))}
    return {**base, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGCONT first (a stopped group would ignore SIGTERM), then SIGTERM, then SIGKILL."""
    for sig in (signal.SIGCONT, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader too
    proc.wait(timeout=grace)


def _wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout:.0f} s; log:\n{log.read_text()[-3000:]}")


@dataclass
class Stack:
    mlflow: subprocess.Popen[bytes]
    mlflow_url: str
    api: str
    api_log: Path


@pytest.fixture
def stack(tmp_path: Path, migrated_store: Path, repo_root: Path) -> Iterator[Stack]:
    """A private `mlflow server` with iris registered, and `shipyard serve` following it."""
    shutil.copy(migrated_store, tmp_path / "server.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(BIN / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination", (tmp_path / "artifacts").as_uri(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with (tmp_path / "mlflow.log").open("wb") as log:
        mlflow = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env({}),
            start_new_session=True,
        )
    api: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(lambda: _answers(f"{url}/health"), 90, "mlflow server up", tmp_path / "mlflow.log")
        shutil.copytree(repo_root / "configs", tmp_path / "configs")
        config = tmp_path / "configs" / "iris.yaml"
        config.write_text(config.read_text().replace("n_estimators: 100", "n_estimators: 20"))
        trained = subprocess.run(
            [str(BIN / "shipyard"), "train", "-c", "configs/iris.yaml", "-q"],
            cwd=tmp_path,
            env=_env({"MLFLOW_TRACKING_URI": url}),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert trained.returncode == 0, trained.stderr
        api_port = free_port()
        api_log = tmp_path / "serve.log"
        with api_log.open("wb") as log:
            api = subprocess.Popen(
                [str(BIN / "shipyard"), "serve", "--port", str(api_port), "--models", "iris", "--no-auth"],
                cwd=tmp_path,
                env=_env(
                    {
                        # credentials in the URI (the server ignores them): no answer may show them
                        "MLFLOW_TRACKING_URI": f"http://outage:{SECRET}@127.0.0.1:{port}",
                        "SHIPYARD_HOME": str(tmp_path),
                        "SHIPYARD_RELOAD_INTERVAL_SECONDS": str(INTERVAL),
                        "SHIPYARD_REGISTRY_TIMEOUT_SECONDS": str(TIMEOUT),
                    }
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_for(lambda: _answers(f"{api_url}/ready"), 120, "shipyard serve ready", api_log)
        yield Stack(mlflow, url, api_url, api_log)
    finally:
        _stop_group(mlflow)
        if api is not None:
            _stop_group(api)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _registry(stack: Stack) -> dict[str, object]:
    answer = httpx.get(f"{stack.api}/models/iris", timeout=5)
    assert answer.status_code == 200, answer.text
    assert SECRET not in answer.text
    registry: dict[str, object] = answer.json()["registry"]
    return registry


def _predicts(stack: Stack) -> None:
    answer = httpx.post(f"{stack.api}/predict", json=ROW, timeout=5)
    assert answer.status_code == 200 and "setosa" in answer.text, answer.text


def _outage(stack: Stack, how: signal.Signals) -> None:
    assert _registry(stack)["reachable"] is True
    os.killpg(stack.mlflow.pid, how)
    stopped = time.monotonic()
    bound = INTERVAL + TIMEOUT + SLACK
    while _registry(stack)["reachable"] is not False:
        _predicts(stack)
        assert time.monotonic() - stopped < bound, f"still 'reachable' {bound} s after {how.name}"
        time.sleep(0.1)
    seen = time.monotonic() - stopped
    error = str(_registry(stack)["error"])
    assert SECRET not in error and "127.0.0.1" in error, error

    started = time.monotonic()
    reload = httpx.post(f"{stack.api}/admin/reload", timeout=RELOAD_BOUND + 10)
    took = time.monotonic() - started
    assert reload.status_code == 503, reload.text
    assert took <= RELOAD_BOUND + 0.5, f"/admin/reload took {took:.1f} s during {how.name}"
    detail = reload.json()["detail"]
    assert stack.mlflow_url in detail and SECRET not in detail, detail
    assert "still serving iris v1" in detail
    _predicts(stack)
    assert httpx.get(f"{stack.api}/ready", timeout=5).status_code == 200
    print(f"{how.name}: unreachable shown after {seen:.1f} s, /admin/reload 503 in {took:.1f} s")


def test_registry_outages_are_reported_in_time_and_reload_answers_503(stack: Stack) -> None:
    _outage(stack, signal.SIGSTOP)

    os.killpg(stack.mlflow.pid, signal.SIGCONT)
    resumed = time.monotonic()
    while _registry(stack)["reachable"] is not True:
        assert time.monotonic() - resumed < INTERVAL + 2 * TIMEOUT + SLACK, "not reachable after SIGCONT"
        time.sleep(0.1)
    reload = httpx.post(f"{stack.api}/admin/reload", timeout=RELOAD_BOUND + 10)
    assert reload.status_code == 200 and reload.json()["models"] == {"iris": "unchanged"}, reload.text

    _outage(stack, signal.SIGKILL)
