"""Inference engines for a loaded model: a compiled path or ONNX Runtime when it provably agrees,
scikit-learn otherwise.

Tree-ensemble regressors behind a ColumnTransformer (the housing model: imputers, scalers, one-hot
encoders, a forest) go through the compiled numpy path (``inference.compiled``), kept only when its
answers equal scikit-learn's on reference rows with missing values (identical in every test here;
``COMPILED_RTOL`` is the most it may differ).

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

from shipyard.inference.columns import INTEGER, NUMBER, STRING, kind_of
from shipyard.inference.records import Batch, batch_frame, batch_rows
from shipyard.registry.models import InputColumn, LoadedModel

log = logging.getLogger(__name__)

PROBA_ATOL = 1e-5
COMPILED_RTOL = 1e-12  # relative difference the compiled path may show (none was ever measured)
TIE_GAP = 1e-4
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

    def __post_init__(self) -> None:
        self._argmax = self.classifier and _predicts_by_argmax(self.model)

    def predict(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        frame = batch_frame(batch)
        if self._argmax:  # one pass through the trees instead of two, with the labels sklearn gives
            proba = self.model.predict_proba(frame)
            return np.asarray(self.model.classes_).take(np.argmax(proba, axis=1), axis=0), proba
        values = self.model.predict(frame)
        return values, (self.model.predict_proba(frame) if self.classifier else None)


def _predicts_by_argmax(model: Any) -> bool:
    """Whether the final estimator's ``predict`` is, in scikit-learn's own code, the first most probable
    class of ``predict_proba`` (forests and single trees): then one call gives both."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return isinstance(final, (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier))


class OnnxEngine:
    """ONNX Runtime for the bulk of the work. For classifiers the label is the first most probable class,
    as scikit-learn picks it; rows whose top two probabilities are within ``TIE_GAP`` (where float32
    sums could tip a near-tie the other way) are answered by scikit-learn, so labels stay identical."""

    name = "onnx"

    def __init__(
        self,
        session: Any,
        inputs: list[InputColumn],
        classifier: bool,
        single: bool = False,
        fallback: SklearnEngine | None = None,
        classes: list[Any] | None = None,
    ) -> None:
        self.session = session
        self.inputs = inputs
        self.classifier = classifier
        self.fallback = fallback
        self.classes = np.asarray(classes) if classes is not None else None
        self._dtypes = {
            c.name: (np.float32 if single and kind_of(c) is NUMBER else kind_of(c).dtype) for c in inputs
        }
        self._outputs = [o.name for o in session.get_outputs()]

    def predict(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        feed = {
            name: np.asarray(batch[name], dtype=dtype).reshape(-1, 1) for name, dtype in self._dtypes.items()
        }
        outputs = self.session.run(self._outputs, feed)
        if not self.classifier:
            return outputs[0].ravel(), None
        proba = np.asarray(outputs[1], dtype=np.float64)
        if self.classes is None or self.fallback is None:
            return outputs[0], proba
        labels = self.classes[np.argmax(proba, axis=1)]
        if proba.shape[1] > 1:
            top = np.sort(proba, axis=1)[:, -2:]
            close = np.flatnonzero(top[:, 1] - top[:, 0] < TIE_GAP)
            if close.size:
                subset = {name: values[close] for name, values in batch.items()}
                exact_labels, exact_proba = self.fallback.predict(subset)
                labels = labels.astype(object)
                labels[close] = exact_labels
                proba[close] = exact_proba
        return labels, proba


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

    tensors = {
        NUMBER: FloatTensorType if single else DoubleTensorType,
        INTEGER: Int64TensorType,
        STRING: StringTensorType,
    }
    unsupported = [c.name for c in inputs if kind_of(c) not in tensors]
    if unsupported:
        raise ValueError(f"no ONNX input type for {', '.join(unsupported)}")
    types = [(c.name, tensors[kind_of(c)]([None, 1])) for c in inputs]
    options = {id(model.steps[-1][1]): {"zipmap": False}} if classifier else None
    onx = to_onnx(model, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    if not single:
        _exact_tree_thresholds(onx, model.steps[-1][1])
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = 1
    settings.inter_op_num_threads = 1
    return ort.InferenceSession(onx.SerializeToString(), settings, providers=["CPUExecutionProvider"])


def _exact_tree_thresholds(onx: Any, estimator: Any) -> None:
    """Make ONNX trees split exactly as scikit-learn's do.

    scikit-learn casts the transformed features to float32 and compares them with float64 thresholds;
    skl2onnx stores float32 thresholds, so a value on a split point can go the other way. Here the
    thresholds become the exact float64 ones (``nodes_values_as_tensor``, ai.onnx.ml opset 3) and the
    tree input is cast to float32 and back to float64 first, reproducing scikit-learn's comparison.
    """
    from onnx import TensorProto, helper

    trees = getattr(estimator, "estimators_", None)
    if trees is None and hasattr(estimator, "tree_"):
        trees = [estimator]
    if trees is None or not all(hasattr(t, "tree_") for t in trees):
        return  # not a forest of decision trees (boosting, linear): nothing to adjust
    graph = onx.graph
    for index, node in enumerate(list(graph.node)):
        if node.op_type not in ("TreeEnsembleClassifier", "TreeEnsembleRegressor"):
            continue
        attrs = {a.name: a for a in node.attribute}
        thresholds = [
            float(trees[t].tree_.threshold[n])
            for t, n in zip(attrs["nodes_treeids"].ints, attrs["nodes_nodeids"].ints, strict=True)
        ]
        kept = [a for a in node.attribute if a.name != "nodes_values"]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(
            helper.make_attribute(
                "nodes_values_as_tensor",
                helper.make_tensor(
                    "nodes_values_as_tensor", TensorProto.DOUBLE, [len(thresholds)], thresholds
                ),
            )
        )
        source = node.input[0]
        to_single = helper.make_node("Cast", [source], [f"{source}_as_f32"], to=TensorProto.FLOAT)
        back = helper.make_node("Cast", [f"{source}_as_f32"], [f"{source}_as_f64"], to=TensorProto.DOUBLE)
        node.input[0] = f"{source}_as_f64"
        graph.node.insert(index, back)
        graph.node.insert(index, to_single)
        break
    for opset in onx.opset_import:
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, 3)


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
        kind = kind_of(column)
        if kind in (NUMBER, INTEGER):
            q = stats.get("quantiles") or {}
            low, high = q.get("0.01", stats.get("min")), q.get("0.99", stats.get("max"))
            if low is None or high is None or not np.isfinite([low, high]).all():
                values = np.array(seen, dtype=float)
                values = values[np.isfinite(values)]  # an optional column's example may be missing
                low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
            drawn = rng.uniform(low, high, rows)
            if kind is INTEGER:
                drawn = np.round(drawn)
            batch[column.name] = np.concatenate([np.asarray(seen, dtype=float), drawn]).astype(kind.dtype)
        else:
            categories = list((stats.get("frequencies") or {}).keys()) or [
                str(v) for v in seen if isinstance(v, str)
            ]
            if column.allowed:
                categories = [str(v) for v in column.allowed]
            drawn = rng.choice(categories, rows) if categories else np.array(["?"] * rows)
            batch[column.name] = np.concatenate([np.asarray(seen, dtype=object), drawn.astype(object)])
        if not column.required:  # an optional column arrives missing too: the imputers must agree
            gaps = rng.random(len(batch[column.name])) < 0.15
            values = batch[column.name]
            values = values.astype(np.float64) if values.dtype.kind in "iub" else values.copy()
            values[gaps] = np.nan
            batch[column.name] = values
    return batch


def _compiled(loaded: LoadedModel, sklearn: SklearnEngine) -> tuple[Engine | None, str]:
    """The compiled path if it compiles and agrees with scikit-learn on the reference rows."""
    from shipyard.inference.compiled import UnsupportedModelError, compile_pipeline

    try:
        compiled = compile_pipeline(loaded.model)
        reference = reference_batch(loaded)
        fast = np.asarray(compiled.predict(reference)[0], dtype=float)
        slow = np.asarray(sklearn.predict(reference)[0], dtype=float)
    except UnsupportedModelError as exc:
        return None, f"not compiled: {exc}"
    except Exception as exc:  # a failure to compile or run means: try the other paths
        return None, f"compiled path failed: {str(exc).splitlines()[0][:200]}"
    rows = batch_rows(reference)
    worst = float(np.max(np.abs(fast - slow) / np.maximum(np.abs(slow), 1e-300)))
    if not worst <= COMPILED_RTOL:
        return None, f"compiled values differ by up to {worst:.2g} relative (> {COMPILED_RTOL:g})"
    same = "identical to" if np.array_equal(fast, slow) else f"within {COMPILED_RTOL:g} relative of"
    return compiled, f"compiled numpy path: values {same} scikit-learn's on {rows} reference rows"


def select_engine(
    loaded: LoadedModel, fast_path: bool = True, regression_rtol: float = 0.0, bulk: bool = False
) -> tuple[Engine, str]:
    """The engine to serve with and why. ``bulk`` (batch scoring, chunks of many thousand rows) keeps
    scikit-learn's vectorised predict: measured here, ONNX Runtime's one-thread tree ensembles were ~2x
    slower per row on big chunks, while they win on the service's one-row requests. Both give the same
    answers: ONNX is only ever chosen where it agrees with scikit-learn."""
    classifier = loaded.is_classifier
    sklearn = SklearnEngine(loaded.model, classifier)
    if not fast_path:
        return sklearn, "fast path off"
    if bulk:
        return sklearn, "batch scoring: scikit-learn's vectorised predict is faster on large chunks"
    if not classifier:
        compiled, reason = _compiled(loaded, sklearn)
        if compiled is not None:
            return compiled, reason
    if any(not c.required for c in loaded.inputs):
        return sklearn, "inputs that may be missing are imputed by scikit-learn only"
    if not classifier and regression_rtol <= 0:
        return sklearn, "regressor: ONNX Runtime trees compute in float32; set a tolerance to accept them"
    single = not classifier
    try:
        session = _convert(loaded.model, loaded.inputs, classifier, single)
        onnx = OnnxEngine(session, loaded.inputs, classifier, single, sklearn, loaded.classes)
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
