"""``shipyard predict``: score a file locally with a registered model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.output import console, err_console
from shipyard.config.settings import get_settings
from shipyard.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame, with a clear error when it is missing or unreadable."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"could not read {path}: {exc}") from None


def predict(
    name: Annotated[str, typer.Argument(help="Registered model name, e.g. iris.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet file with feature columns.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write predictions here (CSV); default: print them.")
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--model", "-m", help="Alias or version number (default: the champion).")
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="Input column to copy to the output (repeatable), e.g. an id."),
    ] = None,
) -> None:
    from shipyard.batch.scoring import columns_of, read_file
    from shipyard.inference import ReadyModel
    from shipyard.registry import ModelRegistry

    settings = get_settings()
    loaded = ModelRegistry(settings).load(name, ref)
    frame = read_file(input, loaded, keep or ())
    ready = ReadyModel(
        loaded, fast_path=settings.fast_path, regression_rtol=settings.onnx_regression_rtol, bulk=True
    )
    unused = [c for c in columns_of(input) if c not in ready.columns and c not in (keep or [])]
    if unused and ready.columns:
        err_console.print(f"note: ignoring column(s) the model does not use: {', '.join(unused)}")
    result = ready.predict_frame(frame)
    result.insert(0, "model_version", loaded.version)
    for column in reversed(keep or []):
        result.insert(0, column, frame[column])
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        result.to_csv(tmp, index=False)
        tmp.replace(output)
        err_console.print(f"wrote {len(result)} predictions from {name} version {loaded.version} to {output}")
    else:
        console.print(result.to_csv(index=False), end="")
