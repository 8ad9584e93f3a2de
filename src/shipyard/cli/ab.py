"""``shipyard ab report``: which variant of an A/B test wins, on the ground truth sent to /feedback."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from shipyard.cli.drift import parse_since
from shipyard.cli.output import console, table, write_json
from shipyard.cli.train import OutputOption
from shipyard.config.settings import get_settings

app = typer.Typer(help="A/B tests between the champion and the challenger.", no_args_is_help=True)

_STYLE = {"promote": "green", "keep-champion": "yellow", "keep-collecting": "cyan", "no-test": "dim"}


@app.command(
    help="Compare the variants on logged predictions that received ground truth (POST /feedback): quality "
    "per variant, a significance test (paired in shadow mode) and a recommendation."
)
def report(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. iris.")],
    since: Annotated[
        str | None, typer.Option(help="Only predictions newer than this (30m, 6h, 7d or an ISO time).")
    ] = None,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Significance level.")] = 0.05,
    min_rows: Annotated[
        int, typer.Option("--min-rows", min=1, help="Labelled rows each variant needs before a verdict.")
    ] = 30,
    output: OutputOption = None,
) -> None:
    from shipyard.monitoring.ab_report import compare_variants
    from shipyard.monitoring.reports import model_task
    from shipyard.monitoring.store import MonitoringStore
    from shipyard.registry import ModelRegistry

    settings = get_settings()
    store = MonitoringStore.for_reading(settings.monitoring_store_url)
    task = model_task(ModelRegistry(settings), name)
    rows = store.labelled(name, parse_since(since) if since else None, include_shadow=True)
    result = compare_variants(rows, name, task, alpha, min_rows)
    shown = []
    for v in result.variants:
        metrics = "  ".join(f"{k}={val:.4g}" for k, val in v.metrics.items())
        shown.append([v.variant, v.version, str(v.rows), metrics])
    title = f"A/B test of {name} ({result.mode} mode)"
    console.print(table(title, ["variant", "version", "rows", "quality"], shown))
    p = "n/a" if result.p_value is None or math.isnan(result.p_value) else f"{result.p_value:.4g}"
    console.print(f"test: {result.test}; p-value {p}", soft_wrap=True)
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]", soft_wrap=True)
    style = _STYLE.get(result.verdict, "bold")
    console.print(f"[{style}]{result.verdict}[/]: {result.recommendation}", soft_wrap=True)
    if output:
        write_json(output, result.to_dict())
