"""The reference profile: per-feature statistics of the training data, saved with every model.

Drift detection compares live traffic against it, so it stores what a statistical test needs:
counts, nulls, moments, quantiles and histogram bins for numeric features; category frequencies for
categorical ones; and the target and prediction distributions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
PROFILE_VERSION = 1


def numeric_stats(series: pd.Series, bins: int) -> dict[str, Any]:
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    present = values.dropna().to_numpy()
    stats: dict[str, Any] = {
        "kind": "numeric",
        "count": int(series.shape[0]),
        "nulls": int(values.isna().sum()),
        "unique": int(pd.Series(present).nunique()),
    }
    if present.size == 0:
        return {
            **stats,
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "quantiles": {},
            "histogram": None,
        }
    counts, edges = np.histogram(present, bins=bins)
    return {
        **stats,
        "mean": float(present.mean()),
        "std": float(present.std(ddof=1)) if present.size > 1 else 0.0,
        "min": float(present.min()),
        "max": float(present.max()),
        "quantiles": {str(q): float(np.quantile(present, q)) for q in QUANTILES},
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def categorical_stats(series: pd.Series) -> dict[str, Any]:
    counts = series.dropna().astype(str).value_counts()
    total = int(counts.sum())
    return {
        "kind": "categorical",
        "count": int(series.shape[0]),
        "nulls": int(series.isna().sum()),
        "unique": int(counts.shape[0]),
        "counts": {str(k): int(v) for k, v in counts.items()},
        "frequencies": {str(k): (int(v) / total if total else 0.0) for k, v in counts.items()},
    }


def describe(series: pd.Series, kind: str, bins: int) -> dict[str, Any]:
    return numeric_stats(series, bins) if kind == "numeric" else categorical_stats(series)


def build_reference_profile(
    X: pd.DataFrame,
    y: pd.Series,
    predictions: np.ndarray | pd.Series,
    feature_kinds: dict[str, str],
    task: str,
    bins: int = 10,
) -> dict[str, Any]:
    """Statistics of the training features, target and the model's predictions on them."""
    target_kind = "categorical" if task == "classification" else "numeric"
    return {
        "profile_version": PROFILE_VERSION,
        "rows": int(X.shape[0]),
        "task": task,
        "features": {name: describe(X[name], kind, bins) for name, kind in feature_kinds.items()},
        "target": {"name": str(y.name), **describe(y, target_kind, bins)},
        "prediction": describe(pd.Series(np.asarray(predictions)), target_kind, bins),
    }
