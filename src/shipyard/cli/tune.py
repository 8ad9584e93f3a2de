"""``shipyard tune``: one worker of a distributed Optuna study; run several, then register the best."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.output import ConsoleReporter, console, print_training_summary, write_json
from shipyard.cli.train import OutputOption
from shipyard.config.settings import get_settings
from shipyard.errors import ConfigError


def config_for(name: str, config: Path | None) -> Path:
    """``-c`` when given, else configs/NAME.yaml."""
    path = config or Path("configs") / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no config for '{name}': {path} not found (give one with -c)")
    return path


def tune(
    name: Annotated[str, typer.Argument(help="Model config name (configs/NAME.yaml), e.g. housing.")],
    study: Annotated[str, typer.Option("--study", "-s", help="Study name shared by every worker.")],
    n_trials: Annotated[
        int, typer.Option("--n-trials", "-n", min=0, help="Trials this worker adds to the study.")
    ] = 10,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Where the study lives: journal:PATH (default <home>/optuna/STUDY.journal), sqlite:///PATH, "
            "or postgresql://... for workers on several machines."
        ),
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            "--register",
            help="After this worker's trials, train the study's best params and "
            "register them through the gate.",
        ),
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file instead of configs/NAME.yaml.")
    ] = None,
    output: OutputOption = None,
) -> None:
    from shipyard.pipeline import load_pipeline_config
    from shipyard.pipeline.tuning import default_storage, register_best, tune_worker

    cfg = load_pipeline_config(config_for(name, config))
    settings = get_settings()
    where = storage or default_storage(settings, study)
    reporter = ConsoleReporter()
    result = None
    if n_trials:
        reporter.step("tune", f"{n_trials} trials into study '{study}' at {where}")
        try:
            result = tune_worker(cfg, study, where, n_trials, reporter.trial)
        finally:
            reporter.close()
        console.print(
            f"[green]✓[/] {len(result.trials)} trials added; study best {result.metric} "
            f"{result.best_score:.4f} with {result.best_params}",
            soft_wrap=True,
        )
    summary = None
    if register:
        try:
            summary = register_best(cfg, settings, study, where, reporter)
        finally:
            reporter.close()
        print_training_summary(summary, why=f"best params of study '{study}'")
    if output:
        write_json(
            output,
            {
                "study": study,
                "storage": where,
                "trials_added": len(result.trials) if result else 0,
                "best_params": result.best_params if result else None,
                "best_score": result.best_score if result else None,
                "registered": summary.to_dict() if summary else None,
            },
        )
