"""``shipyard train`` and ``shipyard validate``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.output import ConsoleReporter, console, error, print_training_summary, table, write_json
from shipyard.config.settings import Settings, get_settings
from shipyard.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    from shipyard.config.pipeline import PipelineConfig
    from shipyard.data.validation import ValidationReport
    from shipyard.pipeline.training_run import TrainingSummary

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


def with_data(cfg: PipelineConfig, data: Path | None) -> PipelineConfig:
    """The config reading ``data`` (a CSV or Parquet file, e.g. a prepared DVC output) instead."""
    if data is None:
        return cfg
    from shipyard.config.pipeline import SourceConfig

    kind = "parquet" if data.suffix.lower() in (".parquet", ".pq") else "csv"
    source = SourceConfig(kind=kind, path=data, na_values=cfg.dataset.source.na_values)
    return cfg.model_copy(update={"dataset": cfg.dataset.model_copy(update={"source": source})})


def train(
    config: ConfigOption,
    tune: Annotated[
        bool | None, typer.Option("--tune/--no-tune", help="Run Optuna tuning (default: as the config says).")
    ] = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Override tuning.n_trials.")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Train on this CSV/Parquet file instead of the config's source (e.g. prepared data)."
        ),
    ] = None,
    runner: Annotated[
        str, typer.Option(help="Who runs the steps: 'cli' (in this process) or 'zenml' (a ZenML pipeline).")
    ] = "cli",
    metrics_file: Annotated[
        Path | None, typer.Option(help="Write the test metrics as flat JSON (a DVC metrics file).")
    ] = None,
    plots_dir: Annotated[
        Path | None,
        typer.Option(help="Write plot data as CSV here: actual vs predicted per test row (DVC plots)."),
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Copy the registered model folder here (a DVC output).")
    ] = None,
    dvc_stage: Annotated[
        str | None,
        typer.Option(help="The DVC stage running this (recorded in the lineage; dvc.yaml sets it)."),
    ] = None,
    output: OutputOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
) -> None:
    from shipyard.pipeline import load_pipeline_config
    from shipyard.pipeline.steps import DVC_STAGE_TAG, RunExtras

    if runner not in ("cli", "zenml"):
        raise ConfigError(f"--runner: expected 'cli' or 'zenml', got '{runner}'")
    cfg = with_data(load_pipeline_config(config), data)
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
    settings = get_settings()
    try:
        if runner == "zenml":
            from shipyard.orchestration.zenml_runner import run_zenml

            summary = run_zenml(cfg, settings)
        else:
            from shipyard.pipeline.training_run import run_training

            extras = RunExtras(tags={DVC_STAGE_TAG: dvc_stage} if dvc_stage else {})
            summary = run_training(
                cfg, settings, reporter, extras=extras, runner="dvc" if dvc_stage else "cli"
            )
    except DataValidationError as exc:
        reporter.close()
        _print_validation_report(exc.report)
        if output:
            write_json(output, {"ok": False, "stage": "validate", "validation": exc.report.to_dict()})
        raise
    finally:
        reporter.close()
    write_stage_outputs(summary, settings, metrics_file, plots_dir, model_dir)
    print_training_summary(summary)
    if output:
        write_json(output, {"ok": True, **summary.to_dict()})


def write_stage_outputs(
    summary: TrainingSummary,
    settings: Settings,
    metrics_file: Path | None,
    plots_dir: Path | None,
    model_dir: Path | None,
) -> None:
    """What a DVC stage tracks: metrics (flat JSON), plot data (CSV) and the model folder."""
    if metrics_file:
        write_json(metrics_file, {**summary.metrics, "rows_train": summary.rows["train"]})
    if plots_dir:
        import pandas as pd

        plots_dir.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"actual": summary.test_truth, "predicted": summary.test_predictions})
        name = "predictions.csv"
        tmp = plots_dir / f".{name}.tmp"
        frame.to_csv(tmp, index=False)
        tmp.replace(plots_dir / name)
    if model_dir:
        from shipyard.registry.models import ModelRegistry

        ModelRegistry(settings).export(summary.model_name, summary.version, model_dir)


def prepare(
    config: ConfigOption,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Where to write the validated rows (Parquet).", show_default=False),
    ],
) -> None:
    from shipyard.pipeline.configure import load_pipeline_config
    from shipyard.pipeline.steps import prepare_data

    cfg = load_pipeline_config(config)
    try:
        data = prepare_data(cfg)
    except DataValidationError as exc:
        _print_validation_report(exc.report)
        raise
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    data.frame.to_parquet(tmp, index=False)
    tmp.replace(out)
    console.print(f"[green]✓[/] {len(data.frame)} validated rows from {data.uri} -> {out}")


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
