"""Predictor: check and coerce input rows against the model signature, then predict.

The same object scores a CSV from the CLI today and will back the API and batch jobs, so every path
gives the same answer for the same row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shipyard.errors import PredictionInputError
from shipyard.inference.frames import check_frame
from shipyard.registry.models import LoadedModel

SHOWN_ROWS = 5


class Predictor:
    """Wraps a :class:`LoadedModel`; ``predict`` takes raw feature rows and returns a result frame."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.columns = [c.name for c in loaded.inputs]

    @property
    def is_classifier(self) -> bool:
        return hasattr(self.loaded.model, "predict_proba") and self.loaded.classes is not None

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's columns, in order, with the signature's types; the same checks as batch scoring
        (``inference.frames``), failing with the first bad rows named (1-based data rows)."""
        if not self.columns:
            return frame
        check = check_frame(self.loaded.inputs, frame)
        if check.rejected:
            bad = np.flatnonzero(~check.good)
            shown = "; ".join(f"row {i + 1}: {check.reasons[i]}" for i in bad[:SHOWN_ROWS])
            more = f" (and {len(bad) - SHOWN_ROWS} more rows)" if len(bad) > SHOWN_ROWS else ""
            raise PredictionInputError(f"invalid input: {shown}{more}")
        return pd.DataFrame(check.batch, index=frame.index)

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
