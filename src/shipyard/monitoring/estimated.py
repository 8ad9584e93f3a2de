"""Estimated performance of one window, from the estimator kept with the model (CBPE or DLE, see
``shipyard.training.performance``): what the monitor reports before the labels arrive."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipyard.training.performance import CBPE, PerformanceEstimator, relative_drop, watched_metric


@dataclass
class EstimatedPerformance:
    """The estimate for a window next to the same metrics realised on the held-out split."""

    method: str  # cbpe | dle
    metric: str  # the watched metric a drop is judged on
    estimated: dict[str, float]
    reference: dict[str, float]
    drop: float  # relative: how much worse the watched estimate is than its held-out value
    max_drop: float
    rows: int
    degraded: bool

    def summary(self) -> str:
        shown = self.estimated.get(self.metric, math.nan)
        verdict = "DEGRADED" if self.degraded else "ok"
        return (
            f"estimated {self.metric} {shown:.4g} ({self.method.upper()}, {self.rows} rows) vs "
            f"{self.reference.get(self.metric, math.nan):.4g} held out: {self.drop:+.1%} worse "
            f"(limit {self.max_drop:.0%}) -> {verdict}"
        )


def estimate_window(
    estimator: PerformanceEstimator,
    features: pd.DataFrame,
    predicted: Any,
    *,
    primary_metric: str,
    max_drop: float,
    probabilities: np.ndarray | None = None,
) -> EstimatedPerformance | None:
    """``features``/``predicted``: the window's rows the model scored; ``probabilities``: its class
    probabilities for them (CBPE needs them: the prediction log keeps answers only). None when there
    is nothing to estimate from."""
    if not len(features):
        return None
    if isinstance(estimator, CBPE):
        if probabilities is None or len(probabilities) != len(features):
            return None
        estimated = estimator.estimate(probabilities, predicted)
    else:
        estimated = estimator.estimate(features, predicted)
    metric = watched_metric(estimator, primary_metric)
    drop = relative_drop(metric, estimator.reference.get(metric, math.nan), estimated[metric])
    return EstimatedPerformance(
        method=estimator.method,
        metric=metric,
        estimated=estimated,
        reference=dict(estimator.reference),
        drop=drop,
        max_drop=max_drop,
        rows=len(features),
        degraded=drop > max_drop,
    )
