"""``shipyard explain``: why a registered model answers what it does, row by row (TreeSHAP)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli.output import console, err_console, table, write_json
from shipyard.config.settings import get_settings
from shipyard.errors import DataError, PredictionInputError

MAX_ROWS = 10_000
SHOWN = 20


def explain(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. housing.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet file with feature columns.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write every row's explanation here (JSON); default: a table."),
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--model", "-m", help="Alias or version number (default: the champion).")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Features listed first per row.")] = 5,
) -> None:
    """Per row: the answer, the base value and each feature's attribution (one-hot columns summed back
    to their feature); base + attributions = the answer (the predicted class's probability, or value)."""
    from shipyard.batch.scoring import read_file
    from shipyard.inference import ReadyModel
    from shipyard.registry import ModelRegistry

    settings = get_settings()
    loaded = ModelRegistry(settings).load(name, ref)
    frame = read_file(input, loaded, ())
    if len(frame) > MAX_ROWS:
        raise DataError(
            f"{input}: {len(frame)} rows; explain at most {MAX_ROWS:,} at a time (TreeSHAP is slow)"
        )
    ready = ReadyModel(loaded, fast_path=settings.fast_path, regression_rtol=settings.onnx_regression_rtol)
    check = ready.check(frame)
    if check.rejected:
        raise PredictionInputError(f"invalid input: {check.first_rows(5)}")
    with console.status(f"explaining {len(frame)} rows with TreeSHAP"):
        found = ready.explain(check.batch, top_k)
    if output:
        write_json(
            output,
            {
                "model": name,
                "version": loaded.version,
                "explanations": [asdict(e) for e in found],
            },
        )
        err_console.print(f"wrote {len(found)} explanations from {name} version {loaded.version} to {output}")
        return
    rows = [
        [
            str(i + 1),
            str(e.prediction),
            f"{e.base_value:.4g}",
            ", ".join(f"{t['feature']} {t['attribution']:+.3g}" for t in e.top),
        ]
        for i, e in enumerate(found[:SHOWN])
    ]
    what = found[0].explained.split(" class ")[0] if found else "output"
    console.print(
        table(
            f"{name} v{loaded.version}: the top {top_k} features per row ({what}: base + attributions)",
            ["row", "prediction", "base", "top features (attribution)"],
            rows,
        )
    )
    if len(found) > SHOWN:
        err_console.print(f"{len(found) - SHOWN} more rows: -o FILE writes them all")
