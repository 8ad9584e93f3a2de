"""The stack's Prometheus: the repo's alert rules and a generated config that scrapes every api process
and the monitor on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from shipyard.errors import ConfigError
from shipyard.orchestration.stack.specs import HOST, ServiceSpec

RULES_SUBDIR = Path("deploy/prometheus/rules")


def prometheus_service(
    binary: str,
    rules: Path,
    state_dir: Path,
    port: int,
    api_ports: Sequence[int],
    monitor_port: int | None,
    interval: str,
    timeout: float,
    env: Mapping[str, str],
) -> ServiceSpec:
    config = state_dir / "prometheus" / "prometheus.yml"
    url = f"http://{HOST}:{port}"
    return ServiceSpec(
        name="prometheus",
        kind="server",
        commands=(
            (
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={state_dir / 'prometheus' / 'data'}",
                f"--web.listen-address={HOST}:{port}",
            ),
        ),
        env=dict(env),
        timeout=timeout,
        port=port,
        url=url,
        health_url=f"{url}/-/ready",
        files={config: prometheus_config(rules, api_ports, interval, monitor_port)},
        port_setting="PROMETHEUS_PORT or --prometheus-port",
    )


def rules_dir(given: Path | None, cwd: Path) -> Path:
    """The alert rules: ``--rules``, else ``deploy/prometheus/rules`` of the working directory or of
    the source checkout Shipyard runs from."""
    if given is not None:
        candidates = [given if given.is_absolute() else cwd / given]
    else:
        candidates = [cwd / RULES_SUBDIR, Path(__file__).resolve().parents[4] / RULES_SUBDIR]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.yml")):
            return candidate
    raise ConfigError(
        f"no Prometheus rules (*.yml) in {' or '.join(str(c) for c in candidates)}: pass --rules DIR"
    )


def prometheus_config(
    rules: Path, api_ports: Sequence[int], interval: str, monitor_port: int | None = None
) -> str:
    """deploy/prometheus/prometheus.yml, pointed at every api process and the monitor on 127.0.0.1 (no
    Alertmanager here)."""
    scrape = [
        {
            "job_name": "shipyard",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [f"{HOST}:{port}" for port in api_ports]}],
        }
    ]
    if monitor_port is not None:
        scrape.append(
            {
                "job_name": "shipyard-monitor",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{HOST}:{monitor_port}"]}],
            }
        )
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules / "*.yml")],
        "scrape_configs": scrape,
    }
    scraped = "the api processes and the monitor" if monitor_port is not None else "the api processes"
    header = f"# Written by `shipyard stack up`: scrapes {scraped} on 127.0.0.1, loads the repo's rules.\n"
    return header + yaml.safe_dump(config, sort_keys=False)
