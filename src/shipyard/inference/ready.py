"""ReadyModel: THE model ready to predict, the one object every scoring path uses.

The service (through its holder), ``shipyard predict``, batch files, Spark partitions and drift scoring
all hold a ReadyModel: the loaded version, its input rules (``InputSchema`` for JSON, ``check_frame``
for files, both from ``inference.columns``) and the engine chosen for it (ONNX Runtime where it provably
agrees with scikit-learn, scikit-learn otherwise). So the same row gives the same answer, and the same
bad value the same error, whichever way it comes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shipyard.errors import PredictionInputError
from shipyard.inference.engines import Engine, select_engine
from shipyard.inference.frames import FrameCheck, check_frame
from shipyard.inference.records import Batch, InputSchema
from shipyard.registry.models import LoadedModel

if TYPE_CHECKING:
    from shipyard.inference.explain import Explanation, TreeExplainer

SHOWN_ROWS = 5
# an explanation this cheap runs on the event loop: under load a hop to the threadpool waits for the GIL
# (up to its 5 ms switch interval), which measured as a 33 ms p99 for a 0.1 ms iris explanation
EXPLAIN_INLINE_SECONDS = 0.002
PREDICTION = "prediction"
PROBA_PREFIX = "proba_"


@dataclass(frozen=True)
class Prediction:
    """An answer as the API gives it: plain values, and a class -> probability table per row."""

    values: list[Any]
    probabilities: list[dict[str, float]] | None
    classes: list[str] | None


class ReadyModel:
    """A loaded version with its input rules and its engine. ``bulk`` picks the engine for large
    chunks (files); the service's one-row requests use the default."""

    def __init__(
        self, loaded: LoadedModel, *, fast_path: bool = True, regression_rtol: float = 0.0, bulk: bool = False
    ) -> None:
        self.loaded = loaded
        self.fast_path = fast_path
        self.regression_rtol = regression_rtol
        self.schema = InputSchema(loaded.inputs)
        self.engine: Engine
        self.engine, self.engine_reason = select_engine(loaded, fast_path, regression_rtol, bulk=bulk)
        # asked on every request: read once (the fitted model does not change once loaded)
        self._classifier = loaded.is_classifier
        self._class_names = [str(c) for c in loaded.classes or []] if self._classifier else []
        self._explainer: TreeExplainer | None = None

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def version(self) -> str:
        return self.loaded.version

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.loaded.inputs]

    @property
    def is_classifier(self) -> bool:
        return self._classifier

    @property
    def class_names(self) -> list[str]:
        return self._class_names

    @property
    def output_columns(self) -> list[str]:
        """The columns ``score`` gives: the prediction, then one probability per class."""
        return [PREDICTION, *(f"{PROBA_PREFIX}{c}" for c in self.class_names)]

    # --- the API's answers ----------------------------------------------------------------------
    def predict(self, batch: Batch, probabilities: bool = True) -> Prediction:
        """Predictions for a validated batch; class probabilities only when the caller answers them."""
        values, proba = self.engine.predict(batch)
        if not self.is_classifier or proba is None:
            return Prediction(np.asarray(values, dtype=float).tolist(), None, None)
        classes = self.class_names
        labels = values.tolist() if isinstance(values, np.ndarray) else [_plain(v) for v in values]
        if not probabilities:
            return Prediction(labels, None, classes)
        table = [dict(zip(classes, row, strict=True)) for row in np.asarray(proba, dtype=float).tolist()]
        return Prediction(labels, table, classes)

    def explain_inline(self, rows: int) -> bool:
        """Whether explaining ``rows`` rows is cheap enough to do on the caller's thread (an event loop):
        the explainer exists and its measured cost for them is under ``EXPLAIN_INLINE_SECONDS``."""
        found = self._explainer
        return found is not None and rows * found.seconds_per_row <= EXPLAIN_INLINE_SECONDS

    def explain(self, batch: Batch, top_k: int = 5) -> list[Explanation]:
        """TreeSHAP attributions of this model's answers for a validated batch, per raw feature; the
        explainer is built on first use (ExplainUnsupportedError when the model has no tree model)."""
        if self._explainer is None:
            from shipyard.inference.explain import TreeExplainer

            self._explainer = TreeExplainer(self.loaded)
        answer = self.predict(batch, probabilities=True)
        return self._explainer.explain(batch, answer.values, answer.probabilities, top_k)

    # --- files and frames -----------------------------------------------------------------------
    def check(self, frame: pd.DataFrame) -> FrameCheck:
        """The frame's feature columns checked by the shared rules (text parsed first)."""
        return check_frame(self.loaded.inputs, frame)

    def score(self, batch: Batch) -> pd.DataFrame:
        """A validated batch scored into ``output_columns`` (the one place they are named)."""
        values, proba = self.engine.predict(batch)
        out = pd.DataFrame({PREDICTION: np.asarray(values)})
        if self.is_classifier and proba is not None:
            table = np.asarray(proba, dtype=float)
            for i, label in enumerate(self.class_names):
                out[f"{PROBA_PREFIX}{label}"] = table[:, i]
        return out

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score every row of ``frame`` or fail naming the first bad rows (1-based, as in a file)."""
        check = self.check(frame)
        if check.rejected:
            raise PredictionInputError(f"invalid input: {check.first_rows(SHOWN_ROWS)}")
        out = self.score(check.batch)
        out.index = frame.index
        return out

    def warm_up(self) -> None:
        """One prediction on the input example, so the first client request pays no lazy set-up."""
        example = self.loaded.input_example
        if isinstance(example, pd.DataFrame) and not example.empty and self.loaded.inputs:
            records = example.head(1).to_dict("records")
            clean = [
                {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                for r in records
            ]
            self.predict(self.schema.batch_from_records(clean))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
