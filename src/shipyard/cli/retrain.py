"""``shipyard retrain``: rerun training on new data and let the gate decide (what the CronJob calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.output import ConsoleReporter, console, print_training_summary, write_json
from shipyard.cli.train import OutputOption
from shipyard.config.settings import get_settings
from shipyard.errors import ConfigError


def retrain(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. housing.")],
    if_drift: Annotated[
        bool,
        typer.Option(
            "--if-drift",
            help="Only when the latest window calls for it (see --on): per --drift-report, or a report "
            "computed now from the prediction log.",
        ),
    ] = False,
    on: Annotated[
        str | None,
        typer.Option(
            "--on",
            help="With --if-drift, what calls for a retrain: drift (the dataset drifted), estimated_drop "
            "(CBPE/DLE estimate the model worse than on its held-out split by more than "
            "monitoring.estimated_performance.max_drop) or either. Default: the config's "
            "monitoring.retrain_on (either).",
        ),
    ] = None,
    drift_report: Annotated[
        Path | None,
        typer.Option("--drift-report", help="A drift report written by `shipyard drift -o` to decide on."),
    ] = None,
    window: Annotated[
        int, typer.Option(min=10, help="Latest logged rows the drift check looks at.")
    ] = 10_000,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Pipeline config (default: the one the champion was trained with)."
        ),
    ] = None,
    output: OutputOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the outcome.")] = False,
) -> None:
    from shipyard.monitoring.retrain import retrain as run_retrain
    from shipyard.pipeline import load_pipeline_config

    if drift_report is not None and not if_drift:
        raise ConfigError("--drift-report only applies with --if-drift")
    if on is not None and on not in ("drift", "estimated_drop", "either"):
        raise ConfigError(f"--on {on!r}: expected drift, estimated_drop or either")
    if on is not None and not if_drift:
        raise ConfigError("--on only applies with --if-drift")
    report = None
    if drift_report is not None:
        try:
            report = json.loads(drift_report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--drift-report {drift_report}: cannot read a JSON report ({exc})") from None
    cfg = load_pipeline_config(config) if config else None
    reporter = ConsoleReporter(quiet=quiet)
    try:
        outcome = run_retrain(get_settings(), name, cfg, if_drift, report, window, reporter, on)
    finally:
        reporter.close()
    summary = outcome.summary
    if summary is None:
        console.print(f"[cyan]skipped[/]: {outcome.reason}", soft_wrap=True)
    else:
        print_training_summary(summary, why=outcome.reason)
        if outcome.feedback_rejected:
            console.print(
                f"[yellow]{outcome.feedback_rejected} feedback label(s) did not fit the target and were "
                "left out[/]"
            )
    if output:
        write_json(output, outcome.to_dict())
