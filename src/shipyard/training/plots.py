"""Evaluation plots as matplotlib Figures (object API, no pyplot state, no display needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import Pipeline

from shipyard.features.engineering import FeatureEngineer


def confusion_matrix_figure(y_true: Any, y_pred: Any, labels: list[Any]) -> Figure:
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(labels))
    ax.set_xticks(list(ticks), [str(x) for x in labels], rotation=30, ha="right")
    ax.set_yticks(list(ticks), [str(x) for x in labels])
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in ticks:
        for j in ticks:
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > threshold else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix (test split)")
    return fig


def predicted_vs_actual_figure(y_true: Any, y_pred: Any) -> Figure:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.scatter(y_true, y_pred, s=8, alpha=0.5)
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    left.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1)
    left.set_xlabel("actual")
    left.set_ylabel("predicted")
    left.set_title("Predicted vs actual (test split)")
    residuals = y_true - y_pred
    right.scatter(y_pred, residuals, s=8, alpha=0.5)
    right.axhline(0, color="grey", linestyle="--", linewidth=1)
    right.set_xlabel("predicted")
    right.set_ylabel("actual - predicted")
    right.set_title("Residuals")
    return fig


def raw_feature_importance(pipeline: Pipeline, engineer: FeatureEngineer) -> pd.Series | None:
    """Importance per raw feature: the estimator's importances (or |coef|) summed over one-hot columns."""
    model = pipeline.named_steps["model"]
    if hasattr(model, "feature_importances_"):
        weights = np.asarray(model.feature_importances_, dtype=float)
    elif hasattr(model, "coef_"):
        coef = np.asarray(model.coef_, dtype=float)
        weights = np.abs(coef).mean(axis=0) if coef.ndim == 2 else np.abs(coef)
    else:
        return None
    names = pipeline.named_steps["features"].get_feature_names_out()
    raw = pd.Series(weights, index=[engineer.raw_feature_of(n) for n in names])
    return raw.groupby(level=0).sum().sort_values(ascending=False)


def feature_importance_figure(importance: pd.Series, top: int = 20) -> Figure:
    shown = importance.head(top)[::-1]
    fig = Figure(figsize=(7, max(2.5, 0.3 * len(shown) + 1)), layout="constrained")
    ax = fig.subplots()
    ax.barh([str(i) for i in shown.index], shown.to_numpy())
    ax.set_xlabel("importance (summed over encoded columns)")
    ax.set_title(f"Feature importance (top {len(shown)})")
    return fig
