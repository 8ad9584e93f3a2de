"""Per-row explanations of a tree model's answers with TreeSHAP (the ``shap`` package), on the model's raw
input features (issue 16).

The fitted Pipeline is ``features`` (imputers, scalers, one-hot encoders in a ColumnTransformer) then a
tree model. TreeSHAP runs on the tree model over the transformed columns; the attributions of the
columns that come from one raw feature (a one-hot encoder's, one per category) are summed back to that
feature, so every answer names the features a client sent. What is explained:

- classifiers: the probability of the predicted class (a forest's output is its mean class probability,
  so the attributions are in probability units);
- regressors: the predicted value, in the target's units.

The answer explained is the one the service gives (its engine's label and probabilities, or value).
Additivity: the base value (the model's average output over its training data) plus the attributions
equals that answer; ``Explanation.additivity_error`` reports how far from exactly (the tests hold it
under 1e-6). The preprocessing runs in numpy (the compiled engine's, kept only where it gives exactly
scikit-learn's matrix on reference rows), so one iris row takes well under a millisecond.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.errors import ConflictError
from shipyard.inference.compiled import CompiledFeatures
from shipyard.inference.records import Batch, batch_frame
from shipyard.registry.models import LoadedModel

TOP_K = 5


class ExplainUnsupportedError(ConflictError):
    """The model has no tree model TreeSHAP can read (the message says what it is): 409."""


@dataclass(frozen=True)
class Explanation:
    prediction: Any
    explained: str  # what the attributions add up to
    output: float
    base_value: float
    attributions: dict[str, float]
    top: list[dict[str, Any]]  # the top-k features by |attribution|, largest first
    additivity_error: float


def _tree_model(model: Any) -> Any:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    trees = (
        RandomForestClassifier,
        RandomForestRegressor,
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        DecisionTreeClassifier,
        DecisionTreeRegressor,
        GradientBoostingRegressor,
    )
    if isinstance(final, GradientBoostingClassifier) or not isinstance(final, trees):
        raise ExplainUnsupportedError(
            f"explanations need a tree model whose output TreeSHAP reads in the model's units (random "
            f"forests, extra trees, decision trees, gradient-boosted regressors); this one is "
            f"{type(final).__name__}"
        )
    return final


def _owners(preprocess: Any, names: list[str]) -> np.ndarray:
    """For each transformed column, the index (in ``names``) of the raw feature it comes from."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if preprocess is None:
        return np.arange(len(names))
    if not isinstance(preprocess, ColumnTransformer):
        raise ExplainUnsupportedError(f"unknown preprocessing {type(preprocess).__name__}")
    index = {n: i for i, n in enumerate(names)}
    owners = np.full(sum(s.stop - s.start for s in preprocess.output_indices_.values()), -1)
    for name, transformer, columns in preprocess.transformers_:
        where = preprocess.output_indices_.get(name)
        if where is None or where.stop == where.start:
            continue  # dropped
        last = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
        # a one-hot encoder's outputs per input column (after drop and infrequent grouping); else 1:1
        widths = list(last._n_features_outs) if isinstance(last, OneHotEncoder) else [1] * len(columns)
        if sum(widths) != where.stop - where.start:
            raise ExplainUnsupportedError(f"cannot map the outputs of '{name}' back to its columns")
        start = where.start
        for column, width in zip(columns, widths, strict=True):
            owners[start : start + width] = index[column]
            start += width
    if (owners < 0).any():
        raise ExplainUnsupportedError("some transformed columns come from no input feature")
    return owners


class TreeExplainer:
    """Built once per loaded version (on first use); ``explain`` takes a validated batch."""

    def __init__(self, loaded: LoadedModel) -> None:
        import shap  # type: ignore[import-untyped]

        model = loaded.model
        self.estimator = _tree_model(model)
        self.preprocess = model[:-1] if hasattr(model, "steps") and len(model.steps) > 1 else None
        if self.preprocess is not None and len(self.preprocess.steps) == 1:
            self.preprocess = self.preprocess.steps[0][1]
        self.names = [c.name for c in loaded.inputs]
        owners = _owners(self.preprocess, self.names)
        self._to_raw = np.zeros((len(owners), len(self.names)))
        self._to_raw[np.arange(len(owners)), owners] = 1.0
        self.classifier = loaded.is_classifier
        self.classes = [str(c) for c in (loaded.classes or [])]
        self._shap = shap.TreeExplainer(self.estimator)
        self._expected = np.atleast_1d(np.asarray(self._shap.expected_value, dtype=float))
        self._compiled = self._compile(loaded)
        self.seconds_per_row = self._cost(loaded)

    def _cost(self, loaded: LoadedModel) -> float:
        """Seconds one row costs (the best of two passes over 16 reference rows): callers run a small
        request inline, where a thread hop would cost more than the work."""
        from shipyard.inference.engines import reference_batch

        probe = reference_batch(loaded, rows=16)
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            self._shap.shap_values(self._transform(probe), check_additivity=False)
            best = min(best, time.perf_counter() - started)
        return best / max(1, len(next(iter(probe.values()))))

    def _compile(self, loaded: LoadedModel) -> CompiledFeatures | None:
        """The numpy preprocessing (the compiled engine's) when it gives exactly scikit-learn's matrix on
        the reference rows: pandas costs ~2 ms a call, the rest of an explanation well under one."""
        from shipyard.inference.compiled import UnsupportedModelError, compile_features
        from shipyard.inference.engines import reference_batch

        if self.preprocess is None:
            return None
        try:
            compiled = compile_features(self.preprocess, self.estimator.n_features_in_)
            reference = reference_batch(loaded)
            same = np.array_equal(
                compiled.transform(reference), self._sklearn_transform(reference), equal_nan=True
            )
        except (UnsupportedModelError, ValueError, TypeError, KeyError):
            return None
        return compiled if same else None

    def _sklearn_transform(self, batch: Batch) -> np.ndarray:
        frame = batch_frame(batch)
        data = frame if self.preprocess is None else self.preprocess.transform(frame)
        return np.asarray(data, dtype=float)

    def _transform(self, batch: Batch) -> np.ndarray:
        if self._compiled is not None:
            return self._compiled.transform(batch)
        return self._sklearn_transform(batch)

    def explain(
        self,
        batch: Batch,
        predictions: list[Any],
        probabilities: list[dict[str, float]] | None,
        top_k: int = TOP_K,
    ) -> list[Explanation]:
        """Explain the answers the service gave (``predictions``, and for classifiers ``probabilities``
        per class) for a validated batch; the additivity error is against those answers."""
        X = self._transform(batch)
        values = np.asarray(self._shap.shap_values(X, check_additivity=False), dtype=float)
        if values.ndim == 2:
            values = values[:, :, None]
        rows = np.arange(len(X))
        if self.classifier and values.shape[2] > 1:
            position = {c: k for k, c in enumerate(self.classes)}
            picked = np.array([position[str(p)] for p in predictions])
            outputs = np.array(
                [float((probabilities or [])[i][str(p)]) for i, p in enumerate(predictions)], dtype=float
            )
            what = [f"probability of class {p}" for p in predictions]
        else:
            picked = np.zeros(len(X), dtype=int)
            outputs = np.asarray(predictions, dtype=float)
            what = ["predicted value"] * len(X)
        chosen = values[rows, :, picked]
        base = self._expected[picked]
        raw = chosen @ self._to_raw
        answers = []
        for i in range(len(X)):
            row = raw[i]
            order = np.argsort(-np.abs(row), kind="stable")[:top_k]
            answers.append(
                Explanation(
                    prediction=predictions[i],
                    explained=what[i],
                    output=float(outputs[i]),
                    base_value=float(base[i]),
                    attributions={n: float(v) for n, v in zip(self.names, row.tolist(), strict=True)},
                    top=[{"feature": self.names[j], "attribution": float(row[j])} for j in order],
                    additivity_error=float(abs(base[i] + row.sum() - outputs[i])),
                )
            )
        return answers
