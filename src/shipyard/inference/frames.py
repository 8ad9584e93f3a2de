"""Validate a whole DataFrame chunk against a model's inputs at once (batch scoring, the CLI, Spark).

Files arrive as columns, often as text; the values are checked by the same rules as the API's JSON
(``inference.columns``), with text parsed first. Every bad row is kept with its first reason, so a
caller can fail naming the rows or skip them into a side file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shipyard.errors import PredictionInputError
from shipyard.inference.columns import check_column
from shipyard.inference.records import Batch
from shipyard.registry.models import InputColumn


@dataclass
class FrameCheck:
    batch: Batch  # the good rows, in the model's types
    good: np.ndarray  # bool mask over the chunk's rows
    reasons: np.ndarray  # object array: the first problem of each bad row (None for good rows)
    # per column: how many of its values were refused, and the first refusal's message
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return int((~self.good).sum())

    def first_rows(self, shown: int, numbers: np.ndarray | None = None) -> str:
        """``row N: reason`` for the first ``shown`` bad rows (1-based data rows unless ``numbers``
        gives each row's number), and how many more there are."""
        bad = np.flatnonzero(~self.good)
        labels = numbers[bad] if numbers is not None else bad + 1
        text = "; ".join(
            f"row {n}: {r}" for n, r in zip(labels[:shown], self.reasons[bad][:shown], strict=True)
        )
        return text + (f" (and {len(bad) - shown} more rows)" if len(bad) > shown else "")


def missing_columns(inputs: Sequence[InputColumn], present: Sequence[str]) -> list[str]:
    return [c.name for c in inputs if c.required and c.name not in present]


def check_frame(inputs: Sequence[InputColumn], frame: pd.DataFrame) -> FrameCheck:
    missing = missing_columns(inputs, list(frame.columns))
    if missing:
        raise PredictionInputError(
            f"missing feature column(s): {', '.join(missing)} "
            f"(the model needs: {', '.join(c.name for c in inputs)})"
        )
    rows = len(frame)
    bad = np.zeros(rows, dtype=bool)
    reasons = np.full(rows, None, dtype=object)
    columns: dict[str, np.ndarray] = {}
    refused: dict[str, tuple[int, str]] = {}
    for column in inputs:
        values = frame[column.name] if column.name in frame.columns else [None] * rows
        check = check_column(column, values, text=True)
        if check.refused:
            refused[column.name] = (len(check.refused), next(iter(check.refused.values())).message)
        for i, refusal in check.refused.items():
            if not bad[i]:
                bad[i] = True
                reasons[i] = f"{column.name}: {refusal.message}"
        columns[column.name] = check.values
    good = ~bad
    batch = {name: array[good] if bad.any() else array for name, array in columns.items()}
    return FrameCheck(batch, good, reasons, refused)
