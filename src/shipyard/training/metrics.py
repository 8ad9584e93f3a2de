"""Evaluation metrics by task, each with its direction, and one ``evaluate`` for a fitted model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm


@dataclass(frozen=True)
class Metric:
    name: str
    task: str
    greater_is_better: bool
    scorer: str  # the scikit-learn scorer name, for cross-validation during tuning
    needs_proba: bool
    compute: Callable[[Any, Any], float]


def roc_auc(y_true: Any, proba: Any, labels: Any = None) -> float:
    """ROC-AUC: binary on the positive column, else one-vs-rest macro with the model's class order."""
    proba = np.asarray(proba)
    if proba.ndim == 2 and proba.shape[1] == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1]))
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels))


_ALL = [
    Metric("accuracy", "classification", True, "accuracy", False, skm.accuracy_score),
    Metric(
        "precision_macro",
        "classification",
        True,
        "precision_macro",
        False,
        lambda t, p: skm.precision_score(t, p, average="macro", zero_division=0),
    ),
    Metric(
        "recall_macro",
        "classification",
        True,
        "recall_macro",
        False,
        lambda t, p: skm.recall_score(t, p, average="macro", zero_division=0),
    ),
    Metric(
        "f1_macro",
        "classification",
        True,
        "f1_macro",
        False,
        lambda t, p: skm.f1_score(t, p, average="macro"),
    ),
    Metric("roc_auc_ovr", "classification", True, "roc_auc_ovr", True, roc_auc),
    Metric("mae", "regression", False, "neg_mean_absolute_error", False, skm.mean_absolute_error),
    Metric("mse", "regression", False, "neg_mean_squared_error", False, skm.mean_squared_error),
    Metric(
        "rmse",
        "regression",
        False,
        "neg_root_mean_squared_error",
        False,
        lambda t, p: math.sqrt(skm.mean_squared_error(t, p)),
    ),
    Metric("r2", "regression", True, "r2", False, skm.r2_score),
]

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}


def metrics_for(task: str) -> list[str]:
    return [m.name for m in _ALL if m.task == task]


def is_better(metric: str, new: float, old: float, min_improvement: float = 0.0) -> bool:
    """True when ``new`` is at least as good as ``old`` by ``min_improvement`` in the metric's direction."""
    if METRICS[metric].greater_is_better:
        return new >= old + min_improvement
    return new <= old - min_improvement


def meets_threshold(metric: str, value: float, threshold: float) -> bool:
    """A threshold is a minimum for greater-is-better metrics and a maximum otherwise."""
    return value >= threshold if METRICS[metric].greater_is_better else value <= threshold


def evaluate(model: Any, X: pd.DataFrame, y: pd.Series, task: str) -> dict[str, float]:
    """Every metric of the task for a fitted model on (X, y)."""
    predictions = model.predict(X)
    proba = None
    out: dict[str, float] = {}
    for name in metrics_for(task):
        metric = METRICS[name]
        if metric.needs_proba:
            if not hasattr(model, "predict_proba"):
                continue
            if proba is None:
                proba = model.predict_proba(X)
            if len(np.unique(y)) < 2:
                continue
            out[name] = roc_auc(y, proba, getattr(model, "classes_", None))
        else:
            out[name] = float(metric.compute(y, predictions))
    return out
