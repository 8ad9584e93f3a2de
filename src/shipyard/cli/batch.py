"""``shipyard batch``: score files with a registered model, in bounded memory or on Spark."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.batch_worker import worker
from shipyard.cli.output import console, err_console, write_json
from shipyard.config.settings import get_settings
from shipyard.errors import ConfigError

app = typer.Typer(help="Batch scoring: files, queued jobs and Spark.", no_args_is_help=True)
app.command(help="Take batch scoring jobs from the Redis queue and run them until SIGTERM or Ctrl-C.")(worker)


@app.command(
    help="Score a CSV or Parquet file (or a folder of them) with a registered model, chunk by chunk: "
    "keeps the --keep columns, adds prediction, proba_<class> and model_version. NAME, NAME@ALIAS or "
    "NAME:VERSION. The output appears only when the run succeeds."
)
def score(
    model: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME:VERSION (default alias: champion).")],
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet file, or a folder of them.")],
    output_file: Annotated[
        Path, typer.Option("--output", "-o", help="Output file (.csv or .parquet).", show_default=False)
    ],
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="Input column to copy to the output (repeatable), e.g. id."),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows read, checked and scored at a time.")
    ] = 100_000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes scoring chunks at once, each with the model loaded (1: this process only; "
            "the output is the same). Default: SHIPYARD_BATCH_WORKERS, else every usable CPU.",
            show_default=False,
        ),
    ] = None,
    on_error: Annotated[
        str,
        typer.Option(
            help="'fail': stop naming the bad rows; 'skip': score the rest, bad rows to <output>.rejects.csv."
        ),
    ] = "fail",
    engine: Annotated[str, typer.Option(help="'local' (streaming, this process) or 'spark'.")] = "local",
    master: Annotated[str, typer.Option(help="Spark master with --engine spark.")] = "local[2]",
    summary: Annotated[
        Path | None, typer.Option("--summary", help="Also write the run's summary as JSON to this file.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    from shipyard.batch.scoring import parse_model_ref, score_file

    if on_error not in ("fail", "skip"):
        raise ConfigError(f"--on-error: expected 'fail' or 'skip', got '{on_error}'")
    if engine not in ("local", "spark"):
        raise ConfigError(f"--engine: expected 'local' or 'spark', got '{engine}'")
    if engine == "spark" and on_error == "skip":
        raise ConfigError("--on-error skip is not available with --engine spark (a bad row fails the run)")
    if engine == "spark" and workers is not None:
        raise ConfigError("--workers applies to --engine local (Spark runs its own executors; see --master)")
    name, ref = parse_model_ref(model)
    settings = get_settings()
    progress_bar, task = _progress(quiet)
    try:

        def progress(done: int, total: int | None) -> None:
            if progress_bar is not None and task is not None:
                progress_bar.update(task, completed=done, total=total)

        if engine == "spark":
            from shipyard.batch.spark import score_with_spark

            result = score_with_spark(
                settings,
                name,
                ref,
                input,
                output_file,
                keep=tuple(keep or ()),
                master=master,
                progress=progress,
            )
        else:
            result = score_file(
                settings,
                name,
                ref,
                input,
                output_file,
                chunk_rows=chunk_rows,
                keep=tuple(keep or ()),
                on_error="skip" if on_error == "skip" else "fail",
                progress=progress,
                workers=workers,
            )
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    console.print(
        f"[green]✓[/] {result.rows_out:,} rows scored by {result.model} version {result.version} "
        f"({result.engine or engine}{_processes(result.workers)}) -> {result.output} "
        f"in {result.seconds:.1f}s "
        f"({result.rows_per_second:,.0f} rows/s)",
        soft_wrap=True,
    )
    if result.rows_rejected:
        err_console.print(f"[yellow]{result.rows_rejected:,} rows rejected -> {result.rejects}[/]")
    if summary:
        write_json(summary, result.to_dict())


def _processes(count: int) -> str:
    return f", {count} processes" if count > 1 else ""


def _progress(quiet: bool) -> tuple[Any, Any]:
    if quiet or not err_console.is_terminal:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class RowsPerSecond(TextColumn):
        def __init__(self) -> None:
            super().__init__("")
            self.started = time.perf_counter()

        def render(self, task: object) -> object:  # type: ignore[override]
            from rich.text import Text

            done = getattr(task, "completed", 0)
            rate = done / max(time.perf_counter() - self.started, 1e-9)
            return Text(f"{rate:,.0f} rows/s")

    bar = Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        console=err_console,
    )
    bar.start()
    return bar, bar.add_task("scoring", total=None)
