"""Alert rules, scrape config and dashboards: valid for Prometheus, and only about metrics we export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.conftest import missing_external

pytestmark = pytest.mark.deploy

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        missing_external("promtool (Debian package 'prometheus', installed by .ci/run) is not installed")
    return subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_rules_and_config_pass_promtool() -> None:
    prometheus = DEPLOY / "prometheus"
    checked = promtool("check", "rules", "rules/shipyard.yml", cwd=prometheus)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = yaml.safe_load((prometheus / "rules/shipyard.yml").read_text())
    count = sum(len(group["rules"]) for group in rules["groups"])
    assert count >= 10
    assert f"SUCCESS: {count} rules found" in checked.stdout
    tested = promtool("test", "rules", "tests/shipyard_test.yml", cwd=prometheus)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    config = promtool("check", "config", "--syntax-only", "prometheus.yml", cwd=prometheus)
    assert config.returncode == 0, config.stdout + config.stderr


def _expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus/rules/shipyard.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs += [str(r["annotations"]) for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((DEPLOY / "grafana/dashboards/shipyard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return exprs


def test_dashboards_and_rules_use_only_metrics_the_service_exports(client: TestClient) -> None:
    exposition = client.get("/metrics").text
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, flags=re.MULTILINE))
    referenced = {name for expr in _expressions() for name in re.findall(r"\bshipyard_[a-z0-9_]+", expr)}
    assert referenced, "no metric referenced"

    def exported(name: str) -> bool:
        if name in families:
            return True
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        return families.get(base) == "histogram"

    missing = sorted(n for n in referenced if not exported(n))
    assert missing == [], f"referenced but not exported: {missing}"
    # and the important families are on a dashboard
    for family in ("shipyard_live_quality", "shipyard_dataset_drift_share", "shipyard_feature_drift_score"):
        assert family in referenced


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/shipyard.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    dashboard = json.loads((DEPLOY / "grafana/dashboards/shipyard.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    alertmanager = yaml.safe_load((DEPLOY / "alertmanager/alertmanager.yml").read_text())
    receivers = {r["name"] for r in alertmanager["receivers"]}
    assert alertmanager["route"]["receiver"] in receivers
    assert all(r["receiver"] in receivers for r in alertmanager["route"]["routes"])


def test_prometheus_scrapes_the_monitor_and_the_model_health_rules_follow_it(tmp_path: Path) -> None:
    """The drift and live-quality gauges come from the monitor's job when a monitor runs and from the
    api's when it computes in-process, so the rules on them name no job; the monitor's job has one name
    in every place that scrapes it (Compose, `shipyard stack up`, the ServiceMonitor's Service), the one
    ShipyardMonitorDown watches."""
    from shipyard.orchestration.stack.prometheus import prometheus_config

    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"shipyard", "shipyard-monitor"}
    assert jobs["shipyard-monitor"]["static_configs"][0]["targets"] == ["monitor:8100"]
    assert jobs["shipyard-monitor"]["metrics_path"] == "/metrics"

    stack = yaml.safe_load(prometheus_config(tmp_path, [8000, 8001], "15s", monitor_port=8100))
    assert {job["job_name"] for job in stack["scrape_configs"]} == set(jobs)
    monitors = list(yaml.safe_load_all((DEPLOY / "k8s/extras/servicemonitor.yaml").read_text()))
    service_names = {
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all((DEPLOY / "k8s/base/monitor.yaml").read_text())
        if doc["kind"] == "Service"
    }
    assert "shipyard-monitor" in service_names
    assert {m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for m in monitors} == {
        "api",
        "monitor",
    }

    rules = yaml.safe_load((DEPLOY / "prometheus/rules/shipyard.yml").read_text())
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    for name in ("ShipyardDatasetDrift", "ShipyardFeatureDrift", "ShipyardLiveAccuracyLow"):
        assert "job" not in by_name[name]["expr"], f"{name} must hold with or without a monitor"
    assert 'up{job="shipyard-monitor"}' in by_name["ShipyardMonitorDown"]["expr"]
