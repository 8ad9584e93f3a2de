"""Validate a whole DataFrame chunk against a model's inputs at once (batch scoring, the CLI).

The service checks JSON values one request at a time (``records.InputSchema``); files arrive as typed
columns, so the same rules run here column by column with pandas: numbers must parse and be finite,
integers whole, required values present, categories allowed. Every bad row is kept with its first
reason, so a caller can fail naming the rows or skip them into a side file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shipyard.errors import PredictionInputError
from shipyard.inference.records import Batch
from shipyard.registry.models import InputColumn

_FLOAT = ("double", "float")
_INT = ("long", "integer")


@dataclass
class FrameCheck:
    batch: Batch  # the good rows, in the model's types
    good: np.ndarray  # bool mask over the chunk's rows
    reasons: np.ndarray  # object array: the first problem of each bad row (None for good rows)

    @property
    def rejected(self) -> int:
        return int((~self.good).sum())


def check_frame(inputs: Sequence[InputColumn], frame: pd.DataFrame) -> FrameCheck:
    rows = len(frame)
    bad = np.zeros(rows, dtype=bool)
    reasons = np.full(rows, None, dtype=object)

    def flag(mask: np.ndarray, message: str) -> None:
        new = mask & ~bad
        if new.any():
            reasons[new] = message
            bad[new] = True

    missing = [c.name for c in inputs if c.required and c.name not in frame.columns]
    if missing:
        raise PredictionInputError(
            f"missing feature column(s): {', '.join(missing)} "
            f"(the model needs: {', '.join(c.name for c in inputs)})"
        )
    columns: dict[str, np.ndarray] = {}
    for column in inputs:
        name = column.name
        series = frame[name] if name in frame.columns else pd.Series([None] * rows, dtype=object)
        absent = series.isna().to_numpy()
        if column.required:
            flag(absent, f"{name}: missing value (the model requires it)")
        if column.type in _FLOAT or column.type in _INT:
            numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            flag(np.isnan(numbers) & ~absent, f"{name}: expected a number")
            flag(np.isinf(numbers), f"{name}: expected a finite number")
            if column.type in _INT:
                fractional = ~np.isnan(numbers) & ~np.isinf(numbers) & (np.mod(numbers, 1) != 0)
                flag(fractional, f"{name}: expected a whole number")
                numbers = np.where(np.isfinite(numbers), numbers, 0).astype("int64")
            columns[name] = numbers
        elif column.type == "boolean":
            columns[name] = series.fillna(False).astype(bool).to_numpy()
        else:
            values = series.astype(object).to_numpy()
            present = ~absent
            text = np.array([v if isinstance(v, str) else str(v) for v in values[present]], dtype=object)
            values = values.copy()
            values[present] = text
            values[absent] = np.nan
            if column.allowed:
                unknown = present & ~pd.Series(values).isin(column.allowed).to_numpy()
                flag(
                    unknown,
                    f"{name}: unknown category (expected one of: {', '.join(map(str, column.allowed))})",
                )
            columns[name] = values
    good = ~bad
    batch = {name: array[good] for name, array in columns.items()}
    return FrameCheck(batch, good, reasons)
