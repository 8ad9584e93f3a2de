"""Predictor: check and coerce input rows against the model signature, then predict.

The same object scores a CSV from the CLI today and will back the API and batch jobs, so every path
gives the same answer for the same row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import PredictionInputError
from shipyard.registry.models import LoadedModel

_NUMERIC = {"double": "float64", "float": "float64", "long": "int64", "integer": "int64"}


class Predictor:
    """Wraps a :class:`LoadedModel`; ``predict`` takes raw feature rows and returns a result frame."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.columns = [c.name for c in loaded.inputs]
        self.types = {c.name: c.type for c in loaded.inputs}
        self.required = {c.name for c in loaded.inputs if c.required}

    @property
    def is_classifier(self) -> bool:
        return hasattr(self.loaded.model, "predict_proba") and self.loaded.classes is not None

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's columns, in order, with the signature's types; errors name every bad column."""
        if not self.columns:
            return frame
        missing = [c for c in self.columns if c not in frame.columns and c in self.required]
        if missing:
            raise PredictionInputError(
                f"missing feature(s): {', '.join(missing)} (the model needs: {', '.join(self.columns)})"
            )
        out = frame.reindex(columns=self.columns)  # absent optional columns become missing values
        problems: list[str] = []
        for name in self.columns:
            wanted = self.types[name]
            column = out[name]
            if name in self.required and column.isna().any():
                row = int(np.flatnonzero(column.isna().to_numpy())[0])
                problems.append(f"{name}: missing value at row {row} (the model requires it)")
                continue
            if wanted in _NUMERIC:
                numbers = pd.to_numeric(column, errors="coerce")
                bad = numbers.isna() & column.notna()
                if bad.any():
                    row = int(np.flatnonzero(bad.to_numpy())[0])
                    problems.append(
                        f"{name}: expected a number ({wanted}), got {column.iloc[row]!r} at row {row}"
                    )
                    continue
                if np.isinf(numbers.to_numpy(dtype="float64", na_value=np.nan)).any():
                    problems.append(f"{name}: infinite values are not accepted")
                    continue
                if _NUMERIC[wanted] == "int64" and numbers.notna().all():
                    if (numbers % 1 != 0).any():
                        problems.append(f"{name}: expected whole numbers ({wanted})")
                        continue
                    out[name] = numbers.astype("int64")
                else:
                    out[name] = numbers.astype("float64")
            elif wanted == "string":
                # None, pd.NA and NaN all become np.nan: the one missing marker the imputer knows
                present = column.notna()
                out[name] = column.astype(object).where(present, np.nan)
                out.loc[present, name] = out.loc[present, name].map(
                    lambda v: v if isinstance(v, str) else str(v)
                )
            elif wanted == "boolean":
                out[name] = column.astype(bool)
        if problems:
            raise PredictionInputError("invalid input: " + "; ".join(problems))
        return out

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predictions (and class probabilities for classifiers), one row per input row."""
        X = self.prepare(frame)
        model: Any = self.loaded.model
        result = pd.DataFrame({"prediction": model.predict(X)}, index=frame.index)
        if self.is_classifier:
            proba = model.predict_proba(X)
            for i, label in enumerate(self.loaded.classes or []):
                result[f"proba_{label}"] = proba[:, i]
        return result
