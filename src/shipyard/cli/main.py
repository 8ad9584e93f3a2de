"""The ``shipyard`` command: the Typer app, logging set-up and the one place errors become exit codes."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Annotated

import click
import typer

from shipyard import __version__
from shipyard.cli import ab as ab_cli
from shipyard.cli import batch as batch_cli
from shipyard.cli import models as models_cli
from shipyard.cli import stack as stack_cli
from shipyard.cli.data_quality import data_quality
from shipyard.cli.drift import drift
from shipyard.cli.explain import explain
from shipyard.cli.monitor import monitor
from shipyard.cli.output import error
from shipyard.cli.predict import predict
from shipyard.cli.retrain import retrain
from shipyard.cli.serve import serve, token_app
from shipyard.cli.train import prepare, train, validate
from shipyard.cli.tune import tune
from shipyard.errors import ShipyardError

app = typer.Typer(
    name="shipyard",
    help="Shipyard: train, track, register and serve tabular models with MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command(help="Train a model from a config, track it in MLflow, register it and run the promotion gate.")(
    train
)
app.command(help="Load and validate a config's data without training; print every failing check.")(validate)
app.command(help="Load and validate a config's data and write the validated rows as Parquet (a DVC stage).")(
    prepare
)
app.command(help="Score a CSV or Parquet file locally with a registered model (default: the champion).")(
    predict
)
app.command(
    help="Explain a registered model's answers for the rows of a file: per row, each feature's TreeSHAP "
    "attribution (one-hot columns summed back to their feature)."
)(explain)
app.command(help="Serve the registered champions over HTTP (uvicorn + FastAPI).")(serve)
app.command(
    help="Run the monitor role (one per deployment): drift per served version and live quality from the "
    "shared monitoring store (SHIPYARD_MONITORING_URL), on a schedule, with its own /metrics."
)(monitor)
app.command(help="Compare current data with a model's training reference: drift per feature and dataset.")(
    drift
)
app.command(
    "data-quality",
    help="Data quality per monitoring window, newest first, from the drift reports the monitor stored in "
    "the monitoring store (SHIPYARD_MONITORING_URL): each feature's missing share, share outside the "
    "training range, share of unseen categories and refused values, plus each window's findings.",
    epilog="Example: shipyard data-quality iris --since 24h --check out_of_range  (--json for scripts)",
)(data_quality)
app.command(
    help="Retrain a model on its config's data plus labelled feedback; the gate decides promotion. "
    "--if-drift runs only when the dataset drifted (for the CronJob and CI schedule)."
)(retrain)
app.command(
    help="One worker of a distributed hyper-parameter search: adds trials to a shared Optuna study; "
    "--register trains the study's best params and registers them through the gate."
)(tune)
app.add_typer(models_cli.app, name="models")
app.add_typer(ab_cli.app, name="ab")
app.add_typer(batch_cli.app, name="batch")
app.add_typer(stack_cli.app, name="stack")
app.add_typer(token_app, name="token")

_NOISY = ("mlflow", "alembic", "urllib3", "optuna", "git", "httpx")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"shipyard {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="SHIPYARD_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "WARNING",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Configure logging once, here, for every command."""
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise typer.BadParameter(f"unknown log level '{log_level}' (expected DEBUG, INFO, WARNING or ERROR)")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # pandera imports pyspark.pandas whenever the `spark` extra is installed, and pyspark warns about
    # pandas 3 there; Shipyard's Spark scorer does not use pyspark.pandas
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", logging.getLevelName(max(level, logging.WARNING)))
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def _is_usage_error(exc: Exception) -> bool:
    """A bad option, a missing argument...: what click would print as usage plus one line, exit 2."""
    return any(k.__name__ == "ClickException" for k in type(exc).__mro__) and hasattr(exc, "show")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; known errors print one line, never a traceback."""
    try:
        result = app(args=argv, standalone_mode=False)
    except ShipyardError as exc:
        error(str(exc))
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt):
        error("interrupted")
        return 130
    except Exception as exc:
        if _is_usage_error(exc):  # Typer 0.2x raises its own copy of click's exceptions
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if os.environ.get("SHIPYARD_DEBUG"):
            raise
        error(f"unexpected {type(exc).__name__}: {exc} (set SHIPYARD_DEBUG=1 for the traceback)")
        return 70
    return int(result) if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
