"""Inference engines for a loaded model: ONNX Runtime when it provably agrees, scikit-learn otherwise.

The fast path converts the fitted Pipeline with skl2onnx (double-precision inputs, one input per
feature, no pandas) and keeps it only if it gives the same answers as scikit-learn on reference rows:
the same labels and probabilities within ``PROBA_ATOL`` for classifiers, values within the configured
relative tolerance for regressors (0 by default, so regressors keep scikit-learn unless a tolerance is
accepted). Anything that cannot be converted or disagrees falls back to scikit-learn, with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from shipyard.inference.records import Batch, batch_frame, batch_rows
from shipyard.registry.models import InputColumn, LoadedModel

log = logging.getLogger(__name__)

PROBA_ATOL = 1e-5
REFERENCE_ROWS = 256


class Engine(Protocol):
    name: str

    def predict(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        """(values, class probabilities or None) for a validated batch."""


@dataclass
class SklearnEngine:
    model: Any
    classifier: bool
    name: str = "sklearn"

    def predict(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        frame = batch_frame(batch)
        values = self.model.predict(frame)
        return values, (self.model.predict_proba(frame) if self.classifier else None)


class OnnxEngine:
    name = "onnx"

    def __init__(
        self, session: Any, inputs: list[InputColumn], classifier: bool, single: bool = False
    ) -> None:
        self.session = session
        self.inputs = inputs
        self.classifier = classifier
        self._dtypes = {
            c.name: (np.float32 if single and _NUMPY[c.type] is np.float64 else _NUMPY[c.type])
            for c in inputs
        }
        self._outputs = [o.name for o in session.get_outputs()]

    def predict(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        feed = {
            name: np.asarray(batch[name], dtype=dtype).reshape(-1, 1) for name, dtype in self._dtypes.items()
        }
        outputs = self.session.run(self._outputs, feed)
        if self.classifier:
            return outputs[0], outputs[1]
        return outputs[0].ravel(), None


_NUMPY: dict[str, Any] = {
    "double": np.float64,
    "float": np.float64,
    "long": np.int64,
    "integer": np.int64,
    "string": object,
}


def _convert(model: Any, inputs: list[InputColumn], classifier: bool, single: bool = False) -> Any:
    """An ONNX Runtime session for ``model``; ``single`` feeds float32 (ONNX Runtime's tree regressors
    take no doubles), which is why regressors need an accepted tolerance."""
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    real = FloatTensorType if single else DoubleTensorType
    kinds = {
        "double": real,
        "float": real,
        "long": Int64TensorType,
        "integer": Int64TensorType,
        "string": StringTensorType,
    }
    unsupported = [c.name for c in inputs if c.type not in kinds]
    if unsupported:
        raise ValueError(f"no ONNX input type for {', '.join(unsupported)}")
    types = [(c.name, kinds[c.type]([None, 1])) for c in inputs]
    options = {id(model.steps[-1][1]): {"zipmap": False}} if classifier else None
    onx = to_onnx(model, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = 1
    settings.inter_op_num_threads = 1
    return ort.InferenceSession(onx.SerializeToString(), settings, providers=["CPUExecutionProvider"])


def reference_batch(loaded: LoadedModel, rows: int = REFERENCE_ROWS, seed: int = 0) -> Batch:
    """Rows to check the fast path on: the input example plus rows drawn across each feature's range
    (from the reference profile saved at training time when it is available)."""
    rng = np.random.default_rng(seed)
    profile = (loaded.profile or {}).get("features", {})
    example = loaded.input_example
    batch: Batch = {}
    for column in loaded.inputs:
        stats = profile.get(column.name, {})
        seen = list(example[column.name]) if example is not None and column.name in example else []
        if column.type in ("double", "float", "long", "integer"):
            q = stats.get("quantiles") or {}
            low, high = q.get("0.01", stats.get("min")), q.get("0.99", stats.get("max"))
            if low is None or high is None:
                values = np.array(seen, dtype=float)
                low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
            drawn = rng.uniform(low, high, rows)
            if column.type in ("long", "integer"):
                drawn = np.round(drawn)
            batch[column.name] = np.concatenate([np.asarray(seen, dtype=float), drawn]).astype(
                _NUMPY[column.type]
            )
        else:
            categories = list((stats.get("frequencies") or {}).keys()) or [
                str(v) for v in seen if isinstance(v, str)
            ]
            if column.allowed:
                categories = [str(v) for v in column.allowed]
            drawn = rng.choice(categories, rows) if categories else np.array(["?"] * rows)
            batch[column.name] = np.concatenate([np.asarray(seen, dtype=object), drawn.astype(object)])
    return batch


def select_engine(
    loaded: LoadedModel, fast_path: bool = True, regression_rtol: float = 0.0
) -> tuple[Engine, str]:
    """The engine to serve with and why."""
    classifier = loaded.classes is not None and hasattr(loaded.model, "predict_proba")
    sklearn = SklearnEngine(loaded.model, classifier)
    if not fast_path:
        return sklearn, "fast path off"
    if any(not c.required for c in loaded.inputs):
        return sklearn, "inputs that may be missing are imputed by scikit-learn only"
    if not classifier and regression_rtol <= 0:
        return sklearn, "regressor: ONNX Runtime trees compute in float32; set a tolerance to accept them"
    single = not classifier
    try:
        onnx = OnnxEngine(
            _convert(loaded.model, loaded.inputs, classifier, single), loaded.inputs, classifier, single
        )
        reference = reference_batch(loaded)
        fast_values, fast_proba = onnx.predict(reference)
        slow_values, slow_proba = sklearn.predict(reference)
    except Exception as exc:  # any conversion or runtime failure means: stay on scikit-learn
        return sklearn, f"ONNX conversion failed: {str(exc).splitlines()[0][:200]}"
    rows = batch_rows(reference)
    if classifier:
        if not np.array_equal(np.asarray(fast_values).astype(str), np.asarray(slow_values).astype(str)):
            return sklearn, f"ONNX labels differ from scikit-learn on the {rows} reference rows"
        gap = float(np.max(np.abs(np.asarray(fast_proba) - np.asarray(slow_proba))))
        if gap > PROBA_ATOL:
            return sklearn, f"ONNX probabilities differ by up to {gap:.2g} (> {PROBA_ATOL:g})"
        return onnx, f"labels equal and probabilities within {PROBA_ATOL:g} on {rows} reference rows"
    fast = np.asarray(fast_values, dtype=float)
    slow = np.asarray(slow_values, dtype=float)
    worst = float(np.max(np.abs(fast - slow) / np.maximum(np.abs(slow), 1e-12)))
    if worst > regression_rtol:
        return sklearn, f"ONNX values differ by up to {worst:.2%} relative (> tolerance {regression_rtol:g})"
    return onnx, f"values within {regression_rtol:g} relative on {rows} reference rows"
