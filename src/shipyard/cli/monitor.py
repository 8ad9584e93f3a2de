"""``shipyard monitor``: the monitor role, one per deployment, over the shared monitoring store."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.output import console, err_console, table
from shipyard.cli.serve import export_overrides
from shipyard.config.settings import Settings, get_settings


def monitor(
    host: Annotated[
        str | None, typer.Option(help="Bind address (SHIPYARD_MONITOR_HOST, default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (SHIPYARD_MONITOR_PORT, default 8100).")] = None,
    interval: Annotated[
        float | None,
        typer.Option(min=1, help="Seconds between monitoring rounds (SHIPYARD_DRIFT_INTERVAL_SECONDS, 60)."),
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models to monitor (SHIPYARD_MODELS).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Compute one round, print it and exit (no server).")
    ] = False,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Create or upgrade the store's schema and exit (an init step).")
    ] = False,
) -> None:
    export_overrides(
        {
            "SHIPYARD_MONITOR_HOST": host,
            "SHIPYARD_MONITOR_PORT": port,
            "SHIPYARD_DRIFT_INTERVAL_SECONDS": interval,
            "SHIPYARD_MODELS": models,
        }
    )
    settings = get_settings()
    from shipyard.monitoring.store import SCHEMA_VERSION, MonitoringStore

    if upgrade:
        store = MonitoringStore.open(settings.monitoring_store_url)
        err_console.print(f"monitoring store {store.where}: schema {SCHEMA_VERSION}, up to date")
        store.close()
        return
    if once:
        _once(settings)
        return
    import uvicorn

    from shipyard.serving.monitor_app import create_monitor_app

    err_console.print(
        f"monitoring {', '.join(settings.models)} from "
        f"{MonitoringStore(settings.monitoring_store_url).where} every "
        f"{settings.drift_interval_seconds or 60:g} s on http://{settings.monitor_host}:{settings.monitor_port}",
        soft_wrap=True,
    )
    uvicorn.run(
        create_monitor_app(settings),
        host=settings.monitor_host,
        port=settings.monitor_port,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def _once(settings: Settings) -> None:
    from prometheus_client import CollectorRegistry

    from shipyard.monitoring.gauges import MonitorGauges
    from shipyard.monitoring.monitor import Monitor
    from shipyard.monitoring.store import MonitoringStore
    from shipyard.serving.monitor_app import registry_references

    store = MonitoringStore.open(settings.monitoring_store_url)
    try:
        outcome = Monitor(
            settings, store, MonitorGauges(CollectorRegistry()), registry_references(settings)
        ).run_once()
    finally:
        store.close()
    rows = []
    for model, reports in outcome.drift.items():
        for report in reports:
            verdict = "[red]DRIFTED[/]" if report.dataset_drift else "[green]no drift[/]"
            estimate = report.performance
            estimated = (
                f"{estimate.metric} {estimate.estimated[estimate.metric]:.4g} ({estimate.drop:+.1%}"
                + (", [red]DEGRADED[/])" if estimate.degraded else ")")
                if estimate
                else "-"
            )
            rows.append(
                [
                    model,
                    str(report.version),
                    str(report.current_rows),
                    f"{report.drifted_share:.0%}",
                    verdict,
                    estimated,
                ]
            )
    console.print(
        table(
            "drift per served version",
            ["model", "version", "rows", "drifted", "verdict", "estimated (no labels)"],
            rows,
        )
    )
    quality = [
        [model, version, variant, "  ".join(f"{k}={v:.4g}" for k, v in values.items())]
        for model, results in outcome.quality.items()
        for (version, variant), values in results.items()
    ]
    console.print(table("live quality", ["model", "version", "variant", "metrics"], quality))
    for error in outcome.errors:
        err_console.print(f"[yellow]{error}[/]", soft_wrap=True)
    if outcome.errors:
        raise typer.Exit(1)
