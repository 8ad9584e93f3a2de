"""The whole loop on real processes: shifted traffic through `shipyard serve` raises the drift gauge,
`shipyard retrain --if-drift` registers a challenger, the service shadows it, `shipyard ab report`
grades both on the feedback, and the champion alias moves only when the gate passes."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import shifted_iris_rows
from tests.e2e.conftest import Runner
from tests.e2e.test_serve import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def wait_for(check: object, what: str, server: Server, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen in {timeout} s; server log: {server.logfile.read_text()[-3000:]}")


def send_traffic(http: httpx.Client, url: str, rng: np.random.Generator, prefix: str, count: int) -> None:
    """Shifted requests, each answered and then labelled (these flowers are virginica)."""
    feedback = []
    for i in range(count):
        rows = shifted_iris_rows(rng, 5)
        rid = f"{prefix}-{i}"
        answer = http.post(f"{url}/predict", json={"records": rows}, headers={"x-request-id": rid})
        assert answer.status_code == 200, answer.text
        feedback.append({"request_id": rid, "labels": ["virginica"] * 5})
    result = http.post(f"{url}/feedback", json={"feedback": feedback})
    assert result.status_code == 200 and result.json()["matched_rows"] == 5 * count, result.text


def test_drift_to_retrain_to_shadow_to_promotion(workspace: Path, shipyard: Runner) -> None:
    assert shipyard("train", "-c", "configs/iris.yaml", "-q").code == 0
    strict = yaml.safe_load((workspace / "configs/iris.yaml").read_text())
    strict["promotion"]["thresholds"] = {"accuracy": 0.9999}
    (workspace / "configs/strict.yaml").write_text(yaml.safe_dump(strict))

    env = {
        "SHIPYARD_AUTH_ENABLED": "false",
        "SHIPYARD_RELOAD_INTERVAL_SECONDS": "1",
        "SHIPYARD_DRIFT_INTERVAL_SECONDS": "1",
        "SHIPYARD_DRIFT_WINDOW": "200",
        "SHIPYARD_AB_MODE": "shadow",
    }
    server = Server(workspace, env)
    rng = np.random.default_rng(11)
    try:
        server.wait_ready()
        url = server.url
        with httpx.Client(timeout=10) as http:
            send_traffic(http, url, rng, "a", 60)

            def drifted() -> bool:
                text = http.get(f"{url}/metrics").text
                return 'shipyard_dataset_drift{model="iris"} 1.0' in text

            wait_for(drifted, "the dataset drift gauge at 1", server)
            report = http.get(f"{url}/models/iris/drift").json()
            assert {"petal_length", "petal_width"} <= set(report["drifted_features"])

            # a challenger the gate rejects: registered, shadowed, never champion
            rejected = shipyard("retrain", "iris", "--if-drift", "-c", "configs/strict.yaml", "-o", "r1.json")
            assert rejected.code == 0, rejected.stdout + rejected.stderr
            first = json.loads((workspace / "r1.json").read_text())
            assert first["ran"] and first["trigger"] == "drift" and first["feedback_rows"] == 300
            assert re.match(r"drift-iris-\d{8}T\d{6}-[0-9a-f]{8}$", first["drift_report_id"])
            training = first["training"]
            assert training["version"] == "2" and not training["promoted"]
            assert training["aliases"] == ["challenger"]

            def shadowing() -> bool:
                detail = http.get(f"{url}/models/iris").json()
                challenger = detail["ab_test"]["challenger"]
                return detail["version"] == "1" and challenger is not None and challenger["version"] == "2"

            wait_for(shadowing, "challenger v2 loaded in shadow mode beside champion v1", server)
            send_traffic(http, url, rng, "b", 40)
            answer = http.post(f"{url}/predict", json=shifted_iris_rows(rng, 1)[0])
            assert answer.json()["variant"] == "champion" and answer.json()["version"] == "1"
            metrics = http.get(f"{url}/metrics").text
            assert 'variant="shadow",version="2"' in metrics
            assert 'shipyard_live_quality{metric="n",model="iris",variant="shadow",version="2"}' in metrics
            # a graceful stop (SIGTERM, as Kubernetes sends) drains the prediction log: the report that
            # follows must see every request, which also proves no logged prediction is lost at shutdown
            assert server.stop() in (0, -15)

            ab = shipyard("ab", "report", "iris", "-o", "ab.json")
            assert ab.code == 0, ab.stdout + ab.stderr
            graded = json.loads((workspace / "ab.json").read_text())
            assert graded["mode"] == "shadow" and graded["test"].startswith("McNemar")
            rows = {v["variant"]: (v["version"], v["rows"]) for v in graded["variants"]}
            assert rows == {"champion": ("1", 200), "shadow": ("2", 200)}
            assert graded["verdict"] in {"promote", "keep-champion", "keep-collecting"}

            server = Server(workspace, env)  # the service again, to follow the promotion below
            server.wait_ready()
            url = server.url

            # a retrain through the champion's own config: the alias moves if and only if the gate passes
            second = shipyard("retrain", "iris", "--if-drift", "-o", "r2.json")
            assert second.code == 0, second.stdout + second.stderr
            outcome = json.loads((workspace / "r2.json").read_text())["training"]
            assert outcome["version"] == "3"
            listed = shipyard("models", "list", "iris", "-o", "models.json")
            assert listed.code == 0
            aliases = {
                v["version"]: v["aliases"]
                for v in json.loads((workspace / "models.json").read_text())["iris"]
            }
            if outcome["promoted"]:
                assert aliases["3"] == ["champion"] and aliases["1"] == []
                wait_for(
                    lambda: http.get(f"{url}/models/iris").json()["version"] == "3", "swap to v3", server
                )
            else:
                assert aliases["1"] == ["champion"] and aliases["3"] == ["challenger"]
    finally:
        assert server.stop() in (0, -15)
