"""``shipyard train`` and ``shipyard validate``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.output import ConsoleReporter, console, error, table, write_json
from shipyard.config.settings import get_settings
from shipyard.errors import DataValidationError

if TYPE_CHECKING:
    from shipyard.data.validation import ValidationReport

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c", help="Pipeline config (YAML), e.g. configs/iris.yaml.", show_default=False
    ),
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Also write the result as JSON to this file.")
]


def _print_validation_report(report: ValidationReport) -> None:
    rows = [
        [f.column or "(dataset)", f.check, str(f.failing), ", ".join(f.examples)] for f in report.failures
    ]
    console.print(table("Failing checks", ["column", "check", "failing rows", "examples"], rows))


def train(
    config: ConfigOption,
    tune: Annotated[
        bool | None, typer.Option("--tune/--no-tune", help="Run Optuna tuning (default: as the config says).")
    ] = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Override tuning.n_trials.")] = None,
    output: OutputOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
) -> None:
    from shipyard.pipeline import load_pipeline_config, run_training

    cfg = load_pipeline_config(config)
    if tune is not None or trials is not None:
        tuning = cfg.tuning.model_copy(
            update={
                "enabled": cfg.tuning.enabled if tune is None else tune,
                "n_trials": trials or cfg.tuning.n_trials,
            }
        )
        cfg = cfg.model_copy(update={"tuning": tuning})
        if tuning.enabled and not tuning.search_space:
            error(f"{config}: --tune needs tuning.search_space in the config")
            raise typer.Exit(2)
    reporter = ConsoleReporter(quiet=quiet)
    try:
        summary = run_training(cfg, get_settings(), reporter)
    except DataValidationError as exc:
        reporter.close()
        _print_validation_report(exc.report)
        if output:
            write_json(output, {"ok": False, "stage": "validate", "validation": exc.report.to_dict()})
        raise
    finally:
        reporter.close()
    verdict = "[green]promoted to champion[/]" if summary.promoted else "[yellow]kept as challenger[/]"
    console.print(
        f"\n[bold]{summary.model_name}[/] version {summary.version} — {verdict}\n"
        f"  reason   {summary.decision.reason}\n"
        f"  run      {summary.run_id} (experiment '{summary.experiment}')\n"
        f"  aliases  {', '.join(summary.aliases) or '-'}\n"
        f"  metrics  " + "  ".join(f"{k}={v:.4f}" for k, v in summary.metrics.items()),
        soft_wrap=True,
    )
    if output:
        write_json(output, {"ok": True, **summary.to_dict()})


def validate(config: ConfigOption, output: OutputOption = None) -> None:
    from shipyard.data import DataLoader, DataValidator
    from shipyard.pipeline import load_pipeline_config

    cfg = load_pipeline_config(config)
    loaded = DataLoader(cfg.dataset.source).load()
    _, report = DataValidator(cfg.dataset).validate(loaded.frame)
    if output:
        write_json(output, {"data": loaded.uri, "data_hash": loaded.digest, **report.to_dict()})
    if report.ok:
        console.print(f"[green]✓[/] {loaded.uri}: {report.summary()}")
        return
    _print_validation_report(report)
    error(f"{loaded.uri}: {report.summary()}")
    raise typer.Exit(4)
