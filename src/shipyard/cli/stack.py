"""``shipyard stack up|down|status``: the Compose stack's services (MLflow server, trainer, monitor, api
processes, Prometheus) as local processes, for machines without Docker."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from shipyard.cli.output import ConsoleReporter, console, err_console, table, write_json
from shipyard.orchestration.stack import StackError, StackOptions, down, status, up
from shipyard.orchestration.stack.plan import DEFAULT_CONFIGS, MAX_REPLICAS

app = typer.Typer(
    help="Run the Compose stack without Docker: MLflow server, trainer, monitor, api processes (auth on) "
    "and Prometheus as local processes, with PIDs and logs in .stack/.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Folder for PIDs, logs and data (SHIPYARD_STACK_DIR, default .stack)."),
]


@app.command("up", help="Start the stack, each service healthy before the next; Ctrl-C stops what started.")
def stack_up(
    mlflow_port: Annotated[int | None, typer.Option(help="MLflow server port (MLFLOW_PORT, 5000).")] = None,
    api_port: Annotated[
        int | None, typer.Option(help="API port (API_PORT, 8000); more api processes take the next ones.")
    ] = None,
    api_replicas: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_REPLICAS,
            help="`shipyard serve` processes on API_PORT, API_PORT+1, ... (API_REPLICAS, 1).",
        ),
    ] = None,
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor/--no-monitor",
            help="Run `shipyard monitor` for drift and quality; --no-monitor: the api computes them itself.",
        ),
    ] = True,
    monitor_port: Annotated[int | None, typer.Option(help="Monitor port (MONITOR_PORT, 8100).")] = None,
    monitoring_url: Annotated[
        str | None,
        typer.Option(
            help="Monitoring store the api processes and the monitor share, e.g. "
            "postgresql+psycopg://user:pass@host/db (SHIPYARD_MONITORING_URL, better for a password; "
            "default sqlite:///<state>/monitoring.db)."
        ),
    ] = None,
    prometheus_port: Annotated[
        int | None, typer.Option(help="Prometheus port (PROMETHEUS_PORT, 9090).")
    ] = None,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow server store, e.g. postgresql://user:pass@host/db "
            "(MLFLOW_BACKEND_STORE_URI; default SQLite in the state folder)."
        ),
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config", "-c", help="Config the trainer trains (repeatable; default iris and housing)."
        ),
    ] = None,
    train: Annotated[
        bool, typer.Option("--train/--no-train", help="Run the one-shot trainer before the monitor and api.")
    ] = True,
    retrain: Annotated[
        bool,
        typer.Option(
            help="Train models that already have a champion too (by default the trainer skips them)."
        ),
    ] = False,
    prometheus: Annotated[
        bool | None,
        typer.Option("--prometheus/--no-prometheus", help="Start Prometheus (default: when installed)."),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(help="Prometheus rules folder (default deploy/prometheus/rules)."),
    ] = None,
    scrape_interval: Annotated[str, typer.Option(help="Prometheus scrape and rule interval.")] = "15s",
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds each server may take to become healthy.")
    ] = 300.0,
    train_timeout: Annotated[float, typer.Option(min=1, help="Seconds the trainer may take.")] = 1800.0,
    state_dir: StateDir = None,
) -> None:
    options = StackOptions(
        state_dir=state_dir,
        mlflow_port=mlflow_port,
        api_port=api_port,
        api_replicas=api_replicas,
        monitor_port=monitor_port,
        prometheus_port=prometheus_port,
        backend_store_uri=backend_store_uri,
        monitoring_url=monitoring_url,
        configs=tuple(config) if config else DEFAULT_CONFIGS,
        train=train,
        retrain=retrain,
        monitor=monitor,
        prometheus=prometheus,
        rules_dir=rules,
        scrape_interval=scrape_interval,
        timeout=timeout,
        train_timeout=train_timeout,
    )
    reporter = ConsoleReporter()
    try:
        run = up(options, reporter)
    except StackError as exc:
        if exc.log_tail:
            err_console.print(f"[dim]{escape(exc.log_tail)}[/]", soft_wrap=True)
        raise
    finally:
        reporter.close()
    for note in run.notes:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    rows = [[s.name, str(s.pid), s.url or "-", _shown(s.log)] for s in run.services if s.kind == "server"]
    console.print(table("stack up", ["service", "pid", "url", "log"], rows))
    console.print(
        "token: [bold]shipyard token create --scope predict[/] (same SHIPYARD_JWT_SECRET); "
        "stop: [bold]shipyard stack down[/]",
        soft_wrap=True,
    )


@app.command("down", help="Stop every service the state folder records (SIGTERM, then SIGKILL). Idempotent.")
def stack_down(
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait after SIGTERM before SIGKILL.")
    ] = 30.0,
    state_dir: StateDir = None,
) -> None:
    stopped = down(state_dir, timeout)
    if not stopped:
        console.print("no stack running")
    for item in stopped:
        console.print(f"{item.name:<11} pid {item.pid}: {item.outcome} [dim]({item.seconds:.1f}s)[/]")


@app.command("status", help="What the state folder records: running or not, healthy, pid, url, log.")
def stack_status(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write JSON to this file.")
    ] = None,
    state_dir: StateDir = None,
) -> None:
    services = status(state_dir)
    if not services:
        console.print("no stack running")
    else:
        rows = [
            [
                s.name,
                s.state,
                {True: "healthy", False: "[red]unhealthy[/]", None: "-"}[s.healthy],
                str(s.pid or "-"),
                s.url or "-",
                s.log,
            ]
            for s in services
        ]
        console.print(table("stack", ["service", "state", "health", "pid", "url", "log"], rows))
    if output:
        write_json(output, [asdict(s) for s in services])


def _shown(log: str) -> str:
    try:
        return str(Path(log).relative_to(Path.cwd()))
    except ValueError:
        return log
